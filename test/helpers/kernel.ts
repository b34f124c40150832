/**
 * Kernel-test plumbing: the gate (skip with a reason, but fail under CI=true),
 * network namespaces, peers, and the real CLI run with --json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test, { after } from 'node:test';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = `${ROOT}src/cli.ts`;
const PEER = `${ROOT}test/fixtures/peer.ts`;

/** Why the kernel tests cannot run here, or undefined when they can. */
export function kernelSkipReason(): string | undefined {
  if (process.geteuid?.() !== 0) return 'kernel tests need root';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel tests need BTF (/sys/kernel/btf/vmlinux)';
  if (!existsSync(`${ROOT}build/Release/tcptracer_loader.node`)) return 'native loader not built (npm run build)';
  return undefined;
}

/**
 * Options for a kernel-test suite: skipped with the reason where the kernel tests
 * cannot run; under CI=true that is a failure instead, registered as a test.
 */
export function kernelSuite(): { skip: string | false } {
  const reason = kernelSkipReason();
  if (reason && process.env.CI === 'true') {
    test('kernel tests must run under CI', () => {
      throw new Error(`${reason} (CI=true: a skipped kernel test is a failure)`);
    });
  }
  return { skip: reason ?? false };
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || r.status}`);
  return r.stdout;
}

/**
 * Children still running when a file's tests are done (a test that failed
 * before stopping its tracer) or when the test process exits are killed,
 * never left behind: a live child would keep the file's process waiting.
 */
const children = new Set<ChildProcess>();
const killChildren = (): void => {
  for (const c of children) c.kill('SIGKILL');
};
after(killChildren);
process.once('exit', killChildren);
export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on hybrid hosts). */
export function cgroup2Root(): string {
  const line = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount');
  return line.split(' ')[1] ?? '';
}

/** rmdir a cgroup, waiting (bounded) for exited tasks to leave it. */
export async function removeCgroup(path: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(path);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' && (e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
      if (i === 100) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export class NetNs {
  readonly name = `tt-${randomBytes(4).toString('hex')}`;
  readonly inode: number;

  constructor() {
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    this.inode = statSync(`/run/netns/${this.name}`).ino;
  }

  /** argv prefix that runs a command inside this namespace */
  exec(): string[] {
    return ['ip', 'netns', 'exec', this.name];
  }

  delete(): void {
    spawnSync('ip', ['netns', 'delete', this.name]);
  }

  /** This namespace's TCP counters (/proc/net/snmp and /proc/net/netstat), e.g. "TcpExt:EmbryonicRsts". */
  counters(): Map<string, number> {
    const lines = sh('ip', ['netns', 'exec', this.name, 'cat', '/proc/net/snmp', '/proc/net/netstat']).split('\n');
    const out = new Map<string, number>();
    // each group is a line of names and a line of values, both led by "Group:"
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const [group, ...names] = lines[i]!.split(' ');
      const values = lines[i + 1]!.split(' ').slice(1);
      names.forEach((name, j) => out.set(`${group}${name}`, Number(values[j])));
    }
    return out;
  }

  /** Connections waiting to be accepted on the TCP listener on `port` (a listener's Recv-Q in ss). */
  acceptQueue(port: number): number {
    const [line = '', ...more] = sh('ip', ['netns', 'exec', this.name, 'ss', '-Hltn', `sport = :${port}`]).trim().split('\n');
    const queued = Number(line.split(/\s+/)[1]);
    if (more.length || !Number.isInteger(queued)) throw new Error(`no single listener on port ${port}: ${line}`);
    return queued;
  }

  /**
   * A veth link from this namespace to `other`, both ends up, with these
   * addresses (CIDR, IPv4 or IPv6): two "hosts" that reach each other.
   * Returns the device names: this namespace's end, then the other's.
   */
  link(other: NetNs, here: string, there: string): [string, string] {
    const [a, b] = [`tt-${randomBytes(3).toString('hex')}`, `tt-${randomBytes(3).toString('hex')}`];
    sh('ip', ['-n', this.name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', other.name]);
    addressUp(this, a, here);
    addressUp(other, b, there);
    return [a, b];
  }
}

/** Puts the address `cidr` (IPv4 or IPv6) on `ns`'s device `dev` and sets it up. */
export function addressUp(ns: NetNs, dev: string, cidr: string): void {
  // no duplicate address detection: an IPv6 address is usable at once
  if (cidr.includes(':')) sh('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', `net.ipv6.conf.${dev}.accept_dad=0`]);
  sh('ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
  sh('ip', ['-n', ns.name, 'link', 'set', dev, 'up']);
}

export interface Peer {
  child: ChildProcess;
  pid: number;
  mntns: number;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Next stdout line. */
  line(): Promise<string>;
}

/** Start a peer (see fixtures/peer.ts); `wrap` prefixes the command (setpriv, unshare...). */
export async function startPeer(
  ns: NetNs,
  args: string[],
  opts: { wrap?: string[]; waitReady?: boolean } = {},
): Promise<Peer> {
  const argv = [...ns.exec(), ...(opts.wrap ?? []), process.execPath, PEER, ...args];
  const [cmd = '', ...rest] = argv;
  const child = spawn(cmd, rest, { stdio: ['pipe', 'pipe', 'inherit'] });
  track(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); }));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const line = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error(`peer ${args.join(' ')} ended`);
    return r.value;
  };
  const peer: Peer = { child, pid: child.pid ?? 0, mntns: 0, exited, line };
  if (opts.waitReady !== false) {
    const [, pid, mntns] = (await line()).split(' ');
    peer.pid = Number(pid);
    peer.mntns = Number(mntns);
  }
  return peer;
}

export interface JsonEvent {
  type: 'connect' | 'accept' | 'close' | 'failed';
  time: string;
  pid: number;
  tid: number;
  comm: string;
  uid: number;
  euid: number;
  role: 'client' | 'server';
  ip: 4 | 6;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  netns: number;
  cgroup_id: number;
  duration_ns?: number;
  bytes_acked?: number;
  bytes_received?: number;
  /** connect: SYN_SENT -> ESTABLISHED */
  handshake_ns?: number;
  /** close: the smoothed RTT (absent: no sample) */
  rtt_us?: number;
  /** close: segments retransmitted */
  retransmits?: number;
  /** close: fin | reset | destroyed */
  end?: string;
  /** failed, and close with an error: the errno's name (null: failed with no error recorded) */
  error?: string | null;
  errno?: number;
  container_id?: string;
  pod_uid?: string;
}

export interface TracerRun {
  child: ChildProcess;
  /** Signal (SIGINT by default), wait for exit; the parsed events (with --json), stderr and exit code. */
  stop(signal?: NodeJS.Signals): Promise<{ events: JsonEvent[]; stderr: string; code: number | null }>;
  /** stderr so far */
  stderr(): string;
  /** stdout so far (with `stdout: 'stalled'`: nothing is read before the tracer exits) */
  stdout(): string;
}

export interface TracerStart {
  /** --json is added unless false. */
  json?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * The tracer's stdout: read as it comes (default); `stalled`, a pipe that
   * nobody reads until the tracer has exited; or a file descriptor.
   */
  stdout?: 'stalled' | number;
}

/**
 * Run the real CLI with the given flags (and --json unless `json: false`);
 * resolves once it is tracing (its banner went to stderr, or stdout with the table).
 */
export async function startTracer(flags: string[], opts: TracerStart = {}): Promise<TracerRun> {
  const args = opts.json === false ? flags : ['--json', ...flags];
  const out = typeof opts.stdout === 'number' ? opts.stdout : 'pipe';
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', out, 'pipe'], env: opts.env ?? process.env });
  track(child);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); }));
  await new Promise<void>((resolve, reject) => {
    // a hang detector, not a speed check: under emulation (test/vm) the OTLP CLI takes ~10 s to start
    const timer = setTimeout(() => { reject(new Error(`tracer did not start: ${stderr}`)); }, 60_000);
    const ready = (): void => {
      clearTimeout(timer);
      clearInterval(dropped);
      resolve();
    };
    const read = (): void => {
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('Ctrl-C to end.')) ready(); // the table's banner
      });
    };
    // at its exit, before node resumes (and so empties) a stream nobody listens to
    if (opts.stdout === 'stalled') child.once('exit', read);
    else read();
    // stdout not read: the banner cannot be seen; the tracer drops root once the probe is attached
    const dropped = setInterval(() => {
      if (opts.stdout !== undefined && /^Uid:\t65534\t/.test(readStatus(child.pid))) ready();
    }, 50);
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('Ctrl-C to end.')) ready();
    });
    void exited.then((code) => {
      clearTimeout(timer);
      clearInterval(dropped);
      reject(new Error(`tracer exited (${code}) before tracing: ${stderr}`));
    });
  });
  return {
    child,
    stderr: () => stderr,
    stdout: () => stdout,
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      child.kill(signal);
      const code = await within(exited, 180_000, `the tracer's exit after ${signal}`).catch((e: unknown) => {
        child.kill('SIGKILL');
        throw new Error(`${(e as Error).message}; its stderr: ${stderr}`);
      });
      // what a stalled pipe still held
      if (opts.stdout === 'stalled') await new Promise<void>((resolve) => { child.stdout?.once('close', resolve); });
      const events = opts.json === false ? [] : stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as JsonEvent);
      return { events, stderr, code };
    },
  };
}

