/**
 * Cgroup churn beside a workload, as containers and probes make it on a node
 * (issue 19): about `perSecond` short-lived container cgroups a second, each
 * with one process that makes one connection (bench/out/loadgen --count 1
 * --netns, under the name CONN_COMM so that the workload's counts leave it
 * out), removed once that process is gone. Beside them a static tree named as
 * a node's (services, pods with containers), so that a walk of the tree costs
 * what it would there.
 *
 * Layouts: `hybrid` (cgroup v1 controllers + cgroup2, this machine's): each
 * container cgroup is made in cgroup2 and in the cpu, memory and pids v1
 * hierarchies, as runc does there; `unified`: in cgroup2 only.
 *
 * Bounded (at most MAX_INFLIGHT processes at a time, each stopped after
 * 5 s) and it removes every cgroup it made, also when the bench fails: the
 * sync cleanup runs at exit.
 */
import { mkdirSync, readFileSync, rmdirSync, symlinkSync, existsSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { start, type Child } from './proc.ts';

export type Layout = 'hybrid' | 'unified';
/** The comm of the churn's processes: not the workload's. */
export const CONN_COMM = 'churnconn';
const MAX_INFLIGHT = 20;
const V1 = ['cpu', 'memory', 'pids'];
/** The static tree: services and pods of CONTAINERS_PER_POD containers each. */
const SERVICES = 40;
const PODS = 30;
const CONTAINERS_PER_POD = 2;

export interface ChurnStats {
  created: number;
  /** Ticks skipped because MAX_INFLIGHT processes were still running. */
  skipped: number;
  /** Processes that failed (not exit 0), and cgroups that could not be removed. */
  failed: number;
}

/** The host's cgroup mounts: cgroup2's, and the v1 hierarchies' by controller. */
export function cgroupMounts(): { v2: string | undefined; v1: Map<string, string> } {
  let v2: string | undefined;
  const v1 = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, dir, type, opts] = line.split(' ');
    if (dir === undefined) continue;
    if (type === 'cgroup2') v2 ??= dir;
    if (type === 'cgroup') for (const o of opts?.split(',') ?? []) if (V1.includes(o)) v1.set(o, dir);
  }
  return { v2, v1 };
}

const hex64 = (): string => randomBytes(32).toString('hex');

export class Churn {
  readonly #tops: string[];
  /** Every directory made, parents first: removed in reverse. */
  readonly #made: string[] = [];
  readonly #inflight = new Set<Promise<void>>();
  readonly #stats: ChurnStats = { created: 0, skipped: 0, failed: 0 };
  readonly #conn: string;
  readonly #perSecond: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #cleanup = (): void => { this.#removeAllSync(); };

  /**
   * Makes the static tree; start() starts the churn. `loadgen`: bench/out/loadgen
   * (linked beside it as CONN_COMM).
   */
  constructor(layout: Layout, loadgen: string, perSecond: number) {
    const { v2, v1 } = cgroupMounts();
    if (v2 === undefined) throw new Error('no cgroup2 mount');
    if (layout === 'hybrid' && v1.size < V1.length) throw new Error(`hybrid churn: cgroup v1 hierarchies ${V1.join(', ')} not all mounted`);
    const name = `tt-bench-churn-${randomBytes(3).toString('hex')}`;
    this.#tops = [v2, ...(layout === 'hybrid' ? V1.map((c) => v1.get(c) ?? '') : [])].map((root) => join(root, name));
    process.on('exit', this.#cleanup);
    this.#conn = join(loadgen, '..', CONN_COMM);
    if (!existsSync(this.#conn)) symlinkSync(loadgen, this.#conn);
    for (let i = 0; i < SERVICES; i++) this.#mkdir(`system.slice/tt-svc-${i}.service`);
    for (let p = 0; p < PODS; p++) {
      const pod = `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${randomUUID().replaceAll('-', '_')}.slice`;
      for (let c = 0; c < CONTAINERS_PER_POD; c++) this.#mkdir(`${pod}/cri-containerd-${hex64()}.scope`);
    }
    this.#perSecond = perSecond;
  }

  /** Starts making the short-lived cgroups. */
  start(): void {
    this.#timer ??= setInterval(() => {
      this.#tick();
    }, 1000 / this.#perSecond);
  }

  /** Stops making cgroups, waits for the processes (bounded) and removes every cgroup (once more: nothing). */
  async stop(): Promise<ChurnStats> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.race([Promise.all(this.#inflight), sleep(10_000)]);
    this.#removeAllSync();
    process.off('exit', this.#cleanup);
    return { ...this.#stats };
  }

  /** mkdir -p of `rel` in every hierarchy; the directories in each. */
  #mkdir(rel: string): string[] {
    return this.#tops.map((top) => {
      let dir = top;
      for (const part of ['', ...rel.split('/')]) {
        dir = join(dir, part);
        if (existsSync(dir)) continue;
        mkdirSync(dir);
        this.#made.push(dir);
      }
      return dir;
    });
  }

  #tick(): void {
    if (this.#inflight.size >= MAX_INFLIGHT) {
      this.#stats.skipped++;
      return;
    }
    this.#stats.created++;
    const pod = `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${randomUUID().replaceAll('-', '_')}.slice`;
    const dirs = this.#mkdir(`${pod}/cri-containerd-${hex64()}.scope`);
    // the shell moves itself into the cgroups, then becomes the process that connects
    const script = 'c=$1; shift; for d; do echo 0 > "$d/cgroup.procs" || exit 1; done; exec "$c" --count 1 --threads 1 --netns --seconds 5';
    const child: Child = start('sh', ['-c', script, 'sh', this.#conn, ...dirs]);
    const done = child.exited.then(async (code) => {
      if (code !== 0) this.#stats.failed++;
      // the container's cgroup and its pod's, every hierarchy
      for (const d of dirs.flatMap((d) => [d, join(d, '..')])) {
        if (!(await removeCgroup(d))) this.#stats.failed++;
        else if (this.#made.includes(d)) this.#made.splice(this.#made.indexOf(d), 1);
      }
      this.#inflight.delete(done);
    });
    this.#inflight.add(done);
  }

  #removeAllSync(): void {
    for (const dir of this.#made.splice(0).reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        // gone already; or still busy: said by the count of failures
      }
    }
  }
}

/** rmdir, waiting (bounded) for an exited process to leave the cgroup; whether it is gone. */
async function removeCgroup(dir: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' && code !== 'ENOTEMPTY') return false;
      await sleep(20);
    }
  }
  return false;
}
