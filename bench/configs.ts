/**
 * The configurations measured side by side on one workload, and how each is
 * started, watched while it catches up, and stopped (its final counts):
 *
 *   untraced     no tracer
 *   table        tcptracer                                      stdout -> a file on tmpfs
 *   json         tcptracer --json                               stdout -> a file on tmpfs
 *   json-noid    tcptracer --json --no-identity                 the same: the cost of identity
 *   otlp         tcptracer --otlp -q --otlp-signals logs        -> bench/otlp-receiver.ts
 *   otlp-traces  tcptracer --otlp -q --otlp-signals logs,traces -> the same receiver
 *   otlp-metrics tcptracer --otlp -q --otlp-signals metrics      -> the same receiver, one
 *                collection a second (OTEL_METRIC_EXPORT_INTERVAL=1000): its events are
 *                the connections its cumulative counters say it saw (C or A, and X)
 *   otlp-sampled tcptracer --otlp -q --sample 0.1 (logs,traces) -> the same receiver; its
 *                events are what it delivered plus what it says it sampled out
 *   bpftrace     bpftrace bench/tcptracer.bt                    stdout -> a file on tmpfs
 *   floor        bench/out/floor: C, libbpf, the same probe object, counts only
 */
import { closeSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CONN_COMM } from './churn.ts';
import type { Receiver, ReceiverStats } from './otlp-receiver.ts';
import { interrupt, start, waitFor, type Child } from './proc.ts';

export const CONFIGS = ['untraced', 'table', 'json', 'json-noid', 'otlp', 'otlp-traces', 'otlp-metrics', 'otlp-sampled', 'bpftrace', 'floor'] as const;
export type ConfigName = (typeof CONFIGS)[number];

export const LABELS: Record<ConfigName, string> = {
  untraced: 'untraced',
  table: 'tcptracer (table)',
  json: 'tcptracer --json',
  'json-noid': 'tcptracer --json --no-identity',
  otlp: 'tcptracer --otlp -q (logs)',
  'otlp-traces': 'tcptracer --otlp -q (logs,traces)',
  'otlp-metrics': 'tcptracer --otlp -q (metrics)',
  'otlp-sampled': 'tcptracer --otlp -q --sample 0.1 (logs,traces)',
  bpftrace: 'bpftrace peer',
  floor: 'C floor (libbpf)',
};

export const isOtlp = (c: ConfigName): boolean => c.startsWith('otlp');
/** Not in the main rounds unless --only names it: the main workload resets every connection, which sampling always keeps. */
export const SCENARIO_ONLY: readonly ConfigName[] = ['otlp-sampled'];
/** The metrics collection interval of otlp-metrics, ms: short, so that the last counts arrive soon after the workload. */
export const METRIC_INTERVAL_MS = 1000;

export interface Env {
  tmp: string;
  /** The workload's comm: the events counted are this process's. */
  comm: string;
  /** node and the CLI's script. */
  cli: string[];
  floor: string;
  loadgen: string;
  btScript: string;
  receiver?: Receiver;
}

/** What a tracer delivered and reported when it stopped. */
export interface Final {
  total: number;
  /** Events of the workload, and those per type. */
  matched: number;
  connect: number;
  accept: number;
  close: number;
  exitCode: number;
  killed: boolean;
  /** Kernel ring buffer full, socket map full, probe runs the kernel skipped (recursion_misses). */
  ringbufLost?: number;
  sockMapFull?: number;
  probeMissed?: number;
  /** Open connections whose end the probe never saw (the kernel did not run it): lost X. */
  endsUnseen?: number;
  /** OTLP records dropped (queue full, export failed). */
  otlpDropped?: number;
  /** bpftrace's own "Lost N events". */
  peerLost?: number;
  /** Records the decoder rejected (the probe object and src/event.ts disagree). */
  malformed?: number;
  otlp?: ReceiverStats;
  /** --sample: the log records and spans the tracer says it sampled out (its exit line). */
  sampledOut?: { records: number; spans: number };
  /** The workload's spans received (logs,traces). */
  spans?: number;
  /** JSON: events of the churn's processes (bench/churn.ts), and those that carry a container_id. */
  churnEvents?: number;
  churnIdentified?: number;
  stderrTail: string;
}

export interface Running {
  pid: number;
  child: Child;
  /** Grows while the tracer still delivers. */
  progress(): Promise<number>;
  /** No progress for this long: it caught up. */
  stableMs: number;
  finish(): Promise<Final>;
}

export class StartError extends Error {}

