#!/usr/bin/env -S node --initial-old-space-size=4
/**
 * tcptracer: bcc's tcptracer on tracepoints, with NDJSON and OTLP outputs.
 * Errors are one line on stderr: exit 2 for usage, 1 for the environment.
 */
import { EnvironmentError, UsageError } from './errors.ts';
import { boundOldGeneration, collectGarbage, holdYoungGeneration, skipTopTier } from './heap.ts';
import { visible } from './escape.ts';
import { encodeLines, formatLostLine, jsonLine, MAX_JSON_LINE_BYTES, MAX_TABLE_LINE_BYTES, TableFormatter } from './format.ts';
import { defaultRingbufBytes } from './defaults.ts';
import { HELP, parseCli, type CliOptions } from './options.ts';
import { describeOtlpConfig, resolveOtlpConfig } from './otlp/config.ts';
import { formatDropReport, formatSampledReport, startDropReporter, startExportFailureReporter } from './otlp/report.ts';
import { checkTlsFiles } from './otlp/export/tls-files.ts';
import type { OtlpSink } from './otlp/sink.ts';
import { checkCgroupRoot, IdentityResolver } from './identity/resolver.ts';
import { loadNative } from './native.ts';
import { Output } from './output.ts';
import { Pacing } from './pacing.ts';
import { dropPrivileges, lookupUser, setNoNewPrivs } from './privileges.ts';
import { TcpTracer } from './tracer.ts';
import type { TcpEvent } from './types.ts';
import { packageVersion, unsupportedNode } from './version.ts';

const BANNER = 'Tracing TCP established connections. Ctrl-C to end.';
const DROP_REPORT_MS = 5000;
/** How long SIGTERM may spend writing what the ring buffer still holds to the table / NDJSON (OTLP: its shutdown timeout). */
const OUTPUT_SHUTDOWN_MS = 5000;
/** Past the shutdown deadline (and an OTLP export's own deadline) and this much more, the process ends whatever is still running. */
const SHUTDOWN_GRACE_MS = 2000;

