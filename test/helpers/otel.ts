/**
 * The real OpenTelemetry Collector (otel-config/builder-config.yaml) and Jaeger
 * v2 in tests: the gate (skip with the reason where scripts/build-otel.sh could
 * not build them, fail under CI=true), free loopback ports, the two programs
 * started and stopped, and an OTLP/HTTP logs sink standing in for Loki.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { gunzipSync } from 'node:zlib';
import test, { after } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { decodeExportRequest, type ReceivedLogRecord } from '../fixtures/otlp-collector.ts';
import { ROOT, within } from './kernel.ts';

export const OTELCOL = `${ROOT}tools/bin/otelcol-tcptracer`;
export const JAEGER = `${ROOT}tools/bin/jaeger`;
export const CONFIG_DIR = `${ROOT}otel-config`;

/** Why the Collector/Jaeger tests cannot run here, or undefined when they can. */
export function otelSkipReason(): string | undefined {
  const missing = [OTELCOL, JAEGER].filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  // Where scripts/build-otel.sh looks for Go, in its order.
  const version = [process.env.GO, 'go', '/usr/local/go/bin/go']
    .filter((g): g is string => Boolean(g))
    .map((g) => spawnSync(g, ['env', 'GOVERSION'], { encoding: 'utf8' }))
    .find((r) => r.status === 0)?.stdout.trim();
  if (version === undefined || !/^go1\.(2[6-9]|[3-9]\d)/.test(version)) {
    return `the Collector and Jaeger are built with Go 1.26 or newer, and ${version ?? 'no Go'} is here`;
  }
  return `${missing.map((p) => p.slice(ROOT.length)).join(', ')} not built: run scripts/build-otel.sh`;
}

/**
 * Options for a suite that runs the Collector or Jaeger: skipped with the reason
 * where they are not built; under CI=true that is a failure, registered as a test.
 */
export function otelSuite(): { skip: string | false } {
  const reason = otelSkipReason();
  if (reason && process.env.CI === 'true') {
    test('the Collector and Jaeger tests must run under CI', () => {
      throw new Error(`${reason} (CI=true: a skipped Collector test is a failure)`);
    });
  }
  return { skip: reason ?? false };
}

/** A TCP port free on 127.0.0.1 now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const running = new Set<ChildProcess>();
const killAll = (): void => {
  for (const c of running) c.kill('SIGKILL');
};
after(killAll);
process.once('exit', killAll);

/** One of the two Go programs, started, restartable with the same arguments. */
export class GoProgram {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  /** stdout and stderr of every run so far. */
  output = '';

  private readonly path: string;
  private readonly args: readonly string[];
  private readonly env: NodeJS.ProcessEnv;

  constructor(path: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    this.path = path;
    this.args = args;
    this.env = env;
  }

