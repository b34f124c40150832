/**
 * The configurations the bench measures on the same workload, and how each is
 * started, watched (progress while it catches up) and stopped (final counts).
 *
 *   untraced     no tracer
 *   table        tcptracer                                      stdout -> tmpfs file
 *   table-noid   tcptracer --no-identity (what the container/pod lookup costs)
 *   json         tcptracer --json                               stdout -> tmpfs file
 *   otlp         tcptracer --otlp -q --otlp-signals logs        -> bench/otlp-receiver.ts
 *   otlp-traces  tcptracer --otlp -q --otlp-signals logs,traces -> the same receiver
 *   bpftrace     bpftrace bench/tcptracer.bt                    stdout -> tmpfs file
 *   floor        bench/out/floor (C, libbpf, same probe object), counts only
 *
 * Table/JSON/bpftrace output goes to a file on tmpfs rather than /dev/null so
 * that every event received can be counted afterwards; a tmpfs write is a page
 * cache copy with no reader process, as cheap as /dev/null's in practice.
 */
import { closeSync, openSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ReceiverClient, ReceiverStats } from './otlp-receiver.ts';
import { interrupt, start, waitFor, type Child } from './proc.ts';

export const BANNER = 'Tracing TCP established connections. Ctrl-C to end.';

export type ConfigName = 'untraced' | 'table' | 'table-noid' | 'json' | 'otlp' | 'otlp-traces' | 'bpftrace' | 'floor';

export const CONFIGS: readonly ConfigName[] = ['untraced', 'table', 'table-noid', 'json', 'otlp', 'otlp-traces', 'bpftrace', 'floor'];

export const LABELS: Record<ConfigName, string> = {
  untraced: 'untraced',
  table: 'tcptracer (table)',
  'table-noid': 'tcptracer --no-identity',
  json: 'tcptracer --json',
  otlp: 'tcptracer --otlp -q (logs)',
  'otlp-traces': 'tcptracer --otlp -q (logs,traces)',
  bpftrace: 'bpftrace peer',
  floor: 'C floor (libbpf)',
};

/** The configurations that export to the bench's OTLP receiver. */
export const isOtlp = (c: ConfigName): boolean => c === 'otlp' || c === 'otlp-traces';

/** The flags of the measured CLI that change what the bench runs (from its --help). */
export interface CliFeatures {
  /** --otlp-signals: logs and/or traces (spans); without it the CLI exports logs only. */
  otlpSignals: boolean;
  /** --ringbuf-size BYTES. */
  ringbufSize: boolean;
  /** --trace-self: the tracer leaves its own process out by default. */
  traceSelf: boolean;
  /** --failed: connects that never establish become events. */
  failed: boolean;
}

export function cliFeatures(help: string): CliFeatures {
  return {
    otlpSignals: help.includes('--otlp-signals'),
    ringbufSize: help.includes('--ringbuf-size'),
    traceSelf: help.includes('--trace-self'),
    failed: help.includes('--failed'),
  };
}

export interface Env {
  root: string;
  tmp: string;
  comm: string;
  /** argv to run the CLI: [node, src/cli.ts] (plus node flags). */
  cli: string[];
  floor: string;
  /** bench/out/loadgen */
  loadgen: string;
  btScript: string;
  receiver: ReceiverClient | undefined;
  startTimeoutMs: number;
  features: CliFeatures;
}

export interface Counts {
  /** "Lost N events" lines (bpftrace's own loss reports), summed. */
  lostReported: number;
  total: number;
  matched: number;
  connect: number;
  accept: number;
  close: number;
}

export interface Final extends Counts {
  exitCode: number;
  killed: boolean;
  /** Kernel ring buffer losses (stats map index 0), when the tracer reports them. */
  ringbufLost: number | undefined;
  /** Sockets the probe could not track (stats map index 1). */
  sockMapFull: number | undefined;
  /** Runs of the probe the kernel skipped (bpf_prog_info recursion_misses). */
  probeMissed: number | undefined;
  /** OTLP records dropped (queue full + export failed), as the CLI reports them. */
  otlpDropped: number | undefined;
  /** bpftrace's own "Lost N events". */
  peerLost: number | undefined;
  /** Records the CLI could not decode (layout mismatch between the probe object and src/event.ts). */
  malformed: number | undefined;
  otlp: ReceiverStats | undefined;
  /** Spans of the workload received (OTLP with traces), else undefined. */
  spans: number | undefined;
  stderrTail: string;
}

export interface Running {
  pid: number;
  child: Child;
  /** A number that grows while the tracer still delivers events. */
  progress(): Promise<number>;
  /** No progress for this long means it caught up. */
  stableMs: number;
  finish(): Promise<Final>;
}

