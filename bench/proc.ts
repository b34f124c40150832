/**
 * Process plumbing: children that are always killed when the bench ends,
 * waiting with a deadline, and /proc readings (CPU per thread, RSS, the BPF
 * ring buffer's mapping).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** USER_HZ: the unit of /proc's CPU times on every Linux architecture. */
const HZ = 100;
const children = new Set<ChildProcess>();

export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killAll();
    process.stderr.write(`bench: interrupted (${sig})\n`);
    process.exit(130);
  });
}

/** A child whose stdout and stderr (when piped) are kept, their last 256 KiB. */
export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  stderr(): string;
  stdout(): string;
  /** The exit code, or 128 + the signal's number. */
  readonly exited: Promise<number>;
  running(): boolean;
}

export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(proc);
  const kept = { out: '', err: '' };
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (kept.out = (kept.out + d).slice(-(256 << 10))));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (kept.err = (kept.err + d).slice(-(256 << 10))));
  let done = false;
  const exited = new Promise<number>((resolve) => {
    const end = (code: number): void => {
      done = true;
      children.delete(proc);
      resolve(code);
    };
    proc.on('error', (e) => {
      kept.err += `\n${e.message}`;
      end(127);
    });
    proc.on('close', (code, signal) => {
      end(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15));
    });
  });
  return { proc, pid: proc.pid ?? -1, stderr: () => kept.err, stdout: () => kept.out, exited, running: () => !done };
}

/** Polls `test` until it is true (true), or the deadline passes or `alive` turns false (false). */
export async function waitFor(test: () => boolean, timeoutMs: number, alive: () => boolean = () => true, everyMs = 25): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (test()) return true;
    if (!alive() || performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** SIGINT, then SIGKILL after `graceMs`. */
export async function interrupt(c: Child, graceMs: number): Promise<{ code: number; killed: boolean }> {
  if (!c.running()) return { code: await c.exited, killed: false };
  c.proc.kill('SIGINT');
  const r = await Promise.race([c.exited, sleep(graceMs).then(() => 'timeout' as const)]);
  if (r !== 'timeout') return { code: r, killed: false };
  c.proc.kill('SIGKILL');
  return { code: await c.exited, killed: true };
}

/** comm and utime + stime (ticks) of a /proc stat line; the comm may hold spaces and parentheses. */
function statTicks(stat: string): { comm: string; ticks: number; user: number } {
  const close = stat.lastIndexOf(')');
  const f = stat.slice(close + 2).split(' ');
  const user = Number(f[11]);
  return { comm: stat.slice(stat.indexOf('(') + 1, close), ticks: user + Number(f[12]), user };
}

/** CPU seconds of a process (user + system, user alone) and per thread name; undefined once it is gone. */
export interface CpuSample {
  total: number;
  user: number;
  threads: Record<string, number>;
}

export function sampleCpu(pid: number): CpuSample | undefined {
  try {
    const main = statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const threads: Record<string, number> = {};
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const { comm, ticks } = statTicks(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
        // unnamed threads inherit the main thread's name: in the CLI, the loader's drain thread
        const name = tid === String(pid) ? 'main' : comm === main.comm ? 'drain' : comm;
        threads[name] = (threads[name] ?? 0) + ticks / HZ;
      } catch {
        // the thread ended meanwhile
      }
    }
    return { total: main.ticks / HZ, user: main.user / HZ, threads };
  } catch {
    return undefined;
  }
}

export function cpuDelta(a: CpuSample | undefined, b: CpuSample | undefined): CpuSample | undefined {
  if (!a || !b) return undefined;
  const threads = Object.fromEntries(Object.entries(b.threads).map(([k, v]) => [k, v - (a.threads[k] ?? 0)]));
  return { total: b.total - a.total, user: b.user - a.user, threads };
}

/** Busy CPU seconds of the whole machine (all but idle and iowait). */
export function machineBusyS(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  return (f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0)) / HZ;
}

/** A `kB` field of /proc/PID/status in MB (VmHWM: peak RSS; RssAnon), undefined once it is gone. */
export function statusMB(pid: number, field: 'VmHWM' | 'RssAnon'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The largest RssAnon (heap and buffers: no file or ring buffer mapping) sampled every 200 ms until stop(), MB. */
export function anonRssSampler(pid: number): { stop(): number | undefined } {
  let peak: number | undefined;
  const sample = (): void => {
    const mb = statusMB(pid, 'RssAnon');
    if (mb !== undefined) peak = Math.max(peak ?? 0, mb);
  };
  sample();
  const timer = setInterval(sample, 200).unref();
  return {
    stop: () => {
      sample();
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * Resident size of the process's BPF map mappings, MB: the ring buffer's, in
 * the CLI and the floor. The floor's libbpf consumer maps the data area twice in
 * a row (a record may wrap), so once read through that is twice the ring's
 * size; the CLI's own consumer (bpf/loader/ring.c) maps it once.
 */
export function bpfMappedMB(pid: number): number | undefined {
  try {
    let kb = 0;
    let inMap = false;
    for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inMap = line.endsWith('anon_inode:bpf-map');
      else if (inMap && line.startsWith('Rss:')) kb += Number(/(\d+)/.exec(line)?.[1] ?? 0);
    }
    return kb / 1024;
  } catch {
    return undefined;
  }
}

/** Processes other than the bench's that hold BPF programs: their probes would skew every figure. */
export function foreignBpfHolders(): string[] {
  const ours = new Set([process.pid, ...[...children].map((c) => c.pid)]);
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d) && !ours.has(Number(d)))) {
    try {
      const progs = readdirSync(`/proc/${p}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${p}/fd/${fd}`) === 'anon_inode:bpf-prog';
        } catch {
          return false;
        }
      }).length;
      if (progs) out.push(`pid ${p} (${progs} BPF programs): ${readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 100)}`);
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}
