/**
 * The cgroup v2 tree as id -> directory (the directory's inode is the cgroup
 * id the probe reports), kept current by inotify instead of walks.
 *
 * One walk at start; then every directory is watched (fs.watch: one inotify
 * watch each, on the one inotify descriptor libuv keeps), so a cgroup is known
 * as soon as it is made: its events, which come from processes moved into it
 * afterwards, normally find it already known, with no lookup and no waiting.
 * A new directory costs a stat (and a readdir for what was made inside it
 * before its watch); a removed one is still answered for `graceMs` (events of
 * its processes may still be queued) and then forgotten.
 *
 * Bounded: at most `maxDirs` directories, `maxDepth` levels. Past a bound,
 * or when inotify refuses a watch (fs.inotify.max_user_watches), the tree is
 * not `complete`: an id it does not know may then be a cgroup it does not
 * see, and the resolver falls back to its lookups.
 */
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

export interface TreeOptions {
  /** Most directories known (and watched). Default 4096 (about 4 kB of memory each, measured with 4000). */
  readonly maxDirs?: number;
  /** Deepest level watched below the root. Default 12. */
  readonly maxDepth?: number;
  /** How long a removed cgroup's id is still answered, ms. Default 30000. */
  readonly graceMs?: number;
}

interface Dir {
  readonly id: number;
  readonly depth: number;
  readonly watcher: FSWatcher | undefined;
}

export class CgroupTree {
  readonly #maxDirs: number;
  readonly #maxDepth: number;
  readonly #graceMs: number;
  readonly #byId = new Map<number, string>();
  readonly #byDir = new Map<string, Dir>();
  /** Ids whose directory is gone, and since when. */
  readonly #removed = new Map<number, number>();
  readonly #purger: NodeJS.Timeout;
  #complete = true;
  #closed = false;

  constructor(root: string, options: TreeOptions = {}) {
    this.#maxDirs = options.maxDirs ?? 4096;
    this.#maxDepth = options.maxDepth ?? 12;
    this.#graceMs = options.graceMs ?? 30_000;
    this.#purger = setInterval(() => {
      this.#purge();
    }, this.#graceMs);
    this.#purger.unref();
    this.#add(root, 0);
  }

  /** Every directory is watched: an id the tree does not know is not (or no longer) a cgroup under the root. */
  get complete(): boolean {
    return this.#complete;
  }

  /** Directories known now (removed ones in their grace period excluded). */
  get size(): number {
    return this.#byDir.size;
  }

  /** The directory of cgroup `id`, also shortly after it was removed; undefined: not known. */
  dirOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  /** Cgroup `id` exists now (as far as the watches tell). */
  has(id: number): boolean {
    const dir = this.#byId.get(id);
    return dir !== undefined && this.#byDir.get(dir)?.id === id;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#purger);
    for (const d of this.#byDir.values()) d.watcher?.close();
    this.#byDir.clear();
  }

  /** `dir` and what is below it, breadth first, each watched before it is read. */
  #add(top: string, depth: number): void {
    const queue: [string, number][] = [[top, depth]];
    for (const [dir, level] of queue) {
      if (this.#byDir.has(dir)) continue;
      if (this.#byDir.size >= this.#maxDirs) {
        this.#complete = false;
        return;
      }
      let id: number;
      try {
        id = statSync(dir).ino;
      } catch {
        continue; // removed meanwhile
      }
      let watcher: FSWatcher | undefined;
      if (level <= this.#maxDepth) {
        try {
          watcher = watch(dir, { persistent: false }, (event, name) => {
            if (event === 'rename' && name) this.#changed(dir, name);
          });
          // the directory's own removal ends its watch: nothing to report
          watcher.on('error', () => undefined);
        } catch {
          this.#complete = false; // out of inotify watches, or the directory is gone
        }
      } else this.#complete = false;
      this.#byDir.set(dir, { id, depth: level, watcher });
      this.#byId.set(id, dir);
      this.#removed.delete(id);
      if (watcher === undefined) continue;
      try {
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push([join(dir, e.name), level + 1]);
      } catch {
        // removed meanwhile: its parent's watch says so
      }
    }
  }

  /** inotify: `name` appeared in or left `parent` (made, removed, renamed). */
  #changed(parent: string, name: string): void {
    const p = this.#byDir.get(parent);
    if (p === undefined || this.#closed) return;
    const dir = join(parent, name);
    let ino: number;
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) return;
      ino = st.ino;
    } catch {
      this.#remove(dir);
      return;
    }
    const known = this.#byDir.get(dir);
    if (known?.id === ino) return;
    if (known) this.#remove(dir); // another cgroup by that name now
    this.#add(dir, p.depth + 1);
  }

  /** `dir` is gone (or renamed): it and what was known below it. */
  #remove(dir: string): void {
    // a watch's report of its own directory's removal names a path never known
    if (!this.#byDir.has(dir)) return;
    const now = Date.now();
    const below = `${dir}/`;
    for (const [d, node] of this.#byDir) {
      if (d !== dir && !d.startsWith(below)) continue;
      node.watcher?.close();
      this.#byDir.delete(d);
      this.#removed.set(node.id, now);
    }
  }

  /** Forgets the ids removed more than graceMs ago. */
  #purge(): void {
    const old = Date.now() - this.#graceMs;
    for (const [id, at] of this.#removed) {
      if (at > old) continue;
      this.#removed.delete(id);
      const dir = this.#byId.get(id);
      // unless the directory came back (renamed): it is known again under its new name
      if (dir !== undefined && this.#byDir.get(dir)?.id !== id) this.#byId.delete(id);
    }
  }
}