const emptyCounts = (): Counts => ({ lostReported: 0, total: 0, matched: 0, connect: 0, accept: 0, close: 0 });

/**
 * Counts event lines of a table / bpftrace file ("T PID COMM ...") or an NDJSON
 * file, streaming, and those whose comm is `comm`.
 */
export function countFile(path: string, kind: 'table' | 'json', comm: string): Counts {
  const c = emptyCounts();
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return c;
  }
  const chunk = Buffer.allocUnsafe(8 << 20);
  let carry = '';
  const commJson = `"comm":${JSON.stringify(comm)}`;
  const line = (l: string): void => {
    let type: string | undefined;
    let mine = false;
    if (kind === 'json') {
      if (!l.startsWith('{')) return;
      const t = /"type":"(\w+)"/.exec(l);
      type = t?.[1];
      mine = l.includes(commJson);
    } else {
      const lost = /^Lost (\d+) events/.exec(l);
      if (lost) c.lostReported += Number(lost[1]);
      if (l.length < 2 || l[1] !== ' ' || !'CAX'.includes(l[0] ?? '')) return;
      type = l[0] === 'C' ? 'connect' : l[0] === 'A' ? 'accept' : 'close';
      mine = l.split(/\s+/, 3)[2] === comm;
    }
    c.total++;
    if (!mine) return;
    c.matched++;
    if (type === 'connect') c.connect++;
    else if (type === 'accept') c.accept++;
    else if (type === 'close') c.close++;
  };
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const text = carry + chunk.toString('latin1', 0, n);
      const lines = text.split('\n');
      carry = lines.pop() ?? '';
      for (const l of lines) line(l);
    }
    if (carry) line(carry);
  } finally {
    closeSync(fd);
  }
  return c;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function num(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** What the CLI prints at exit: "tcptracer: N events lost (ring buffer full), M sockets untracked (socket map full)". */
function cliLosses(stderr: string): { ringbufLost: number; sockMapFull: number; probeMissed: number; malformed: number; otlpDropped: number | undefined } {
  let ringbufLost = 0;
  let sockMapFull = 0;
  let probeMissed = 0;
  let malformed = 0;
  for (const m of stderr.matchAll(/(\d+) malformed records/g)) malformed = Math.max(malformed, Number(m[1]));
  for (const m of stderr.matchAll(/(\d+) events lost \(ring buffer full\)/g)) ringbufLost = Math.max(ringbufLost, Number(m[1]));
  for (const m of stderr.matchAll(/(\d+) sockets untracked/g)) sockMapFull = Math.max(sockMapFull, Number(m[1]));
  for (const m of stderr.matchAll(/(\d+) probe runs skipped/g)) probeMissed = Math.max(probeMissed, Number(m[1]));
  let otlpDropped: number | undefined;
  for (const m of stderr.matchAll(/otlp: (\d+) records dropped/g)) otlpDropped = Math.max(otlpDropped ?? 0, Number(m[1]));
  return { ringbufLost, sockMapFull, probeMissed, malformed, otlpDropped };
}

const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ').slice(0, 400);

class StartError extends Error {}
export { StartError };

async function awaitBanner(child: Child, where: () => string, env: Env, what: string): Promise<void> {
  const ok = await waitFor(() => where().includes(BANNER), env.startTimeoutMs, () => child.running());
  if (!ok) {
    const why = child.running() ? `no banner within ${env.startTimeoutMs} ms` : `exited with ${await child.exited}`;
    if (child.running()) await interrupt(child, 2000);
    throw new StartError(`${what}: ${why}: ${tail(child.stderr()) || '(no stderr)'}`);
  }
}

function fileTracer(env: Env, name: 'table' | 'table-noid' | 'json' | 'bpftrace', cmd: string, args: string[]): Promise<Running> {
  const out = join(env.tmp, `${name}.out`);
  const fd = openSync(out, 'w');
  const child = start(cmd, args, { stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  const readHead = (): string => {
    try {
      const h = openSync(out, 'r');
      const b = Buffer.alloc(4096);
      const n = readSync(h, b, 0, b.length, 0);
      closeSync(h);
      return b.toString('utf8', 0, n);
    } catch {
      return '';
    }
  };
  const bannerIn = name === 'json' ? () => child.stderr() : readHead;
  return awaitBanner(child, bannerIn, env, LABELS[name]).then(() => ({
    pid: child.pid,
    child,
    stableMs: 400,
    progress: () => Promise.resolve(fileSize(out)),
    finish: async () => {
      const { code, killed } = await interrupt(child, 30_000);
      const counts = countFile(out, name === 'json' ? 'json' : 'table', env.comm);
      const err = child.stderr();
      try {
        unlinkSync(out);
      } catch {
        // already gone
      }
      const losses = name === 'bpftrace' ? undefined : cliLosses(err);
      return {
        ...counts,
        exitCode: code,
        killed,
        ringbufLost: losses?.ringbufLost,
        sockMapFull: losses?.sockMapFull,
        probeMissed: losses?.probeMissed,
        otlpDropped: undefined,
        peerLost: name === 'bpftrace' ? counts.lostReported + (num(/Lost (\d+) events/, err) ?? 0) : undefined,
        malformed: losses?.malformed,
        otlp: undefined,
        spans: undefined,
        stderrTail: tail(err),
      };
    },
  }));
}

/** `signals`: the --otlp-signals value (not passed when the CLI has no such flag: it exports logs only). */
async function otlpTracer(env: Env, signals: 'logs' | 'logs,traces', label: string): Promise<Running> {
  const receiver = env.receiver;
  if (!receiver) throw new StartError('no OTLP receiver');
  await receiver.reset();
  const [node, ...rest] = env.cli;
  const flags = env.features.otlpSignals ? ['--otlp-signals', signals] : [];
  const child = start(node ?? process.execPath, [...rest, '--otlp', '-q', ...flags, '--otlp-endpoint', receiver.endpoint], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await awaitBanner(child, () => child.stderr() + child.stdout(), env, label);
  return {
    pid: child.pid,
    child,
    stableMs: 1600, // the export batch timer is 1 s
    progress: async () => {
      const s = await receiver.stats();
      return s.records + s.spans;
    },
    finish: async () => {
      const { code, killed } = await interrupt(child, 30_000);
      const s = await receiver.stats();
      const err = child.stderr();
      const losses = cliLosses(err);
      return {
        lostReported: 0,
        total: s.records,
        matched: s.matched,
        connect: s.byEvent['tcp.connect'] ?? 0,
        accept: s.byEvent['tcp.accept'] ?? 0,
        close: s.byEvent['tcp.close'] ?? 0,
        exitCode: code,
        killed,
        ringbufLost: losses.ringbufLost,
        sockMapFull: losses.sockMapFull,
        probeMissed: losses.probeMissed,
        otlpDropped: losses.otlpDropped ?? 0,
        peerLost: undefined,
        malformed: losses.malformed,
        otlp: s,
        spans: signals === 'logs,traces' || s.spans > 0 ? s.spansMatched : undefined,
        stderrTail: tail(err),
      };
    },
  };
}

async function floorTracer(env: Env): Promise<Running> {
  const child = start(env.floor, ['--comm', env.comm]);
  await awaitBanner(child, () => child.stderr(), env, LABELS.floor);
  const lastCount = (): number => {
    const m = /count (\d+)\n(?![\s\S]*count \d+)/.exec(child.stdout());
    return m ? Number(m[1]) : 0;
  };
  return {
    pid: child.pid,
    child,
    stableMs: 400,
    progress: () => Promise.resolve(lastCount()),
    finish: async () => {
      const { code, killed } = await interrupt(child, 30_000);
      const line = child.stdout().trim().split('\n').at(-1) ?? '';
      let j: Record<string, number> = {};
      try {
        j = JSON.parse(line) as Record<string, number>;
      } catch {
        // reported through exitCode / stderr
      }
      return {
        lostReported: 0,
        total: j.events ?? 0,
        matched: j.matched ?? 0,
        connect: j.connect ?? 0,
        accept: j.accept ?? 0,
        close: j.close ?? 0,
        exitCode: code,
        killed,
        ringbufLost: j.ringbuf_lost,
        sockMapFull: j.sock_map_full,
        probeMissed: j.prog_misses,
        otlpDropped: undefined,
        peerLost: undefined,
        malformed: j.malformed,
        otlp: undefined,
        spans: undefined,
        stderrTail: tail(child.stderr()),
      };
    },
  };
}

/** Starts the tracer of a configuration and waits until it is attached; undefined for untraced. */
export async function startTracer(name: ConfigName, env: Env): Promise<Running | undefined> {
  const [node, ...cliArgs] = env.cli;
  const nodeBin = node ?? process.execPath;
  switch (name) {
    case 'untraced':
      return undefined;
    case 'table':
      return fileTracer(env, 'table', nodeBin, cliArgs);
    case 'table-noid':
      return fileTracer(env, 'table-noid', nodeBin, [...cliArgs, '--no-identity']);
    case 'json':
      return fileTracer(env, 'json', nodeBin, [...cliArgs, '--json']);
    case 'otlp':
      return otlpTracer(env, 'logs', LABELS.otlp);
    case 'otlp-traces':
      return otlpTracer(env, 'logs,traces', LABELS['otlp-traces']);
    case 'bpftrace':
      return fileTracer(env, 'bpftrace', 'bpftrace', [env.btScript]);
    case 'floor':
      return floorTracer(env);
  }
}