const BANNER = 'Tracing TCP established connections. Ctrl-C to end.';
const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
const maxOf = (re: RegExp, text: string): number => Math.max(0, ...[...text.matchAll(re)].map((m) => Number(m[1])));

/** Counts the event lines of a table/bpftrace ("T PID COMM ...") or NDJSON file, all and the workload's by type. */
function countFile(path: string, json: boolean, comm: string): Pick<Final, 'total' | 'matched' | 'connect' | 'accept' | 'close' | 'churnEvents' | 'churnIdentified'> & { lost: number } {
  const c = { total: 0, matched: 0, connect: 0, accept: 0, close: 0, lost: 0, churnEvents: 0, churnIdentified: 0 };
  const commJson = `"comm":${JSON.stringify(comm)}`;
  const churnJson = `"comm":${JSON.stringify(CONN_COMM)}`;
  const line = (l: string): void => {
    let type: string | undefined;
    if (json) {
      if (!l.startsWith('{')) return;
      if (l.includes(churnJson)) {
        c.churnEvents++;
        if (l.includes('"container_id"')) c.churnIdentified++;
      }
      type = l.includes(commJson) ? /"type":"(\w+)"/.exec(l)?.[1] : '';
    } else {
      c.lost += Number(/^Lost (\d+) events/.exec(l)?.[1] ?? 0);
      if (l[1] !== ' ' || !'CAX'.includes(l[0] ?? '-')) return;
      type = l.split(/\s+/, 3)[2] === comm ? { C: 'connect', A: 'accept', X: 'close' }[l[0] ?? ''] : '';
    }
    c.total++;
    if (type === 'connect' || type === 'accept' || type === 'close') {
      c.matched++;
      c[type]++;
    }
  };
  const fd = openSync(path, 'r');
  const chunk = Buffer.allocUnsafe(8 << 20);
  let carry = '';
  for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
    const lines = (carry + chunk.toString('latin1', 0, n)).split('\n');
    carry = lines.pop() ?? '';
    lines.forEach(line);
  }
  line(carry);
  closeSync(fd);
  return c;
}

/** What the CLI reports on stderr at exit. */
function cliCounts(err: string): Pick<Final, 'ringbufLost' | 'sockMapFull' | 'probeMissed' | 'endsUnseen' | 'malformed' | 'otlpDropped'> {
  return {
    ringbufLost: maxOf(/(\d+) events lost \(ring buffer full\)/g, err),
    sockMapFull: maxOf(/(\d+) sockets untracked/g, err),
    probeMissed: maxOf(/(\d+) probe runs skipped/g, err),
    endsUnseen: maxOf(/(\d+) connection ends lost/g, err),
    malformed: maxOf(/(\d+) malformed records/g, err),
    otlpDropped: maxOf(/otlp: (\d+) records dropped/g, err),
  };
}

/** `otlp: sampled out (not exported, not lost): N records, M spans` (absent: nothing sampled out). */
function sampledOutOf(err: string): { records: number; spans: number } {
  const m = /sampled out \(not exported, not lost\): (\d+) records(?:, (\d+) spans)?/.exec(err);
  return { records: Number(m?.[1] ?? 0), spans: Number(m?.[2] ?? 0) };
}

/**
 * otlp-metrics: the events its counters stand for, host-wide (metrics name no
 * process): a C per client connection, an A per server connection, an X per
 * connection no longer open.
 */
function metricEvents(s: ReceiverStats): Pick<Final, 'total' | 'matched' | 'connect' | 'accept' | 'close'> {
  const { client, server } = s.connections;
  const close = client + server - s.open.client - s.open.server;
  const total = client + server + close;
  return { total, matched: total, connect: client, accept: server, close };
}

function head(path: string): string {
  const b = Buffer.alloc(4096);
  const fd = openSync(path, 'r');
  const n = readSync(fd, b, 0, b.length, 0);
  closeSync(fd);
  return b.toString('utf8', 0, n);
}