/** /proc/PID/status's Uid line, or '' once the process is gone. */
function readStatus(pid: number | undefined): string {
  try {
    return /^Uid:.*$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[0] ?? '';
  } catch {
    return '';
  }
}

/**
 * Events the kernel lost (ring buffer full), from the tracer's stderr: the last
 * report, which is the final count (a run longer than 5 s also prints the
 * counts as they grow), or undefined when none was reported.
 */
export function lostEvents(stderr: string): number | undefined {
  const last = [...stderr.matchAll(/tcptracer: (\d+) events lost \(ring buffer full\)/g)].at(-1);
  return last ? Number(last[1]) : undefined;
}

/**
 * Runs of the probe the kernel skipped (a BPF program of ours was already
 * running on that CPU: a softirq interrupting it), from the tracer's last
 * report of them; 0 when none was reported.
 */
export function skippedRuns(stderr: string): number {
  const last = [...stderr.matchAll(/(\d+) probe runs skipped/g)].at(-1);
  return last ? Number(last[1]) : 0;
}

/** `p`, or an error naming `what` after `ms`: a wait in a test that cannot hang. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: not within ${ms / 1000} s`)); }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run a command and return {code, stdout, stderr}; `fds` become its descriptors 3, 4... */
export function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, fds: number[] = []): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env, timeout: 30_000, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe', ...fds] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export { sh };

/**
 * A C test fixture (test/fixtures/NAME.c) compiled with `cc -O2 -Wall -Wextra -Werror` and `flags`
 * into build/test/NAME, again whenever the source is newer than the binary; returns its path.
 */
export function fixtureBinary(name: string, flags: readonly string[] = []): string {
  const source = `${ROOT}test/fixtures/${name}.c`;
  const binary = `${ROOT}build/test/${name}`;
  const built = ((): number => {
    try {
      return statSync(binary).mtimeMs;
    } catch {
      return 0;
    }
  })();
  if (built < statSync(source).mtimeMs) {
    mkdirSync(`${ROOT}build/test`, { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', ...flags, '-o', binary, source], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc ${source}: ${r.stderr || r.error?.message}`);
  }
  return binary;
}
