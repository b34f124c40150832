/**
 * TcpTracer: the typed event source. Loads the probe with the native loader,
 * validates pinned filter maps with node-bpf (the `bpf` package), reads the
 * probe's counters (from their mapped memory: no bpf() call, so they work
 * after the privilege drop on any kernel), and hands decoded events out in batches.
 *
 *   const tracer = TcpTracer.open({ family: 4 });
 *   tracer.on('events', (batch) => ...);
 *   await tracer.stop();   // detaches, delivers what was still queued, frees
 *
 * A consumer slower than the kernel (an OTLP export pipeline) opens it paced,
 * `TcpTracer.open({ room: () => n })`: records are then read from the ring
 * buffer only as far as `room()` allows, so bursts wait in the ring buffer
 * (compact, outside the JavaScript heap) and only a full ring buffer loses
 * events, counted by the probe as ringbufLost. Call {@link TcpTracer.replenish}
 * whenever the room may have grown.
 */
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as bpf from 'bpf';
import { DEFAULT_POLL_MS, DEFAULT_RINGBUF_BYTES } from './defaults.ts';
import { EnvironmentError } from './errors.ts';
import { decodeBatch, EVENT_LAYOUT } from './event.ts';
import { loadNative, type NativeHandle, type NativeLoader } from './native.ts';
import { filterMapProblem } from './pinned.ts';
import { checkHost, readHostFacts } from './preflight.ts';
import type { DropCounters, TcpEvent } from './types.ts';

export interface TracerOptions {
  /** Only this process id (tgid). Default: all. */
  pid?: number;
  /** Only this user id. Default: all. */
  uid?: number;
  /** Only sockets in the network namespace with this inode. Default: all. */
  netns?: number;
  /** Only this IP version. Default: both. */
  family?: 4 | 6;
  /** Path of a pinned BPF hash map (u64 cgroup id keys): only tasks in those cgroups. */
  cgroupMap?: string;
  /** Path of a pinned BPF hash map (u64 mount namespace inode keys). */
  mntnsMap?: string;
  /** Ring buffer size in bytes, a power of two. Default 8 MiB. */
  ringbufBytes?: number;
  /** The probe wakes user space once this many bytes wait. Default 64 KiB, at most 1/8 of the ring buffer. */
  wakeupBytes?: number;
  /** Longest wait before waiting events are read anyway, ms. Default 100. */
  pollMs?: number;
  /** Skip the host checks (tests of the checks themselves). Default false. */
  skipHostCheck?: boolean;
  /** Also trace this process's own connections (e.g. its OTLP exports). Default false: they are left out in the kernel. */
  traceSelf?: boolean;
  /** Also report connects that never established ('failed' events). Default false. */
  failed?: boolean;
  /**
   * Paced reading: how many more events the consumer can take now. Default:
   * unpaced, every record is read as soon as it is there.
   */
  room?: () => number;
}

/** Options of {@link TcpTracer.stop}. */
export interface StopOptions {
  /**
   * Paced mode: how long the events still in the ring buffer may be read at the
   * consumer's pace before the rest is handed over at once, ms. Default 0.
   */
  drainDeadlineMs?: number;
}

interface TracerEvents {
  /** A batch of events, in kernel order; the array is the listener's to keep. */
  events: [batch: TcpEvent[]];
  error: [err: Error];
}

const STAT_RINGBUF_LOST = 0;
const STAT_SOCK_MAP_FULL = 1;
const STAT_END_UNSEEN = 2;

/** Open a pinned map given by --cgroupmap/--mntnsmap and check it is what bcc defines. */
export function openPinnedFilterMap(flag: string, path: string): bpf.MapRef {
  let fd: number;
  try {
    fd = bpf.objGet(path);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).message;
    throw new EnvironmentError(`${flag} ${path}: cannot open pinned BPF map (${why})`);
  }
  // what the object is, before node-bpf reads it as a map (a program's info read as a map's is nonsense)
  const problem = filterMapProblem(fd);
  if (problem) {
    closeSync(fd);
    throw new EnvironmentError(`${flag} ${path}: ${problem}`);
  }
  return bpf.createMapRef(fd, { transfer: true });
}

export class TcpTracer extends EventEmitter<TracerEvents> {
  readonly #native: NativeLoader;
  readonly #handle: NativeHandle;
  #clockOffsetNs: bigint;
  #malformed = 0;
  #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #stopping = false;
  #finalDrops: (DropCounters & { malformed: number }) | undefined;
  readonly #room: (() => number) | undefined;
  /** Paced mode: records granted to the drain thread so far, and received. */
  #granted = 0;
  #received = 0;
  #released = false;

