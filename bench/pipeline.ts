/**
 * The OTLP export pipeline alone, no kernel: synthetic TcpEvents (src/types.ts)
 * fed in batches of 1024 (the native loader's batch size) to src/otlp/sink.ts's
 * OtlpSink, exporting to the bench's counting receiver (bench/otlp-receiver.ts,
 * its own process). Feeding is paced only by the sink's own back-pressure signal
 * (records pending < queue size - one batch), so nothing is dropped for being
 * fed faster than a tracer could; records/s is what reached the receiver.
 *
 *   node bench/pipeline.ts [--count N] [--comm loadgen] [--env NAME=VALUE]...
 *
 * The sink is configured from defaults only (the environment is ignored), plus
 * the settings given with --env (e.g. --env OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=2048),
 * and log records only (TCPTRACER_OTLP_SIGNALS=logs; --env TCPTRACER_OTLP_SIGNALS=logs,traces
 * adds spans, which the receiver counts but records/s does not).
 *
 * Prints one JSON line: { available, reason?, records, delivered, seconds,
 * recordsPerSec, cpuUsPerRecord, peakRssMB, dropped..., delayP50Ms, delayP99Ms }.
 * The module is loaded dynamically and duck-typed, so the bench keeps compiling
 * (and reports "unavailable: why") while that module changes.
 */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { TcpEvent } from '../src/types.ts';
import { tcpEvent } from '../test/fixtures/tcp-events.ts';
import { ReceiverClient } from './otlp-receiver.ts';

interface SinkStats {
  exported: number;
  droppedQueueFull: number;
  droppedExportFailed: number;
  pending: number;
}
interface SinkLike {
  emit(events: readonly TcpEvent[]): void;
  stats(): SinkStats;
  shutdown(deadlineMs?: number): Promise<unknown>;
}
type SinkCtor = new (cfg: unknown) => SinkLike;
type ResolveConfig = (flags: { endpoint?: string }, env?: Record<string, string | undefined>) => { maxQueueSize: number };

export interface PipelineResult {
  available: boolean;
  reason?: string;
  records: number;
  delivered: number;
  seconds: number;
  recordsPerSec: number;
  cpuUsPerRecord: number;
  peakRssMB: number;
  droppedQueueFull: number;
  droppedExportFailed: number;
  delayP50Ms: number;
  delayP99Ms: number;
  receiverCpuS: number;
}

const BATCH = 1024;

/** The result when the pipeline could not be measured, saying why. */
export function unavailable(reason: string): PipelineResult {
  return {
    available: false,
    reason,
    records: 0,
    delivered: 0,
    seconds: 0,
    recordsPerSec: 0,
    cpuUsPerRecord: 0,
    peakRssMB: 0,
    droppedQueueFull: 0,
    droppedExportFailed: 0,
    delayP50Ms: 0,
    delayP99Ms: 0,
    receiverCpuS: 0,
  };
}

/**
 * Events as the bench's workload makes them (C, A, X, X per connection, on
 * loopback), fields not given here from the tests' fixture (test/fixtures/tcp-events.ts).
 */
export function syntheticBatch(n: number, seq: number, comm: string): TcpEvent[] {
  const out: TcpEvent[] = [];
  const now = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
  const kinds = ['connect', 'accept', 'close', 'close'] as const;
  for (let i = 0; i < n; i++) {
    const k = seq + i;
    const type = kinds[k & 3] ?? 'close';
    const port = 1024 + ((k >> 2) % 64000);
    // C and the client's X are the client end, A and the server's X the server end
    const client = (k & 3) === 0 || (k & 3) === 3;
    // both ends of a connection see the same pair of initial sequence numbers, swapped
    const isnA = Math.imul(0x9e3779b9, (k >> 2) + 1) >>> 0;
    const isnB = (isnA ^ 0x5bd1e995) >>> 0;
    out.push(
      tcpEvent({
        type,
        monotonicNs: BigInt(k),
        timeUnixNs: now,
        pid: 4242,
        tid: 4243,
        uid: 0,
        euid: 0,
        role: client ? 'client' : 'server',
        comm,
        saddr: '127.0.0.1',
        daddr: '127.0.0.1',
        sport: client ? port : 8080,
        dport: client ? 8080 : port,
        netns: 4026531840,
        cgroupId: 1234,
        durationNs: type === 'close' ? 52_000 : 0,
        // as in the workload: the server closes first (FIN), the client resets
        end: (k & 3) === 2 ? 'fin' : (k & 3) === 3 ? 'reset' : undefined,
        localIsn: client ? isnA : isnB,
        peerIsn: client ? isnB : isnA,
      }),
    );
  }
  return out;
}

