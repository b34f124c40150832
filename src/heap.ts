/**
 * V8's heap sized for a long-running agent rather than for throughput.
 *
 * V8 grows the young generation (two semi-spaces) while a program allocates
 * fast, up to 32 MiB each on 64-bit Node, and keeps it: an agent decoding and
 * encoding a stream of events allocates fast all the time, so its young
 * generation sits at its largest, 64 MB of RSS or more that holds only
 * garbage between scavenges. Held near its initial size (1 MiB semi-spaces), the
 * scavenger runs more often but each run costs what survives it, not the
 * garbage, so the CPU per event barely moves (docs/design.md, measured).
 *
 * --semi-space-growth-factor is read at each scavenge, so setting it at start
 * through v8.setFlagsFromString takes effect; the sizes (--max-semi-space-size)
 * are fixed when the heap is created, before any script runs.
 */
import { setFlagsFromString } from 'node:v8';

export const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1';

/** Keeps the young generation near its initial size from now on. Call once, at start. */
export function holdYoungGeneration(): void {
  setFlagsFromString(YOUNG_GENERATION_FLAG);
}
