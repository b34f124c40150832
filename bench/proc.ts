/**
 * Process plumbing for the bench: spawning children that are always killed
 * when the bench ends (normally, on error, or on a signal), waiting for a line
 * of output with a deadline, and reading /proc (CPU time per thread, peak RSS).
 */
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const children = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL: used on the way out). */
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.stderr.write(`bench: interrupted (${sig})\n`);
      process.exit(130);
    });
  }
}

/** A child whose stderr (and optionally stdout) is kept, bounded, for banners and messages. */
export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Everything written to stderr so far (last 256 KiB). */
  stderr(): string;
  /** Everything written to stdout so far (last 256 KiB), if stdout was piped. */
  stdout(): string;
  /** Resolves with the exit code (or 128 + signal number, as a shell would). */
  readonly exited: Promise<number>;
  running(): boolean;
}

const KEEP = 256 << 10;

export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  hookExit();
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(proc);
  let err = '';
  let out = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    err = (err + d).slice(-KEEP);
  });
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (d: string) => {
    out = (out + d).slice(-KEEP);
  });
  let done = false;
  const exited = new Promise<number>((resolve) => {
    proc.on('error', (e) => {
      err += `\n${e.message}`;
      done = true;
      children.delete(proc);
      resolve(127);
    });
    proc.on('close', (code, signal) => {
      done = true;
      children.delete(proc);
      resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15));
    });
  });
  return {
    proc,
    pid: proc.pid ?? -1,
    stderr: () => err,
    stdout: () => out,
    exited,
    running: () => !done,
  };
}

/** Waits until `test()` is true, polling every `everyMs`; false on timeout or when `alive()` turns false. */
export async function waitFor(test: () => boolean, timeoutMs: number, alive: () => boolean = () => true, everyMs = 25): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (test()) return true;
    if (!alive() || performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** SIGINT, then SIGKILL after `graceMs`. Resolves with the exit code and whether it had to be killed. */
export async function interrupt(c: Child, graceMs: number): Promise<{ code: number; killed: boolean }> {
  if (!c.running()) return { code: await c.exited, killed: false };
  c.proc.kill('SIGINT');
  const timer = sleep(graceMs).then(() => 'timeout' as const);
  const r = await Promise.race([c.exited, timer]);
  if (r !== 'timeout') return { code: r, killed: false };
  c.proc.kill('SIGKILL');
  return { code: await c.exited, killed: true };
}

let clkTck: number | undefined;
/** Clock ticks per second for /proc/<pid>/stat times. */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of a /proc/.../stat line, in ticks; the comm field may hold spaces and parentheses. */
function statTicks(stat: string): { comm: string; ticks: number; user: number } {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  const user = Number(fields[11]);
  return { comm: stat.slice(open + 1, close), ticks: user + Number(fields[12]), user };
}

export interface CpuSample {
  /** Whole process, user + system, seconds. */
  total: number;
  /** Whole process, user mode only, seconds. */
  user: number;
  /** Per thread name ("main" for the thread whose tid is the pid), seconds. */
  threads: Record<string, number>;
}

/** CPU time of a live process and of each of its threads; undefined if it is gone. */
export function sampleCpu(pid: number): CpuSample | undefined {
  const hz = ticksPerSecond();
  try {
    const main = statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const total = main.ticks / hz;
    const threads: Record<string, number> = {};
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const { comm, ticks } = statTicks(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
        // threads started by the main thread without a name of their own inherit its
        // name: in the CLI that is the native loader's ring buffer drain thread
        const name = tid === String(pid) ? 'main' : comm === main.comm ? 'drain' : comm;
        threads[name] = (threads[name] ?? 0) + ticks / hz;
      } catch {
        // thread ended between readdir and read
      }
    }
    return { total, user: main.user / hz, threads };
  } catch {
    return undefined;
  }
}

/** Busy CPU time of the whole machine (all CPUs, everything but idle and iowait), seconds. */
export function machineBusyS(): number {
  try {
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - (f[3] ?? 0) - (f[4] ?? 0)) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** Peak resident set size (VmHWM) in MB; undefined if the process is gone. */
export function peakRssMB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The largest anonymous resident size (RssAnon: heap, stacks, buffers; not the
 * ring buffer's mapping nor the binaries) of `pid`, sampled every `everyMs`
 * until stop() is called, which returns it in MB (undefined if never read).
 */
export function anonRssSampler(pid: number, everyMs = 200): { stop(): number | undefined } {
  let peakKb: number | undefined;
  const sample = (): void => {
    try {
      const kb = Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      if (Number.isFinite(kb)) peakKb = Math.max(peakKb ?? 0, kb);
    } catch {
      // gone
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    stop: () => {
      sample();
      clearInterval(timer);
      return peakKb === undefined ? undefined : peakKb / 1024;
    },
  };
}

/**
 * Resident size of the process's BPF map mappings (smaps `anon_inode:bpf-map`:
 * in the CLI and the floor, the ring buffer), MB; undefined if it is gone. A
 * BPF ring buffer's data area is mapped twice in a row (so that a record can
 * wrap around), so once the reader went through all of it this is twice the
 * ring buffer's size, which is itself allocated (once) in the kernel.
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

/**
 * Other processes holding BPF programs (e.g. another tracer attached to the
 * same tracepoints): they add kernel work to every connection and skew results.
 */
export function foreignBpfHolders(exclude: ReadonlySet<number>): string[] {
  const out: string[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    if (exclude.has(pid)) continue;
    let progs = 0;
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) {
        try {
          if (readlinkSync(`/proc/${p}/fd/${fd}`) === 'anon_inode:bpf-prog') progs++;
        } catch {
          // fd closed meanwhile
        }
      }
    } catch {
      continue;
    }
    if (progs === 0) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 100);
    } catch {
      // gone
    }
    out.push(`pid ${p} (${progs} BPF programs): ${cmd}`);
  }
  return out;
}

/** Children of the bench itself (to exclude them from foreignBpfHolders). */
export function ownPids(): Set<number> {
  const s = new Set<number>([process.pid]);
  for (const c of children) if (c.pid !== undefined) s.add(c.pid);
  return s;
}
