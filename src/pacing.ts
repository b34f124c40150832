/**
 * Back-pressure, in one place: the kernel ring buffer is the queue in front
 * of every consumer of events (the OTLP sink, the table or NDJSON output).
 * The tracer reads only as many records as all of them can take now, less the
 * events the identity lookup still holds, and reads more whenever that may
 * have grown: a consumer said its room grew, or held events were delivered.
 * What a consumer cannot take waits in the ring buffer, where losses are
 * counted; nothing queues without bound in between.
 */

/** Something that takes events at its own pace. */
export interface Consumer {
  /** How many more events it takes now. */
  room(): number;
  /** Calls `listener` when room may have grown (never from inside its own intake). */
  onRoom(listener: () => void): unknown;
}

/** What reads the ring buffer: it asks for room, and is told to read again. */
export interface Reader {
  replenish(): void;
}

export class Pacing {
  readonly #consumers: readonly Consumer[];
  readonly #held: () => number;
  #reader: Reader | undefined;

  /**
   * @param consumers every consumer of the events (undefined ones are left out)
   * @param held events read but not yet delivered to them (identity lookups in flight)
   */
  constructor(consumers: readonly (Consumer | undefined)[], held: () => number = () => 0) {
    this.#consumers = consumers.filter((c) => c !== undefined);
    this.#held = held;
  }

  /** The room of the slowest consumer, less what is held; undefined when nothing consumes (read at full speed). */
  get room(): (() => number) | undefined {
    if (this.#consumers.length === 0) return undefined;
    return () => {
      let room = Infinity;
      for (const c of this.#consumers) room = Math.min(room, c.room());
      return room - this.#held();
    };
  }

  /** From now on, `reader` reads again whenever any consumer's room grew. */
  drive(reader: Reader): void {
    this.#reader = reader;
    for (const c of this.#consumers) c.onRoom(() => {
      reader.replenish();
    });
  }

  /**
   * Held events were delivered: their room is free again. Read again once the
   * current turn is over, when every batch released in it is out.
   */
  released(): void {
    const reader = this.#reader;
    if (reader) queueMicrotask(() => {
      reader.replenish();
    });
  }
}
