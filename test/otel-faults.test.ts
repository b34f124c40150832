/**
 * Faults with the real Collector between a real tracer and a backend (the
 * project's gRPC collector fixture), running otel-config/collector-gateway.yaml
 * with its endpoints moved: the Collector killed and restarted mid-stream
 * (every record delivered or counted as dropped, none invented), its
 * memory_limiter refusing (the tracer retries, then counts), full export
 * batches under the receiver's default message limit, gzip from the tracer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ReceivedLogRecord } from './fixtures/otlp-collector.ts';
import { kernelSuite, lostEvents, startPeer, startTracer, within, type TracerRun } from './helpers/kernel.ts';
import { HostWithBackend } from './helpers/hosts.ts';
import { collector, CONFIG_DIR, freePort, otelSuite, type GoProgram } from './helpers/otel.ts';

const kernel = kernelSuite();
const otel = otelSuite();
const suite = { skip: kernel.skip || otel.skip };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Records dropped, from the tracer's last report line (none printed: none dropped). */
function dropped(stderr: string): number {
  const last = [...stderr.matchAll(/otlp: (\d+) records dropped/g)].at(-1);
  return last ? Number(last[1]) : 0;
}

/** One key per record: a record the tracer sent twice (retried after a lost answer) counts once. */
const keyOf = (r: ReceivedLogRecord): string => `${r.eventName}|${r.timeUnixNano}|${JSON.stringify(r.attributes)}`;

describe('the real Collector under faults', suite, () => {
  const site = new HostWithBackend();

  /** The gateway config, acknowledging only what the backend took (so a kill loses nothing it acknowledged). */
  async function gateway(...more: string[]): Promise<{ otelcol: GoProgram; endpoint: string }> {
    const port = await freePort();
    const otelcol = collector(`${CONFIG_DIR}/collector-gateway.yaml`, [
      `receivers::otlp::protocols::grpc::endpoint=127.0.0.1:${port}`,
      `extensions::health_check::endpoint=127.0.0.1:${await freePort()}`,
      `exporters::otlp_grpc/backend::endpoint=${site.backend.endpoint.replace('http://', '')}`,
      'exporters::otlp_grpc/backend::tls::insecure=true',
      'exporters::otlp_grpc/backend::sending_queue::wait_for_result=true',
      ...more,
    ], { BACKEND_AUTHORIZATION: 'Bearer test' });
    await otelcol.start();
    return { otelcol, endpoint: `http://127.0.0.1:${port}` };
  }

  const tracerTo = (endpoint: string, env: NodeJS.ProcessEnv = {}): Promise<TracerRun> =>
    startTracer(['--otlp', '-q', '--otlp-signals', 'logs', '-N', String(site.ns.inode), '--otlp-endpoint', endpoint], { json: false, env: { ...process.env, ...env } });

  /** `n` connections in the namespace, 16 at a time: 4n records (connect, accept, two closes). */
  async function connections(port: number, n: number): Promise<void> {
    const server = await startPeer(site.ns, ['server', '127.0.0.1', String(port), String(n), 'tt-fl-srv']);
    const client = await startPeer(site.ns, ['client', '127.0.0.1', String(port), String(n), 'tt-fl-cli', '16']);
    assert.equal(await within(client.exited, 120_000, 'clients'), 0);
    assert.equal(await within(server.exited, 120_000, 'server'), 0);
  }

  async function until(what: string, done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() > deadline) return false;
      await sleep(200);
    }
    return true;
  }

  test('killed and restarted mid-stream: delivered + counted drops == generated; full batches fit the receiver', async (t) => {
    site.backend.records.length = 0;
    const { otelcol, endpoint } = await gateway();
    const tracer = await tracerTo(endpoint);
    const unique = (): number => new Set(site.backend.records.map(keyOf)).size;
    // 1500 connections: 6000 records, many full export batches (the receiver's default 4 MiB limit).
    await connections(7901, 1500);
    assert.ok(await until('first round', () => unique() >= 6000, 60_000), `first round: ${unique()} of 6000 before the kill`);
    assert.doesNotMatch(otelcol.output, /larger than max|ResourceExhausted/i, 'no request over the receiver limit');
    assert.equal(await otelcol.stop('SIGKILL'), null, 'killed');
    await connections(7902, 100); // while it is down: the tracer retries, the ring buffer holds the rest
    await sleep(1500);
    await otelcol.start();
    await connections(7903, 100);
    const generated = 4 * 1700;
    await until('delivery after the restart', () => unique() >= generated, 60_000);
    const { code, stderr } = await tracer.stop('SIGTERM');
    await otelcol.stop();
    assert.equal(code, 0, stderr);
    assert.equal(lostEvents(stderr), undefined, 'the kernel lost nothing');
    const drops = dropped(stderr);
    t.diagnostic(`generated ${generated}, delivered ${unique()} (${site.backend.records.length - unique()} twice), dropped ${drops}`);
    assert.equal(unique() + drops, generated, `delivered ${unique()} + dropped ${drops}; tracer: ${stderr.slice(-600)}`);
    assert.match(stderr, /otlp export failed, retrying/, 'the outage was seen and retried');
  });

  test("memory_limiter refuses: the tracer retries, then counts what it could not deliver", async () => {
    site.backend.records.length = 0;
    // 2 MiB: under the Collector's own heap, so every request is refused.
    const { otelcol, endpoint } = await gateway(
      'processors::memory_limiter::limit_percentage=0', 'processors::memory_limiter::spike_limit_percentage=0',
      'processors::memory_limiter::limit_mib=2', 'processors::memory_limiter::spike_limit_mib=1',
    );
    const tracer = await tracerTo(endpoint, { TCPTRACER_OTLP_SHUTDOWN_TIMEOUT: '2000' });
    await connections(7904, 5);
    const seen = await until('a refusal', () => /otlp export failed, retrying/.test(tracer.stderr()), 30_000);
    await sleep(2000);
    const { code, stderr } = await tracer.stop('SIGTERM');
    await otelcol.stop();
    assert.equal(code, 0, stderr);
    assert.ok(seen, `the tracer retried: ${stderr}`);
    assert.match(otelcol.output, /memory/i, 'the Collector says why it refuses');
    assert.equal(site.backend.records.length, 0, 'nothing got through');
    assert.equal(dropped(stderr), 20, `all 20 records counted as dropped: ${stderr.slice(-600)}`);
  });

  test('gzip from the tracer (OTEL_EXPORTER_OTLP_COMPRESSION) is taken by the Collector', async () => {
    site.backend.records.length = 0;
    const { otelcol, endpoint } = await gateway();
    const tracer = await tracerTo(endpoint, { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' });
    assert.match(tracer.stderr(), /compression gzip/, 'the tracer says it compresses');
    await connections(7905, 10);
    await until('records', () => site.backend.records.length >= 40, 30_000);
    const { code, stderr } = await tracer.stop('SIGTERM');
    await otelcol.stop();
    assert.equal(code, 0, stderr);
    assert.equal(new Set(site.backend.records.map(keyOf)).size, 40);
    assert.equal(dropped(stderr), 0);
  });
});
