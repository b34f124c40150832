/**
 * cgroup id -> workload identity (container id, pod uid), for every event,
 * without blocking the per-event path.
 *
 * Known ids are answered from a bounded cache in the same call, else from the
 * cgroup tree (tree.ts: walked once, then kept current by inotify), also in
 * the same call: a cgroup is normally known from the moment it is made, before
 * any of its processes connects. An id neither knows is looked up
 * asynchronously. When the tree watches every directory, only its inotify
 * events can still be on their way: the lookup gives them SETTLE_MS and a
 * turn of the event loop (loopTurn) and asks the tree again; an id still unknown is a cgroup already gone before the
 * tracer saw it made (reported unknown, never guessed). Otherwise (no watch:
 * the tree's bounds or inotify's limit) from /proc/PID/cgroup of the event's
 * process (one small read; the path is checked against the id by the inode of
 * the cgroup directory, since the process may have moved), else, when the
 * process is already gone, by walking the cgroup v2 tree (walks coalesce: one
 * at a time, bounded in entries and depth). A batch with unknown ids waits for those
 * lookups at most `maxWaitMs`, and batches leave in the order they came.
 * Entries of cgroups that no longer exist are swept out periodically, and the
 * cache never holds more than `maxEntries` ids.
 */
import { readFileSync, statSync } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EnvironmentError } from '../errors.ts';
import type { TcpEvent } from '../types.ts';
import { cgroup2Mount, cgroupV2Path, identityFromCgroupPath, NO_IDENTITY, type WorkloadIdentity } from './runtime.ts';
import { CgroupTree, type TreeOptions } from './tree.ts';

export interface IdentityOptions {
  /**
   * Where the host's cgroup v2 hierarchy is mounted. Default: TCPTRACER_CGROUP_ROOT,
   * else the first cgroup2 mount in /proc/self/mounts. In a container with a
   * cgroup namespace of its own, mount the host's /sys/fs/cgroup and point
   * TCPTRACER_CGROUP_ROOT at it.
   */
  readonly cgroupRoot?: string;
  /** Most ids cached. Default 8192. */
  readonly maxEntries?: number;
  /** Longest a batch waits for its unknown ids, ms. Default 250. */
  readonly maxWaitMs?: number;
  /** How often cached entries are checked for removed cgroups, ms. Default 30000. */
  readonly sweepMs?: number;
  /** Longest an id that could not be resolved is remembered as unknown, ms. Default 5000. */
  readonly negativeTtlMs?: number;
  /** The tree kept by inotify (tree.ts), with its bounds; false: lookups only. Default {}. */
  readonly tree?: TreeOptions | false;
}

/** Takes an enriched batch; `held`: it waited for lookups (its events were counted in `pending` until now). */
export type Deliver = (events: TcpEvent[], held: boolean) => void;

interface Entry {
  readonly identity: WorkloadIdentity;
  /** The cgroup's directory, to check that it still exists; undefined: not found. */
  readonly dir: string | undefined;
  readonly since: number;
}

/** Directories the tree walk visits at most. */
const WALK_MAX_DIRS = 100_000;
const WALK_MAX_DEPTH = 12;
/** How long a lookup gives the tree's inotify events to arrive, ms. */
const SETTLE_MS = 10;

/**
 * Resolves once a poll phase that began after the call is over. libuv reads
 * its inotify descriptor there until it is empty and runs the watches'
 * callbacks at once, so every inotify event queued before the call (a cgroup
 * made before its process's event) has then reached the tree. A timer alone
 * does not promise that: on a slow machine (the emulated VMs) it can expire
 * before the loop next polls. The first immediate may run after a poll that
 * had begun earlier; the second runs after the next one.
 */