  private constructor(native: NativeLoader, opts: TracerOptions) {
    super();
    this.#native = native;
    this.#clockOffsetNs = native.clockOffsetNs();
    this.#stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
    this.#room = opts.room;
    const ringbufBytes = opts.ringbufBytes ?? DEFAULT_RINGBUF_BYTES;
    let cgroupMap: bpf.MapRef | undefined;
    let mntnsMap: bpf.MapRef | undefined;
    try {
      if (opts.cgroupMap) cgroupMap = openPinnedFilterMap('--cgroupmap', opts.cgroupMap);
      if (opts.mntnsMap) mntnsMap = openPinnedFilterMap('--mntnsmap', opts.mntnsMap);
      this.#handle = native.open(
        {
          pid: opts.pid,
          uid: opts.uid,
          netns: opts.netns,
          family: opts.family === 4 ? 2 : opts.family === 6 ? 10 : 0,
          cgroupMapFd: cgroupMap?.fd,
          mntnsMapFd: mntnsMap?.fd,
          ringbufBytes,
          wakeupBytes: opts.wakeupBytes ?? Math.min(64 << 10, ringbufBytes / 8),
          pollMs: opts.pollMs ?? DEFAULT_POLL_MS,
          libbpfDebug: process.env.TCPTRACER_LIBBPF_DEBUG ? 1 : 0,
          excludePid: opts.traceSelf ? 0 : process.pid,
          failed: opts.failed ? 1 : 0,
          paced: opts.room ? 1 : 0,
        },
        (batch) => {
          this.#onBatch(batch);
        },
      );
    } catch (e) {
      if (e instanceof EnvironmentError) throw e;
      throw new EnvironmentError(describeLoadError(e as Error));
    } finally {
      // libbpf holds its own references to reused maps once loaded
      cgroupMap?.close();
      mntnsMap?.close();
    }
    this.replenish();
  }

  /**
   * Paced mode: lets the drain thread read as many more records as the
   * consumer's room allows, less those already read and on their way.
   */
  replenish(): void {
    if (!this.#room || this.#released) return;
    const want = this.#room() - (this.#granted - this.#received);
    if (want > 0) {
      this.#granted += want;
      this.#native.grant(this.#handle, want);
    }
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#native.release(this.#handle);
  }

  /** Check the host, load and attach the probe. Throws EnvironmentError on failure. */
  static open(opts: TracerOptions = {}): TcpTracer {
    if (!opts.skipHostCheck) checkHost(readHostFacts());
    const native = loadNative();
    const err = native.ensureTracefs();
    if (err) {
      throw new EnvironmentError(
        `tracefs is not mounted and mounting it at /sys/kernel/tracing failed (${osErrorName(err)}): mount it with "mount -t tracefs tracefs /sys/kernel/tracing"`,
      );
    }
    return new TcpTracer(native, opts);
  }

  #onBatch(batch: Buffer | null): void {
    if (batch === null) {
      this.#released = true; // nothing more to grant
      const { error } = this.#native.drainStatus(this.#handle);
      this.#finalDrops = this.drops();
      this.#native.close(this.#handle);
      if (error && !this.#stopping) this.emit('error', new EnvironmentError(`ring buffer drain failed: errno ${error}`));
      this.#resolveStopped();
      return;
    }
    const records = Math.floor(batch.byteLength / EVENT_LAYOUT.size);
    this.#received += records;
    const { events, malformed } = decodeBatch(batch, this.#clockOffsetNs);
    this.#malformed += malformed;
    if (events.length) this.emit('events', events);
    this.replenish();
  }

  /** CLOCK_REALTIME - CLOCK_MONOTONIC used to timestamp events; refresh after clock steps. */
  refreshClock(): void {
    this.#clockOffsetNs = this.#native.clockOffsetNs();
  }

  /** Everything lost so far. Readable until stop() resolves. */
  drops(): DropCounters & { malformed: number } {
    if (this.#finalDrops) return this.#finalDrops;
    const status = this.#native.drainStatus(this.#handle);
    const counters = this.#native.counters(this.#handle);
    return {
      ringbufLost: counters[STAT_RINGBUF_LOST] ?? 0,
      sockMapFull: counters[STAT_SOCK_MAP_FULL] ?? 0,
      endsUnseen: counters[STAT_END_UNSEEN] ?? 0,
      probeMissed: status.probeMissed,
      malformed: this.#malformed + status.malformed,
    };
  }

  /**
   * Detach, deliver the events still in the ring buffer (paced: at the
   * consumer's pace until `drainDeadlineMs`, then all at once), free everything.
   */
  stop(options: StopOptions = {}): Promise<DropCounters & { malformed: number }> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#native.stop(this.#handle);
      if (this.#room) {
        const timer = setTimeout(() => {
          this.#release();
        }, options.drainDeadlineMs ?? 0);
        void this.#stopped.then(() => {
          clearTimeout(timer);
        });
      }
    }
    return this.#stopped.then(() => this.drops());
  }
}

function osErrorName(errno: number): string {
  const name = Object.entries(osConstants.errno).find(([, v]) => v === errno)?.[0];
  return name ?? `errno ${errno}`;
}

function describeLoadError(e: Error): string {
  const m = e.message;
  if (/attaching tracepoint\/(\w+)\/(\w+)/.test(m)) {
    const [, cat, name] = /attaching tracepoint\/(\w+)\/(\w+)/.exec(m) ?? [];
    return `kernel has no usable tracepoint ${cat}:${name}: ${m}`;
  }
  if (/Operation not permitted/.test(m)) return `permission denied loading the probe (root or CAP_BPF+CAP_PERFMON needed): ${m}`;
  return m;
}