  /** Starts it and resolves once it logged that its pipelines run (bounded: 60 s). */
  async start(): Promise<void> {
    const child = spawn(this.path, this.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
    this.child = child;
    running.add(child);
    this.exited = new Promise((resolve) => child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }));
    const from = this.output.length;
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        this.output += d.toString();
        if (this.output.includes('Everything is ready', from)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      void this.exited.then((code) => { reject(new Error(`${this.path} exited (${code}) before it was ready:\n${this.output.slice(from)}`)); });
    });
    await within(ready, 60_000, `${this.path} ready`).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
  }

  /** SIGTERM (a clean shutdown, which flushes) or SIGKILL; resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill(signal);
    return within(this.exited, 60_000, `${this.path} exit after ${signal}`).catch((e: unknown) => {
      this.child?.kill('SIGKILL');
      throw e;
    });
  }
}

/** `otelcol-tcptracer validate`: exit code and output. */
export function validate(config: string, env: NodeJS.ProcessEnv = {}): { code: number | null; output: string } {
  const r = spawnSync(OTELCOL, ['validate', `--config=${config}`], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** `--set` arguments that keep a Collector's own telemetry off any fixed port. */
export const QUIET_TELEMETRY = ['--set=service::telemetry::metrics::level=none', '--set=service::telemetry::logs::level=info'];

/** The real Collector with one of the project's configs and `--set` overrides. */
export function collector(config: string, sets: readonly string[], env: NodeJS.ProcessEnv = {}): GoProgram {
  return new GoProgram(OTELCOL, [`--config=${config}`, ...QUIET_TELEMETRY, ...sets.map((s) => `--set=${s}`)], env);
}

/** Jaeger v2 with test/fixtures/jaeger.yaml, on ports of its own. */
export class Jaeger {
  readonly program: GoProgram;
  readonly otlpGrpcPort: number;
  readonly otlpHttpPort: number;
  readonly queryPort: number;

  private constructor(otlpGrpcPort: number, otlpHttpPort: number, queryPort: number, grpcQueryPort: number) {
    this.otlpGrpcPort = otlpGrpcPort;
    this.otlpHttpPort = otlpHttpPort;
    this.queryPort = queryPort;
    this.program = new GoProgram(JAEGER, [`--config=${ROOT}test/fixtures/jaeger.yaml`], {
      JAEGER_OTLP_GRPC_PORT: String(otlpGrpcPort),
      JAEGER_OTLP_HTTP_PORT: String(otlpHttpPort),
      JAEGER_QUERY_HTTP_PORT: String(queryPort),
      JAEGER_QUERY_GRPC_PORT: String(grpcQueryPort),
    });
  }

  static async start(): Promise<Jaeger> {
    const jaeger = new Jaeger(await freePort(), await freePort(), await freePort(), await freePort());
    await jaeger.program.start();
    return jaeger;
  }

  /** GET a query API path (`/api/services`...); the parsed JSON, and the HTTP status. */
  async query(path: string): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`http://127.0.0.1:${this.queryPort}${path}`, { signal: AbortSignal.timeout(10_000) });
    return { status: response.status, body: await response.json() };
  }

  /** Polls `path` (Jaeger stores asynchronously) until `done(body)`; bounded. */
  async poll<T>(path: string, done: (body: T) => boolean, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const r = await this.query(path);
      last = r.body;
      if (r.status === 200 && done(r.body as T)) return r.body as T;
      if (Date.now() > deadline) throw new Error(`${path}: not as expected within ${timeoutMs / 1000} s; last: ${JSON.stringify(last).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * An OTLP/HTTP logs endpoint (POST <prefix>/v1/logs, protobuf, gzip or not) standing in for
 * Loki's /otlp: keeps every record and the size and encoding of every request.
 */
export class OtlpHttpLogsSink {
  readonly records: ReceivedLogRecord[] = [];
  readonly requests: { bytes: number; encoding: string }[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || !req.url?.endsWith('/v1/logs')) {
          res.writeHead(404).end();
          return;
        }
        const body = Buffer.concat(chunks);
        const encoding = req.headers['content-encoding'] ?? '';
        this.requests.push({ bytes: body.length, encoding });
        this.records.push(...decodeExportRequest(encoding === 'gzip' ? gunzipSync(body) : body));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    this.server = server;
  }

  async waitForRecords(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.records.length < count) {
      if (Date.now() > deadline) throw new Error(`OTLP/HTTP sink: ${this.records.length} of ${count} records within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  }
}

/** The agent Collector config embedded in otel-config/k8s/daemonset.yaml's ConfigMap. */
export function daemonSetAgentConfig(): string {
  for (const doc of parseAllDocuments(readFileSync(`${CONFIG_DIR}/k8s/daemonset.yaml`, 'utf8'))) {
    const value = doc.toJS() as { kind?: string; data?: Record<string, string> } | null;
    const config = value?.kind === 'ConfigMap' ? value.data?.['config.yaml'] : undefined;
    if (config !== undefined) return config;
  }
  throw new Error('otel-config/k8s/daemonset.yaml has no ConfigMap with config.yaml');
}