async function loopTurn(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The cgroup v2 mount point of this host, or undefined without one. */
export function findCgroup2Root(): string | undefined {
  try {
    return cgroup2Mount(readFileSync('/proc/self/mounts', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * TCPTRACER_CGROUP_ROOT, when set, must be a cgroup v2 directory (it has
 * cgroup.controllers): pointing anywhere else, every lookup would quietly find
 * nothing. Throws an EnvironmentError naming it.
 */
export function checkCgroupRoot(root: string | undefined = process.env.TCPTRACER_CGROUP_ROOT): void {
  if (!root) return;
  try {
    statSync(join(root, 'cgroup.controllers'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not a cgroup v2 directory (no cgroup.controllers)' : (e as Error).message;
    throw new EnvironmentError(`TCPTRACER_CGROUP_ROOT=${root}: ${why}`);
  }
}

export class IdentityResolver {
  readonly #root: string | undefined;
  readonly #maxEntries: number;
  readonly #maxWaitMs: number;
  readonly #negativeTtlMs: number;
  readonly #cache = new Map<number, Entry>();
  /** Lookups in progress, by cgroup id. */
  readonly #inflight = new Map<number, Promise<void>>();
  /** Batches waiting for lookups, oldest first, with what to do with them. */
  readonly #held: { readonly events: TcpEvent[]; readonly deliver: Deliver }[] = [];
  #heldEvents = 0;
  #releasing: Promise<void> | undefined;
  #walk: Promise<Map<number, string>> | undefined;
  #walkStarted = -Infinity;
  #walkDone = true;
  #nextWalk: Promise<Map<number, string>> | undefined;
  readonly #sweeper: NodeJS.Timeout;
  readonly #tree: CgroupTree | undefined;
  #lookups = 0;

  constructor(options: IdentityOptions = {}) {
    this.#root = options.cgroupRoot ?? (process.env.TCPTRACER_CGROUP_ROOT || findCgroup2Root());
    this.#maxEntries = options.maxEntries ?? 8192;
    this.#maxWaitMs = options.maxWaitMs ?? 250;
    this.#negativeTtlMs = options.negativeTtlMs ?? 5000;
    this.#sweeper = setInterval(() => void this.#sweep(), options.sweepMs ?? 30_000);
    this.#sweeper.unref();
    this.#tree = this.#root === undefined || options.tree === false ? undefined : new CgroupTree(this.#root, options.tree);
  }

  /** Ids cached now. */
  get size(): number {
    return this.#cache.size;
  }

  /** Lookups made (cache misses resolved off the hot path). */
  get lookups(): number {
    return this.#lookups;
  }

  /** The tree watches every cgroup directory: new cgroups are known as they are made (tree.ts). */
  get watching(): boolean {
    return this.#tree?.complete ?? false;
  }

  /** Events held back, waiting for their ids. */
  get pending(): number {
    return this.#heldEvents;
  }

  /**
   * Fills containerId and podUid of each event and hands the batch to
   * `deliver`: in this call when every id is known and nothing is held
   * (held false), else within maxWaitMs (held true), always in arrival order.
   */
  enrich(events: TcpEvent[], deliver: Deliver): void {
    const missing = this.#apply(events);
    if (missing.length === 0 && this.#held.length === 0) {
      deliver(events, false);
      return;
    }
    this.#held.push({ events, deliver });
    this.#heldEvents += events.length;
    // held only behind earlier batches: it leaves with them
    const ready = missing.length === 0 ? undefined : this.#ready(missing);
    const previous = this.#releasing ?? Promise.resolve();
    const releasing = previous.then(() => ready).then(() => {
      this.#release();
    });
    this.#releasing = releasing;
    void releasing.finally(() => {
      if (this.#releasing === releasing) this.#releasing = undefined;
    });
  }

  /** Settles when the lookups of these events' ids are done, or after maxWaitMs. */
  #ready(missing: TcpEvent[]): Promise<void> {
    const ids = new Set(missing.map((e) => e.cgroupId));
    const lookups = missing.filter((e) => ids.delete(e.cgroupId)).map((e) => this.#lookup(e.cgroupId, e.pid));
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#maxWaitMs);
      timer.unref();
    });
    return Promise.race([Promise.all(lookups).then(() => undefined), waited]).finally(() => {
      clearTimeout(timer);
    });
  }

  /** Delivers everything held now (shutdown): ids still unknown stay undefined. */
  flush(): void {
    this.#release();
  }

  /** Stops the periodic sweep and the tree's watches. */
  close(): void {
    clearInterval(this.#sweeper);
    this.#tree?.close();
  }

  /** Sets the identity of every event whose id is cached; returns the events whose id is not. */
  #apply(events: TcpEvent[]): TcpEvent[] {
    const missing: TcpEvent[] = [];
    let lastId = -1;
    let last: Entry | undefined;
    for (const e of events) {
      let entry = e.cgroupId === lastId ? last : this.#cache.get(e.cgroupId);
      // unknown, or remembered as unknown while the tree's inotify events were late: the tree may know it now
      if (entry?.dir === undefined && e.cgroupId !== lastId) entry = this.#fromTree(e.cgroupId) ?? entry;
      lastId = e.cgroupId;
      last = entry;
      if (entry === undefined) {
        missing.push(e);
        continue;
      }
      e.containerId = entry.identity.containerId;
      e.podUid = entry.identity.podUid;
    }
    return missing;
  }

  /** The id's entry from the tree, cached; undefined when the tree does not know it. */
  #fromTree(id: number): Entry | undefined {
    const dir = this.#tree?.dirOf(id);
    if (dir === undefined || this.#root === undefined) return undefined;
    const entry = { identity: identityFromCgroupPath(dir.slice(this.#root.length)), dir, since: Date.now() };
    this.#store(id, entry);
    return entry;
  }

  #release(): void {
    const held = this.#held.splice(0);
    this.#heldEvents = 0;
    for (const { events, deliver } of held) {
      this.#apply(events);
      deliver(events, true);
    }
  }

  #lookup(id: number, pid: number): Promise<void> {
    let p = this.#inflight.get(id);
    if (p === undefined) {
      this.#lookups++;
      p = this.#resolve(id, pid)
        .then((entry) => {
          this.#store(id, entry);
        })
        .finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, p);
    }
    return p;
  }

  async #resolve(id: number, pid: number): Promise<Entry> {
    const root = this.#root;
    if (root === undefined) return { identity: NO_IDENTITY, dir: undefined, since: Date.now() };
    const tree = this.#tree;
    if (tree?.complete) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(SETTLE_MS, this.#maxWaitMs)));
      await loopTurn();
      // not there now: made and removed before its inotify event was read
      return this.#fromTree(id) ?? { identity: NO_IDENTITY, dir: undefined, since: Date.now() };
    }
    const since = performance.now();
    const fromProc = await this.#fromProc(root, id, pid);
    if (fromProc !== undefined) return fromProc;
    const dir = (await this.#walkTree(root, since)).get(id);
    // not found: the cgroup is gone already; remembered as unknown for a while
    const identity = dir === undefined ? NO_IDENTITY : identityFromCgroupPath(dir.slice(root.length));
    return { identity, dir, since: Date.now() };
  }

  async #fromProc(root: string, id: number, pid: number): Promise<Entry | undefined> {
    try {
      const path = cgroupV2Path(await readFile(`/proc/${pid}/cgroup`, 'utf8'));
      if (path === undefined) return undefined;
      const identity = identityFromCgroupPath(path);
      // inside a cgroup namespace the path is relative to it: the id is then checked by the walk
      const dir = path.startsWith('/..') ? undefined : join(root, path);
      if (dir !== undefined && (await stat(dir)).ino !== id) return undefined; // the process moved on
      return dir === undefined ? undefined : { identity, dir, since: Date.now() };
    } catch {
      return undefined; // the process exited, or its cgroup is gone
    }
  }

  /**
   * id -> directory for the whole tree, from a walk that started after
   * `since` (so it can hold a cgroup created before then). Requests coalesce:
   * one walk at a time, and one queued behind it at most.
   */
  #walkTree(root: string, since: number): Promise<Map<number, string>> {
    if (this.#walk !== undefined && this.#walkStarted >= since) return this.#walk;
    if (this.#nextWalk !== undefined) return this.#nextWalk;
    const start = (): Promise<Map<number, string>> => {
      this.#walkStarted = performance.now();
      return walk(root);
    };
    const current = this.#walk;
    if (current === undefined || this.#walkDone) {
      this.#walkDone = false;
      this.#walk = start().finally(() => {
        this.#walkDone = true;
      });
      return this.#walk;
    }
    this.#nextWalk = current.then(() => {
      this.#nextWalk = undefined;
      this.#walkDone = false;
      this.#walk = start().finally(() => {
        this.#walkDone = true;
      });
      return this.#walk;
    });
    return this.#nextWalk;
  }

  #store(id: number, entry: Entry): void {
    if (this.#cache.size >= this.#maxEntries) {
      // the oldest entry goes (insertion order)
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
    this.#cache.set(id, entry);
  }

  /** Forgets entries whose cgroup is gone, and unresolved ones past their time. */
  async #sweep(): Promise<void> {
    const now = Date.now();
    const tree = this.#tree?.complete ? this.#tree : undefined;
    for (const [id, entry] of [...this.#cache]) {
      if (entry.dir === undefined) {
        if (now - entry.since > this.#negativeTtlMs) this.#cache.delete(id);
        continue;
      }
      // the tree's watches say which still exist: no stat
      if (tree !== undefined) {
        if (!tree.has(id)) this.#cache.delete(id);
        continue;
      }
      try {
        if ((await stat(entry.dir)).ino !== id) this.#cache.delete(id);
      } catch {
        this.#cache.delete(id);
      }
    }
  }
}

/** Every cgroup directory under `root` by inode (= cgroup id), breadth first, bounded. */
async function walk(root: string): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  let level = [root];
  for (let depth = 0; depth <= WALK_MAX_DEPTH && level.length > 0 && found.size < WALK_MAX_DIRS; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      try {
        found.set((await stat(dir)).ino, dir);
        for await (const d of await opendir(dir)) if (d.isDirectory()) next.push(join(dir, d.name));
      } catch {
        // removed while walking
      }
      if (found.size >= WALK_MAX_DIRS) break;
    }
    level = next;
  }
  return found;
}
