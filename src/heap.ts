/**
 * V8 sized for a long-running agent rather than for throughput: its heap,
 * and (with --otlp) its top compiler tier.
 *
 * Young generation: V8 grows it (two semi-spaces) while a program allocates
 * fast, up to 64 MB of new space on 64-bit Node, and keeps it: an exporter
 * decoding and encoding a stream of events allocates fast all the time, so its
 * young generation would sit at its largest, RSS that holds only garbage
 * between scavenges. --semi-space-growth-factor=1 holds it near its first size.
 *
 * Old generation: what outlives two scavenges (the export requests in flight,
 * and the external buffers they hold) is promoted, and waits for a full GC,
 * which V8 starts once the old generation has grown by a factor it derives
 * from its GC and allocation speeds, up to 4x the live size after the last
 * one. --heap-growing-percent fixes that factor lower: full GCs come sooner
 * (more marking, on V8's worker threads) and less garbage is held.
 *
 * Both are read at each GC, so setting them at run time through
 * v8.setFlagsFromString takes effect; the sizes (--max-semi-space-size,
 * --max-old-space-size, --initial-old-space-size) are fixed when the heap is
 * created, before any script runs: those go on node's command line
 * (NODE_FLAGS). Measured: docs/design.md (Memory).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1';

/**
 * node's own flags for the tracer, on its command line: the CLI's shebang
 * (`#!/usr/bin/env -S node ...`, which the installed bin and npx run) and the
 * Docker image's ENTRYPOINT carry them (unit-footprint checks both).
 *
 * --initial-old-space-size: until its first full GC, V8 lets the old
 * generation grow to an initial limit derived from the machine's memory
 * (hundreds of MB on a node), and only then applies its growing factor. A
 * tracer whose live heap is ~12 MB (metrics only) went either way from run to
 * run: a full GC early (peak RSS 97-104 MB under full load) or not (115-124).
 * 4 MB: the first full GC comes early in every run (96-99 MB).
 */
export const NODE_FLAGS = ['--initial-old-space-size=4'] as const;

/**
 * With --otlp: the old generation grows by this percent of what survived the
 * last full GC before the next one. 20: peak RSS under the 150 MB budget at
 * the benchmark's full load, for about +50% CPU per event (docs/design.md).
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 20;

/** Keeps the young generation near its initial size from now on. Call once, at start. */
export function holdYoungGeneration(): void {
  setFlagsFromString(YOUNG_GENERATION_FLAG);
}

/**
 * Starts a full GC once the old generation has grown by `percent` (> 0) since
 * the last one, from now on; unless node was started with its own
 * --heap-growing-percent (`node --heap-growing-percent=100 tcptracer ...`: the
 * user's choice between memory and CPU). Returns the percent in force, if set.
 */
export function boundOldGeneration(percent = DEFAULT_HEAP_GROWING_PERCENT, execArgv: readonly string[] = process.execArgv): number | undefined {
  if (!Number.isInteger(percent) || percent <= 0) throw new RangeError(`heap growing percent: ${percent}`);
  const given = execArgv.find((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a));
  if (given) return Number(given.split('=')[1]) || undefined;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}

/**
 * With --otlp: no Turbofan, V8's top optimizing tier; hot code runs at its
 * mid tier (Maglev) instead. Turbofan's code in the node binary (file-backed
 * pages, resident once used) and its compile-time zones are ~7-10 MB of the
 * peak RSS under full load (metrics only 100 -> 93 MB, logs and traces
 * 152-156 -> 140-143), for +15% to +50% CPU per event (docs/design.md, Memory).
 * Read at each tiering decision, so it applies from now on; unless node was
 * started with its own choice (`node --turbofan ...`, `--max-opt=N`), which
 * wins. Returns whether it was set.
 */
export function skipTopTier(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => /^--(no[-_])?(turbofan|opt)$|^--max[-_]opt(=|$)/.test(a))) return false;
  setFlagsFromString('--no-turbofan');
  return true;
}

/**
 * One full GC now, through a context with gc exposed: at start, once the
 * exporter's modules are loaded and before events arrive. V8 applies its
 * growing factor (boundOldGeneration) only from its first full GC on; until
 * then the old generation may hold the start-up garbage and whatever the
 * first burst promotes (metrics only, peak RSS under full load: 1 run in 5
 * to 6 at 117-124 MB instead of 97-101; with this, 12 of 12 at 97-99).
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
