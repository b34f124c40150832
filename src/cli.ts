#!/usr/bin/env node
/**
 * tcptracer: bcc's tcptracer on tracepoints, with NDJSON and OTLP outputs.
 * Errors are one line on stderr: exit 2 for usage, 1 for the environment.
 */
import { EnvironmentError, UsageError } from './errors.ts';
import { encodeLines, formatLostLine, jsonLine, MAX_JSON_LINE_BYTES, MAX_TABLE_LINE_BYTES, TableFormatter } from './format.ts';
import { DEFAULT_OTLP_RINGBUF_BYTES, DEFAULT_RINGBUF_BYTES } from './defaults.ts';
import { HELP, parseCli, type CliOptions } from './options.ts';
import { describeOtlpConfig, resolveOtlpConfig } from './otlp/config.ts';
import { formatDropReport, startDropReporter, startExportFailureReporter } from './otlp/report.ts';
import type { OtlpSink } from './otlp/sink.ts';
import { IdentityResolver } from './identity/resolver.ts';
import { loadNative } from './native.ts';
import { dropPrivileges, lookupUser, setNoNewPrivs } from './privileges.ts';
import { TcpTracer } from './tracer.ts';
import type { TcpEvent } from './types.ts';
import { packageVersion, unsupportedNode } from './version.ts';

const BANNER = 'Tracing TCP established connections. Ctrl-C to end.';
const DROP_REPORT_MS = 5000;

async function run(opts: CliOptions): Promise<void> {
  // OTLP settings first: a bad OTEL_* value is a usage error before anything loads
  const otlp = opts.otlp
    ? resolveOtlpConfig({ endpoint: opts.otlpEndpoint, queueSize: opts.otlpQueueSize, signals: opts.otlpSignals })
    : undefined;
  // the OpenTelemetry SDK and gRPC (~30 MB of RSS) load only in OTLP mode
  const sink: OtlpSink | undefined = otlp ? new (await import('./otlp/sink.ts')).OtlpSink(otlp) : undefined;
  const account = lookupUser(opts.user);
  // before the drain thread exists, so that it inherits it
  const nnp = setNoNewPrivs(() => loadNative().noNewPrivs());
  if (nnp) process.stderr.write(`tcptracer: ${nnp}\n`);
  // container and pod of each event, from its cgroup, before any output sees it
  const identity = opts.identity ? new IdentityResolver({ maxWaitMs: opts.identityWaitMs }) : undefined;
  // what the export queue can take, less what waits for its identity
  const room = sink ? (): number => sink.room() - (identity?.pending ?? 0) : undefined;
  const tracer = TcpTracer.open({
    ...opts,
    ringbufBytes: opts.ringbufBytes ?? (sink ? DEFAULT_OTLP_RINGBUF_BYTES : DEFAULT_RINGBUF_BYTES),
    // the ring buffer is the export queue: read it only as fast as the sink takes events
    room,
  });
  // everything that needs root is done: the probe is attached, maps and TLS files are open
  dropPrivileges(account);
  if (sink && otlp) {
    process.stderr.write(`tcptracer: ${describeOtlpConfig(otlp)}\n`);
    sink.onRoom(() => {
      tracer.replenish();
    });
  }
  const write = (data: string | Buffer): void => {
    process.stdout.write(data);
  };
  let onEvents: ((batch: readonly TcpEvent[]) => void) | undefined;
  if (opts.json) {
    process.stderr.write(`${BANNER}\n`);
    onEvents = (batch) => {
      write(encodeLines(batch, jsonLine, MAX_JSON_LINE_BYTES));
    };
  } else if (!opts.quiet) {
    const table = new TableFormatter({
      timestamp: opts.timestamp,
      verbose: opts.verbose,
      netnsFiltered: opts.netns !== undefined,
      failed: opts.failed,
    });
    write(`${BANNER}\n${table.header()}\n`);
    onEvents = (batch) => {
      write(encodeLines(batch, (e) => table.row(e), MAX_TABLE_LINE_BYTES));
    };
  } else {
    process.stderr.write(`${BANNER}\n`);
  }
  const deliver = (batch: TcpEvent[]): void => {
    sink?.emit(batch);
    onEvents?.(batch);
  };
  tracer.on('events', (batch) => {
    if (identity) identity.enrich(batch, deliver);
    else deliver(batch);
  });
  if (!onEvents && sink && room) {
    // the export queue is the only consumer: what it has no room for is only counted (and its connection followed)
    tracer.limitDecoding(room);
    tracer.on('skipped', (refs) => {
      sink.refuse(refs);
    });
  }

  let reported = '';
  const reporter = setInterval(() => {
    const line = formatLostLine(tracer.drops());
    if (line && line !== reported) process.stderr.write(`${line}\n`);
    reported = line ?? '';
    tracer.refreshClock();
  }, DROP_REPORT_MS);
  reporter.unref();
  // a collector that is away or refusing is said promptly, once per new error (at most once per interval), not per retry
  const stopErrorReport = sink ? startExportFailureReporter(sink, (l) => process.stderr.write(`tcptracer: ${l}\n`), DROP_REPORT_MS) : undefined;
  const stopDropReport = sink ? startDropReporter(sink, (l) => process.stderr.write(`tcptracer: ${l}\n`), DROP_REPORT_MS) : undefined;

  await new Promise<void>((resolve, reject) => {
    tracer.on('error', reject);
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    // `tcptracer | head`: the reader went away; stop as on Ctrl-C
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') resolve();
      else reject(new EnvironmentError(`writing output: ${e.message}`));
    });
  });
  clearInterval(reporter);
  stopErrorReport?.();
  stopDropReport?.();
  // OTLP: what the ring buffer still holds goes out at the exporter's pace, within the shutdown deadline
  const deadline = performance.now() + (otlp?.shutdownTimeoutMs ?? 0);
  const drops = await tracer.stop({ drainDeadlineMs: otlp?.shutdownTimeoutMs });
  identity?.flush();
  identity?.close();
  const line = formatLostLine(drops);
  if (line) process.stderr.write(`${line}\n`);
  if (sink) {
    const { undelivered } = await sink.shutdown(Math.max(0, deadline - performance.now()));
    if (undelivered) process.stderr.write(`tcptracer: otlp: ${undelivered} records could not be delivered before the shutdown deadline\n`);
    const report = formatDropReport(sink.stats());
    if (report) process.stderr.write(`tcptracer: ${report}\n`);
  }
}

async function main(): Promise<number> {
  const oldNode = unsupportedNode();
  if (oldNode) {
    process.stderr.write(`tcptracer: ${oldNode}\n`);
    return 1;
  }
  let opts: CliOptions;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tcptracer: error: ${e.message} (see tcptracer --help)\n`);
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (opts.version) {
    process.stdout.write(`tcptracer ${packageVersion()}\n`);
    return 0;
  }
  try {
    await run(opts);
    return 0;
  } catch (e) {
    if (e instanceof EnvironmentError || e instanceof UsageError) {
      process.stderr.write(`tcptracer: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    process.stderr.write(`tcptracer: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main();
