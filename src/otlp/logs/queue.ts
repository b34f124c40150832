/**
 * The log records waiting for the export pipeline: events, in the arrays they
 * came in, made into records as the processor takes them (its twin for spans
 * is ../traces/queue.ts).
 */
import type { HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { TcpEvent } from '../../types.ts';
import type { DeferredItems } from '../export/processor.ts';
import type { LogItem } from '../wire/requests.ts';

/** A FIFO of events waiting to be made into log records, in the arrays they came in. */
export class LogQueue implements DeferredItems {
  private readonly resource: Resource;
  private readonly add: (item: LogItem) => void;
  private readonly chunks: { readonly events: readonly TcpEvent[]; readonly observedNs: bigint }[] = [];
  /** Index in chunks[0] of its first event still queued. */
  private next = 0;
  size = 0;

  /**
   * @param resource the resource every record is exported under
   * @param add where each record made goes (the processor)
   */
  constructor(resource: Resource, add: (item: LogItem) => void) {
    this.resource = resource;
    this.add = add;
  }

  push(events: readonly TcpEvent[], observedAt: HrTime): void {
    this.chunks.push({ events, observedNs: BigInt(observedAt[0]) * 1_000_000_000n + BigInt(observedAt[1]) });
    this.size += events.length;
  }

  emit(max: number): void {
    let left = max;
    while (left > 0) {
      const chunk = this.chunks[0];
      if (chunk === undefined) break;
      const { events, observedNs } = chunk;
      const end = Math.min(events.length, this.next + left);
      const start = this.next;
      // taken before emitting: a record that fails to be made is lost, not retried forever
      this.size -= end - start;
      left -= end - start;
      if (end === events.length) {
        this.chunks.shift();
        this.next = 0;
      } else {
        this.next = end;
      }
      for (let i = start; i < end; i++) {
        const event = events[i];
        if (event !== undefined) this.add({ resource: this.resource, event, observedNs });
      }
    }
  }

  clear(): void {
    this.chunks.length = 0;
    this.next = 0;
    this.size = 0;
  }
}
