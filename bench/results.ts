/**
 * What the bench measures: one run's figures, a configuration's over its
 * rounds (medians and spread), the whole report's shape; and the aggregation.
 */
import { isOtlp, type CliFeatures, type ConfigName } from './configs.ts';
import type { ProfileSummary } from './cpuprofile.ts';
import type { PipelineResult } from './pipeline.ts';
import { spread, type Spread } from './tables.ts';

/** What a configuration lost, by where; undefined where it cannot tell. */
export interface LossCounts {
  /** Kernel ring buffer full (stats map). */
  ringbufLost?: number;
  /** Sockets the probe could not track (socket map full). */
  sockMapFull?: number;
  /** Probe runs the kernel skipped (bpf_prog_info recursion_misses). */
  probeMissed?: number;
  /** OTLP records dropped: queue full + export failed. */
  otlpDropped?: number;
  /** bpftrace's own "Lost N events". */
  peerLost?: number;
  /** Records the tracer could not decode. */
  malformed?: number;
}

export interface RunResult extends LossCounts {
  config: ConfigName;
  round: number;
  /** The scenario this run belongs to; undefined for the main workload. */
  scenario?: string;
  /** paced: the rate the load generator was asked for (loadgen --rate), conn/s. */
  rate?: number;
  ok: boolean;
  error?: string;
  connections: number;
  /** Connections the workload's server accepted. */
  accepted?: number;
  /** reset-before-accept: of those, already closed when accept() returned them. */
  closedAtAccept?: number;
  wallS: number;
  connPerSec: number;
  loadgenUsPerConn: number;
  expectedEvents: number;
  /** From the workload's counts: C per connection, A per accepted one, X per each of those. */
  expectedByType: { connect: number; accept: number; close: number };
  /** Events of the workload (comm = loadgen) the tracer delivered. */
  receivedEvents: number;
  /** All events the tracer delivered (workload + anything else on the host). */
  receivedTotal: number;
  byType: { connect: number; accept: number; close: number };
  tracerCpuS?: number;
  tracerUsPerEvent?: number;
  /** Of which in the kernel (system time), µs. */
  tracerSysUsPerEvent?: number;
  /** Tracer CPU per event by thread name, µs. */
  threadUsPerEvent?: Record<string, number>;
  /** Spans of the workload expected (one per C and per A) and received; OTLP with traces only. */
  spansExpected?: number;
  spansReceived?: number;
  peakRssMB?: number;
  /** Of the RSS, the BPF ring buffer's mapping at the end of the run (twice the ring's size once read through), MB. */
  ringbufRssMB?: number;
  /** Largest anonymous RSS (heap, buffers; no mappings of files or of the ring buffer), sampled every 200 ms, MB. */
  peakAnonRssMB?: number;
  catchUpS?: number;
  /** OTLP: from the workload's start to the last record or span the receiver got, s. */
  lastRecordS?: number;
  /** CPU used by other processes while the load ran, % of all CPUs (noise). */
  otherCpuPct?: number;
  otlpRecordsPerSec?: number;
  otlpDelayP50Ms?: number;
  otlpDelayP99Ms?: number;
  receiverCpuS?: number;
  exitCode?: number;
}

/** paced: one rate's verdict. */
export interface PacedRate {
  /** loadgen --rate, conn/s. */
  rate: number;
  /** From the workload's end to the last record or span received, s (median over the runs). */
  tailS?: Spread;
  /** The tracer kept pace: everything arrived within {@link PACED_TAIL_S} of the workload's end (median run). */
  keptUp: boolean;
}

/** paced: a tracer that keeps pace has exported all within one export batch timer (1 s) and an export of the workload's end. */
export const PACED_TAIL_S = 2;