/** Starts a configuration's tracer and waits until it is attached (its banner); undefined for untraced. */
export async function startTracer(name: ConfigName, env: Env): Promise<Running | undefined> {
  if (name === 'untraced') return undefined;
  const otlp = isOtlp(name);
  const receiver = otlp ? env.receiver : undefined;
  if (otlp && !receiver) throw new StartError('no OTLP receiver');
  await receiver?.reset();
  const [node = process.execPath, ...cli] = env.cli;
  const argv: Record<Exclude<ConfigName, 'untraced'>, string[]> = {
    table: [node, ...cli],
    json: [node, ...cli, '--json'],
    'json-noid': [node, ...cli, '--json', '--no-identity'],
    otlp: [node, ...cli, '--otlp', '-q', '--otlp-signals', 'logs', '--otlp-endpoint', receiver?.endpoint ?? ''],
    'otlp-traces': [node, ...cli, '--otlp', '-q', '--otlp-signals', 'logs,traces', '--otlp-endpoint', receiver?.endpoint ?? ''],
    'otlp-metrics': [node, ...cli, '--otlp', '-q', '--otlp-signals', 'metrics', '--otlp-endpoint', receiver?.endpoint ?? ''],
    'otlp-sampled': [node, ...cli, '--otlp', '-q', '--sample', '0.1', '--otlp-endpoint', receiver?.endpoint ?? ''],
    bpftrace: ['bpftrace', env.btScript],
    floor: [env.floor, '--comm', env.comm],
  };
  const [cmd = '', ...args] = argv[name];
  // the table, JSON and bpftrace outputs go to a file on tmpfs (a page cache copy, no reader), counted afterwards
  const out = name === 'table' || name === 'json' || name === 'json-noid' || name === 'bpftrace' ? join(env.tmp, `${name}.out`) : undefined;
  const fd = out ? openSync(out, 'w') : 'pipe';
  const metrics = name === 'otlp-metrics';
  const childEnv = metrics ? { ...process.env, OTEL_METRIC_EXPORT_INTERVAL: String(METRIC_INTERVAL_MS), OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'cumulative' } : process.env;
  const child = start(cmd, args, { stdio: ['ignore', fd, 'pipe'], env: childEnv });
  if (typeof fd === 'number') closeSync(fd);
  const banner = (): string => (out && name !== 'json' && name !== 'json-noid' ? head(out) : child.stderr() + child.stdout());
  if (!(await waitFor(() => banner().includes(BANNER), 30_000, () => child.running()))) {
    const why = child.running() ? 'no banner within 30 s' : `exited with ${await child.exited}`;
    await interrupt(child, 2000);
    throw new StartError(`${LABELS[name]}: ${why}: ${tail(child.stderr()) || '(no stderr)'}`);
  }
  const floorCount = (): number => Number(/count (\d+)\n$/.exec(child.stdout())?.[1] ?? 0);
  return {
    pid: child.pid,
    child,
    // the export batch timer is 1 s; metrics: two collections without a change
    stableMs: metrics ? 2.5 * METRIC_INTERVAL_MS : otlp ? 1600 : 400,
    progress: async () => {
      if (out) return statSync(out).size;
      if (!receiver) return floorCount();
      const s = await receiver.stats();
      return metrics ? metricEvents(s).total : s.records + s.spans;
    },
    finish: async () => {
      const { code, killed } = await interrupt(child, 30_000);
      const err = child.stderr();
      const base = { exitCode: code, killed, stderrTail: tail(err) };
      if (out) {
        const c = countFile(out, name !== 'table' && name !== 'bpftrace', env.comm);
        rmSync(out, { force: true });
        if (name !== 'bpftrace') return { ...c, ...base, ...cliCounts(err), otlpDropped: undefined };
        return { ...c, ...base, peerLost: c.lost + maxOf(/Lost (\d+) events/g, err) };
      }
      if (receiver) {
        const s = await receiver.stats(true);
        if (metrics) return { ...metricEvents(s), ...base, ...cliCounts(err), otlp: s };
        const by = (e: string): number => s.byEvent[`tcp.${e}`] ?? 0;
        const spans = name === 'otlp' ? undefined : s.spansMatched;
        const sampledOut = name === 'otlp-sampled' ? sampledOutOf(err) : undefined;
        // the tracer's events: what it delivered and what it sampled out (CPU per event is per event it read)
        const total = s.records + (sampledOut?.records ?? 0);
        return { total, matched: s.matched, connect: by('connect'), accept: by('accept'), close: by('close'), ...base, ...cliCounts(err), otlp: s, spans, sampledOut };
      }
      let j: Record<string, number> = {};
      try {
        j = JSON.parse(child.stdout().trim().split('\n').at(-1) ?? '') as Record<string, number>;
      } catch {
        // said by the exit code and stderr
      }
      const n = (k: string): number => j[k] ?? 0;
      return {
        ...{ total: n('events'), matched: n('matched'), connect: n('connect'), accept: n('accept'), close: n('close') },
        ...{ ringbufLost: n('ringbuf_lost'), sockMapFull: n('sock_map_full'), probeMissed: n('prog_misses'), endsUnseen: n('ends_unseen'), malformed: n('malformed') },
        ...base,
      };
    },
  };
}
