/**
 * Typed access to the Node-API loader (bpf/loader/addon.c), built by node-gyp
 * into build/Release with the BPF object embedded (its libbpf skeleton).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvironmentError } from './errors.ts';

export interface NativeOpenOptions {
  pid?: number;
  uid?: number;
  netns?: number;
  family?: number;
  cgroupMapFd?: number;
  mntnsMapFd?: number;
  ringbufBytes?: number;
  wakeupBytes?: number;
  pollMs?: number;
  libbpfDebug?: number;
  /** This process id's connections are not traced (0: none). */
  excludePid?: number;
  /** 1: emit failed-connect events. */
  failed?: number;
  /** 1: read only what grant() allowed (see the loader's doc). */
  paced?: number;
}

declare const handleBrand: unique symbol;
export type NativeHandle = { readonly [handleBrand]: true };

export interface EventLayout {
  size: number;
  fields: Record<string, [offset: number, size: number]>;
}

export interface NativeLoader {
  open(opts: NativeOpenOptions, onBatch: (batch: Buffer | null) => void): NativeHandle;
  stop(h: NativeHandle): void;
  /** Paced mode: `n` more records may be read from the ring buffer. */
  grant(h: NativeHandle, n: number): void;
  /** Paced mode ends: everything left in the ring buffer is handed over at once. */
  release(h: NativeHandle): void;
  close(h: NativeHandle): void;
  /** The probe's counters, indexed by enum tcptracer_stat (bpf/tcptracer.h), read from the mapped stats map. */
  counters(h: NativeHandle): number[];
  drainStatus(h: NativeHandle): { malformed: number; error: number; probeMissed: number };
  /** Mount tracefs at /sys/kernel/tracing unless it is available; 0 or errno. */
  ensureTracefs(): number;
  /** prctl(PR_SET_NO_NEW_PRIVS) for this thread and the threads it starts later; 0 or errno. */
  noNewPrivs(): number;
  clockOffsetNs(): bigint;
  /** struct tcptracer_event as the probe's BTF describes it. */
  readonly eventLayout: EventLayout;
}

/** build/Release, found from src/ (run as .ts) or dist/src/ (compiled). */
export function buildDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'build', 'Release');
    if (existsSync(join(candidate, 'tcptracer_loader.node'))) return candidate;
    dir = dirname(dir);
  }
  throw new EnvironmentError(
    'native loader not built (build/Release/tcptracer_loader.node missing): run "npm run build"',
  );
}

let loaded: NativeLoader | undefined;

export function loadNative(): NativeLoader {
  loaded ??= createRequire(import.meta.url)(join(buildDir(), 'tcptracer_loader.node')) as NativeLoader;
  return loaded;
}