export interface ConfigSummary extends LossCounts {
  config: ConfigName;
  label: string;
  /** paced scenario: the rate this summary is of. */
  paced?: PacedRate;
  available: boolean;
  reason?: string;
  runs: number;
  failures: string[];
  connPerSec?: Spread;
  ratioToUntraced?: number;
  loadgenUsPerConn?: Spread;
  /** (median loadgen µs/conn) / (untraced's) - 1, %. */
  loadgenVsUntracedPct?: number;
  connections: number;
  accepted: number;
  closedAtAccept?: number;
  expectedEvents: number;
  receivedEvents: number;
  expectedByType: { connect: number; accept: number; close: number };
  byType: { connect: number; accept: number; close: number };
  spansExpected?: number;
  spansReceived?: number;
  lastRecordS?: Spread;
  tracerUsPerEvent?: Spread;
  /** Tracer CPU per connection delivered, µs: per event x the workload's events per connection. */
  tracerUsPerConn?: Spread;
  tracerSysUsPerEvent?: Spread;
  threadUsPerEvent?: Record<string, number>;
  peakRssMB?: number;
  ringbufRssMB?: number;
  peakAnonRssMB?: number;
  catchUpS?: Spread;
  otherCpuPct?: Spread;
  otlpRecordsPerSec?: Spread;
  otlpDelayP50Ms?: Spread;
  otlpDelayP99Ms?: Spread;
}

export interface Target {
  name: string;
  config: string;
  status: 'PASS' | 'MISS' | 'N/A';
  value: string;
  target: string;
  margin: string;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  kernel: string;
  node: string;
  bpftrace: string;
  date: string;
}

export interface ProfileReport {
  mode: string;
  file: string;
  events: number;
  tracerCpuS: number;
  threadCpuS: Record<string, number>;
  summary: ProfileSummary;
}

/** A scenario: its own workload, run against a few configurations. */
export interface ScenarioReport {
  name: 'reset-before-accept' | 'reset-racing-accept' | 'burst' | 'paced';
  /** loadgen's command line. */
  workload: string;
  connectionsPerRun: number;
  rounds: number;
  configs: ConfigSummary[];
  /** paced: seconds at each rate. */
  pacedSeconds?: number;
  /** Why it could not run (or not for some configuration). */
  notes: string[];
}

/**
 * bench/otlp-record-cost.ts's line: µs of CPU per log record for each step, no
 * network, on the tracer's path (src/otlp/wire/requests.ts) and on the SDK's stock
 * path, medians of interleaved passes over the same events.
 */
export interface RecordCost {
  records: number;
  passes: number;
  /** eventAttributes + logBody; connectionIds; LogsEncoder.encode (LogItems, batches of 512) on top. */
  encoder: { mappingUs: number; idsUs: number; encodeUs: number; totalUs: number; bytesPerRecord: number };
  /** toLogRecord; + logContext; + Logger.emit; + ProtobufLogsSerializer (batches of 512). */
  sdk: { mappingUs: number; idsUs: number; emitUs: number; serializeUs: number; totalUs: number; bytesPerRecord: number };
  /** encoder.totalUs / sdk.totalUs. */
  ratio: number;
  /** One batch encoded both ways: the same bytes. */
  sameBytes: boolean;
}

export interface BenchReport {
  mode: 'quick' | 'full';
  machine: Machine;
  /** Which of the CLI's newer flags it has (from its --help). */
  features?: CliFeatures;
  workload: {
    connectionsPerRun: number;
    threads: number;
    rounds: number;
    eventsPerConnection: number;
    calibratedConnPerSec?: number;
    netns: boolean;
    /** The measured CLI's command line (node, its flags, the script), paths relative to the repository. */
    cli?: string;
  };
  interference: string[];
  configs: ConfigSummary[];
  runs: RunResult[];
  targets: Target[];
  scenarios: ScenarioReport[];
  pipeline: PipelineResult;
  recordCost?: RecordCost;
  profiles: ProfileReport[];
  durationS: number;
}