async function loadSink(): Promise<{ Sink: SinkCtor; resolve: ResolveConfig } | string> {
  const service = new URL('../src/otlp/sink.ts', import.meta.url);
  const config = new URL('../src/otlp/config.ts', import.meta.url);
  if (!existsSync(service)) return 'src/otlp/sink.ts not present';
  try {
    const svc = (await import(service.href)) as Record<string, unknown>;
    const cfg = (await import(config.href)) as Record<string, unknown>;
    const Sink = svc.OtlpSink;
    const resolve = cfg.resolveOtlpConfig;
    if (typeof Sink !== 'function') return `src/otlp/sink.ts exports no OtlpSink class (exports: ${Object.keys(svc).join(', ')})`;
    if (typeof resolve !== 'function') return 'src/otlp/config.ts exports no resolveOtlpConfig';
    for (const m of ['emit', 'stats', 'shutdown']) {
      if (typeof (Sink.prototype as Record<string, unknown>)[m] !== 'function') return `OtlpSink has no ${m}() method`;
    }
    return { Sink: Sink as SinkCtor, resolve: resolve as ResolveConfig };
  } catch (e) {
    return `loading src/otlp/sink.ts failed: ${(e as Error).message.split('\n')[0] ?? ''}`;
  }
}

/** Runs the pipeline benchmark in this process against a receiver it forks. */
export async function runPipeline(count: number, comm: string, timeoutMs = 120_000, env: Record<string, string> = {}): Promise<PipelineResult> {
  const loaded = await loadSink();
  if (typeof loaded === 'string') return unavailable(loaded);
  const receiver = await ReceiverClient.start(comm);
  try {
    const cfg = loaded.resolve({ endpoint: receiver.endpoint }, { TCPTRACER_OTLP_SIGNALS: 'logs', ...env });
    const sink = new loaded.Sink(cfg);
    const limit = Math.max(BATCH, cfg.maxQueueSize - BATCH);
    // warm-up: connection set-up and JIT, not measured
    sink.emit(syntheticBatch(BATCH, 0, 'warmup'));
    const warmDeadline = Date.now() + 10_000;
    while (sink.stats().pending > 0 && Date.now() < warmDeadline) await sleep(5);
    await receiver.reset();

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const startMs = performance.timeOrigin + t0;
    const deadline = t0 + timeoutMs;
    let fed = 0;
    while (fed < count && performance.now() < deadline) {
      while (sink.stats().pending > limit && performance.now() < deadline) await sleep(1);
      const n = Math.min(BATCH, count - fed);
      sink.emit(syntheticBatch(n, fed, comm));
      fed += n;
      // let gRPC I/O run between batches, as the tracer's event loop does
      await new Promise<void>((r) => setImmediate(r));
    }
    while (sink.stats().pending > 0 && performance.now() < deadline) await sleep(2);
    const cpu = process.cpuUsage(cpu0);
    const s = sink.stats();
    await sink.shutdown(5000);
    const r = await receiver.stats();
    const seconds = r.lastAtMs > 0 ? (r.lastAtMs - startMs) / 1000 : (performance.now() - t0) / 1000;
    return {
      available: true,
      records: fed,
      delivered: r.matched,
      seconds,
      recordsPerSec: seconds > 0 ? r.matched / seconds : 0,
      cpuUsPerRecord: r.matched ? (cpu.user + cpu.system) / r.matched : 0,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
      droppedQueueFull: s.droppedQueueFull,
      droppedExportFailed: s.droppedExportFailed,
      delayP50Ms: r.delayP50Ms,
      delayP99Ms: r.delayP99Ms,
      receiverCpuS: r.cpuS,
    };
  } finally {
    receiver.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '200000' },
      comm: { type: 'string', default: 'loadgen' },
      env: { type: 'string', multiple: true, default: [] },
    },
  });
  const env: Record<string, string> = {};
  for (const kv of values.env) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw new Error(`--env expects NAME=VALUE, got '${kv}'`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const result = await runPipeline(Number(values.count), values.comm, 120_000, env);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // the gRPC channel may keep the loop alive after shutdown
  process.exit(0);
}

export const pipelineScript = fileURLToPath(import.meta.url);
export const pipelineUrl = pathToFileURL(pipelineScript).href;