/** Runs the tracer until SIGINT/SIGTERM or the reader's EPIPE; throws what ends it otherwise. */
async function run(opts: CliOptions): Promise<void> {
  // an exporter's young generation would grow to 64 MB of garbage, its old one hold 4x what lives: both bounded;
  // and no Turbofan: ~7-10 MB of the peak RSS for some CPU (src/heap.ts)
  if (opts.otlp) {
    holdYoungGeneration();
    boundOldGeneration();
    skipTopTier();
  }
  // OTLP settings first: a bad OTEL_* value is a usage error before anything loads
  const otlp = opts.otlp
    ? resolveOtlpConfig({ endpoint: opts.otlpEndpoint, queueSize: opts.otlpQueueSize, signals: opts.otlpSignals, sample: opts.sample, cardinalityLimit: opts.metricsCardinalityLimit })
    : undefined;
  // TLS files that would fail every export, or throw inside gRPC: one line now
  if (otlp) checkTlsFiles(otlp);
  // the OpenTelemetry SDK and gRPC (~30 MB of RSS) load only in OTLP mode
  const sink: OtlpSink | undefined = otlp ? new (await import('./otlp/sink.ts')).OtlpSink(otlp) : undefined;
  // the start-up garbage collected before events arrive: the old generation's growth is bounded from here (src/heap.ts)
  if (otlp) collectGarbage();
  const account = lookupUser(opts.user);
  // before the drain thread exists, so that it inherits it
  const nnp = setNoNewPrivs(() => loadNative().noNewPrivs());
  if (nnp) process.stderr.write(`tcptracer: ${nnp}\n`);
  // container and pod of each event, from its cgroup, before any output sees it
  if (opts.identity) checkCgroupRoot();
  const identity = opts.identity ? new IdentityResolver({ maxWaitMs: opts.identityWaitMs }) : undefined;
  const output = opts.quiet ? undefined : new Output(process.stdout);
  // the ring buffer is the consumers' queue: read only what they take, less what waits for its identity
  const pacing = new Pacing([sink, output], () => identity?.pending ?? 0);
  // the failure metric counts failed connects: the probe reports them, the other outputs show them only with --failed
  const metrics = otlp?.signals.includes('metrics') ?? false;
  const tracer = TcpTracer.open({
    ...opts,
    ringbufBytes: opts.ringbufBytes ?? defaultRingbufBytes(otlp?.signals),
    failed: opts.failed || metrics,
    room: pacing.room,
  });
  try {
    // everything that needs root is done: the probe is attached, maps and TLS files are open
    dropPrivileges(account);
  } catch (e) {
    // never left running privileged: detach, and the caller exits
    await Promise.race([tracer.stop(), sleep(1000)]);
    throw e;
  }
  if (otlp) process.stderr.write(`tcptracer: ${describeOtlpConfig(otlp)}\n`);
  pacing.drive(tracer);
  let onEvents: ((batch: readonly TcpEvent[]) => void) | undefined;
  if (opts.json && output) {
    process.stderr.write(`${BANNER}\n`);
    onEvents = (batch) => {
      output.write(batch.length, () => encodeLines(batch, jsonLine, MAX_JSON_LINE_BYTES));
    };
  } else if (output) {
    const table = new TableFormatter({
      timestamp: opts.timestamp,
      verbose: opts.verbose,
      netnsFiltered: opts.netns !== undefined,
      failed: opts.failed,
    });
    output.write(0, () => `${BANNER}\n${table.header()}\n`);
    onEvents = (batch) => {
      output.write(batch.length, () => encodeLines(batch, (e) => table.row(e), MAX_TABLE_LINE_BYTES));
    };
  } else {
    process.stderr.write(`${BANNER}\n`);
  }
  const hideFailed = metrics && !opts.failed;
  const deliver = (events: TcpEvent[]): void => {
    sink?.measure(events);
    const batch = hideFailed ? events.filter((e) => e.type !== 'failed') : events;
    sink?.emit(batch);
    onEvents?.(batch);
  };
  const enriched = (events: TcpEvent[], held: boolean): void => {
    deliver(events);
    // only a batch that waited took room the reader may now reuse; another read per batch costs a grant each
    if (held) pacing.released();
  };
  tracer.on('events', (batch) => {
    if (identity) identity.enrich(batch, enriched);
    else deliver(batch);
  });

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

  let failure: Error | undefined;
  let stop = (): void => undefined;
  await new Promise<void>((resolve, reject) => {
    stop = resolve;
    tracer.on('error', reject);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // `tcptracer | head`: the reader went away; stop as on Ctrl-C. Any other write error ends the tracer.
    output?.done.then(resolve, reject);
  }).catch((e: unknown) => {
    failure = e instanceof Error ? e : new Error(String(e));
  });
  // from now on SIGINT and SIGTERM, either one, end the process at once (their default action)
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  // and whatever the output or the exporter are doing, it ends within the deadline
  const shutdownMs = failure ? 0 : (otlp?.shutdownTimeoutMs ?? OUTPUT_SHUTDOWN_MS);
  // (an export already sent may take its own deadline past the shutdown's)
  const hardMs = shutdownMs + (otlp ? Math.max(otlp.logs.timeoutMs, otlp.traces.timeoutMs, otlp.metrics.timeoutMs) : 0) + SHUTDOWN_GRACE_MS;
  setTimeout(() => {
    process.stderr.write(`tcptracer: shutdown did not finish within ${hardMs} ms: exiting\n`);
    process.exit(1);
  }, hardMs).unref();
  clearInterval(reporter);
  stopErrorReport?.();
  stopDropReport?.();
  // what the ring buffer still holds goes out at the consumers' pace, within the shutdown deadline
  const deadline = performance.now() + shutdownMs;
  // past it, the ring buffer is read at once: what a reader still behind cannot take is counted, not buffered
  const pastDeadline = setTimeout(() => output?.deadlinePassed(), shutdownMs);
  const drops = await tracer.stop({ drainDeadlineMs: shutdownMs });
  identity?.flush();
  identity?.close();
  const line = formatLostLine(drops);
  if (line) process.stderr.write(`${line}\n`);
  const unwritten = output && (await output.flush(deadline - performance.now()), output.unwritten);
  clearTimeout(pastDeadline);
  if (unwritten && !failure) process.stderr.write(`tcptracer: ${unwritten} events not written (the output did not take them before the shutdown deadline)\n`);
  if (sink) {
    const { undelivered } = await sink.shutdown(Math.max(0, deadline - performance.now()));
    if (undelivered) process.stderr.write(`tcptracer: otlp: ${undelivered} records could not be delivered before the shutdown deadline\n`);
    const report = formatDropReport(sink.stats());
    if (report) process.stderr.write(`tcptracer: ${report}\n`);
    const sampled = formatSampledReport(sink.stats());
    if (sampled) process.stderr.write(`tcptracer: ${sampled}\n`);
  }
  if (failure instanceof EnvironmentError && unwritten) throw new EnvironmentError(`${failure.message} (${unwritten} events not written)`);
  if (failure) throw failure;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
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
      process.stderr.write(`tcptracer: error: ${visible(e.message)} (see tcptracer --help)\n`);
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
  let code = 0;
  try {
    await run(opts);
  } catch (e) {
    if (e instanceof EnvironmentError || e instanceof UsageError) {
      process.stderr.write(`tcptracer: ${visible(e.message)}\n`);
      code = e instanceof UsageError ? 2 : 1;
    } else {
      process.stderr.write(`tcptracer: internal error: ${(e as Error).stack ?? String(e)}\n`);
      code = 1;
    }
  }
  // once the probe may have been attached, nothing (a stalled stdout, a drain thread, an exporter) keeps the process alive
  process.exit(code);
}

process.exitCode = await main();
