/**
 * A bounded tally of one counter metric: a number per series, kept by the
 * tracer and observed by the SDK's asynchronous instruments at collection.
 *
 * Counting in a Map by a short key costs a fraction of what the SDK's
 * synchronous instruments cost per call (they hash the attribute object on
 * every measurement), and an observed cumulative value is what the SDK turns
 * into either temporality. Bounded as the SDK specification bounds a metric's
 * streams: at most `limit - 1` series, then every new series counts in the
 * one overflow series (`otel.metric.overflow=true`), so that the SDK, given
 * the same limit, sees exactly the series it would have kept itself.
 */
import type { Attributes } from '@opentelemetry/api';
import type { TcpEvent } from '../../types.ts';
import { OVERFLOW_ATTRIBUTES } from './instruments.ts';

/** One series of a tally: its attributes (made once) and its value. */
export interface TallyEntry {
  readonly attributes: Attributes;
  value: number;
}

export class Tally {
  private readonly entries = new Map<string, TallyEntry>();
  private readonly limit: number;
  private overflowEntry: TallyEntry | undefined;

  /** @param limit most series, the overflow series included (at least 1) */
  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  /**
   * Adds `value` to the series `key` (its attributes made by `attributesOf(event)`
   * the first time), or to the overflow series when the tally is full. Returns the entry counted.
   */
  add(key: string, value: number, event: TcpEvent, attributesOf: (event: TcpEvent) => Attributes): TallyEntry {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= this.limit - 1) {
        entry = this.overflowEntry ??= { attributes: OVERFLOW_ATTRIBUTES, value: 0 };
      } else {
        entry = { attributes: attributesOf(event), value: 0 };
        this.entries.set(key, entry);
      }
    }
    entry.value += value;
    return entry;
  }

  /** Series kept, the overflow series included once it exists. */
  get size(): number {
    return this.entries.size + (this.overflowEntry === undefined ? 0 : 1);
  }

  /** Calls `observe` with each series' value and attributes (the overflow series last). */
  forEach(observe: (value: number, attributes: Attributes) => void): void {
    for (const entry of this.entries.values()) observe(entry.value, entry.attributes);
    if (this.overflowEntry !== undefined) observe(this.overflowEntry.value, this.overflowEntry.attributes);
  }
}