const sum = (xs: readonly (number | undefined)[]): number => xs.reduce<number>((a, b) => a + (b ?? 0), 0);
const defined = <T>(xs: readonly (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);

export function summarize(
  config: ConfigName,
  label: string,
  runs: readonly RunResult[],
  unavailable: string | undefined,
  untraced: ConfigSummary | undefined,
): ConfigSummary {
  const ok = runs.filter((r) => r.ok);
  const s: ConfigSummary = {
    config,
    label,
    available: unavailable === undefined,
    reason: unavailable,
    runs: ok.length,
    failures: runs.filter((r) => !r.ok).map((r) => `round ${r.round}: ${r.error ?? 'failed'}`),
    connections: sum(ok.map((r) => r.connections)),
    accepted: sum(ok.map((r) => r.accepted)),
    closedAtAccept: ok.some((r) => r.closedAtAccept !== undefined) ? sum(ok.map((r) => r.closedAtAccept)) : undefined,
    expectedEvents: config === 'untraced' ? 0 : sum(ok.map((r) => r.expectedEvents)),
    receivedEvents: sum(ok.map((r) => r.receivedEvents)),
    expectedByType: {
      connect: sum(ok.map((r) => r.expectedByType.connect)),
      accept: sum(ok.map((r) => r.expectedByType.accept)),
      close: sum(ok.map((r) => r.expectedByType.close)),
    },
    byType: {
      connect: sum(ok.map((r) => r.byType.connect)),
      accept: sum(ok.map((r) => r.byType.accept)),
      close: sum(ok.map((r) => r.byType.close)),
    },
  };
  if (!ok.length) return s;
  s.connPerSec = spread(ok.map((r) => r.connPerSec));
  s.otherCpuPct = spread(defined(ok.map((r) => r.otherCpuPct)));
  s.loadgenUsPerConn = spread(ok.map((r) => r.loadgenUsPerConn));
  if (untraced?.connPerSec && s.connPerSec) s.ratioToUntraced = s.connPerSec.median / untraced.connPerSec.median;
  if (untraced?.loadgenUsPerConn && s.loadgenUsPerConn) {
    s.loadgenVsUntracedPct = 100 * (s.loadgenUsPerConn.median / untraced.loadgenUsPerConn.median - 1);
  }
  if (config === 'untraced') return s;
  const maybeSum = (xs: (number | undefined)[]): number | undefined => (xs.some((x) => x !== undefined) ? sum(xs) : undefined);
  s.ringbufLost = maybeSum(ok.map((r) => r.ringbufLost));
  s.sockMapFull = maybeSum(ok.map((r) => r.sockMapFull));
  s.probeMissed = maybeSum(ok.map((r) => r.probeMissed));
  s.otlpDropped = maybeSum(ok.map((r) => r.otlpDropped));
  s.peerLost = maybeSum(ok.map((r) => r.peerLost));
  s.malformed = maybeSum(ok.map((r) => r.malformed));
  s.tracerUsPerEvent = spread(defined(ok.map((r) => r.tracerUsPerEvent)));
  s.tracerSysUsPerEvent = spread(defined(ok.map((r) => r.tracerSysUsPerEvent)));
  s.tracerUsPerConn = spread(defined(ok.map((r) => (r.tracerUsPerEvent !== undefined && r.connections ? (r.tracerUsPerEvent * r.expectedEvents) / r.connections : undefined))));
  s.spansExpected = maybeSum(ok.map((r) => r.spansExpected));
  s.spansReceived = maybeSum(ok.map((r) => r.spansReceived));
  s.lastRecordS = spread(defined(ok.map((r) => r.lastRecordS)));
  s.peakRssMB = Math.max(...defined(ok.map((r) => r.peakRssMB)), 0);
  const ring = defined(ok.map((r) => r.ringbufRssMB));
  if (ring.length) s.ringbufRssMB = Math.max(...ring);
  const anon = defined(ok.map((r) => r.peakAnonRssMB));
  if (anon.length) s.peakAnonRssMB = Math.max(...anon);
  s.catchUpS = spread(defined(ok.map((r) => r.catchUpS)));
  const threads: Record<string, number[]> = {};
  for (const r of ok) for (const [k, v] of Object.entries(r.threadUsPerEvent ?? {})) (threads[k] ??= []).push(v);
  s.threadUsPerEvent = Object.fromEntries(Object.entries(threads).map(([k, v]) => [k, spread(v)?.median ?? 0]));
  if (isOtlp(config)) {
    s.otlpRecordsPerSec = spread(defined(ok.map((r) => r.otlpRecordsPerSec)));
    s.otlpDelayP50Ms = spread(defined(ok.map((r) => r.otlpDelayP50Ms)));
    s.otlpDelayP99Ms = spread(defined(ok.map((r) => r.otlpDelayP99Ms)));
  }
  return s;
}
