/**
 * The spans waiting for the export pipeline: connections whose span is due,
 * made into spans as the processor takes them (its twin for log records is
 * ../logs/queue.ts).
 */
import type { Resource } from '@opentelemetry/resources';
import type { DeferredItems } from '../export/processor.ts';
import type { SpanItem } from '../wire/requests.ts';
import { toConnectionSpan } from './span.ts';
import type { ConnectionEnding } from './span.ts';

/** A FIFO of connections whose spans are due, made into spans on demand. */
export class SpanQueue implements DeferredItems {
  private readonly resourceFor: (comm: string) => Resource;
  private readonly add: (item: SpanItem) => void;
  private items: ConnectionEnding[] = [];
  /** Index in items of the first one still queued. */
  private next = 0;

  /**
   * @param resourceFor the resource of a span of the process named `comm`
   * @param add where each span made goes (the processor)
   */
  constructor(resourceFor: (comm: string) => Resource, add: (item: SpanItem) => void) {
    this.resourceFor = resourceFor;
    this.add = add;
  }

  get size(): number {
    return this.items.length - this.next;
  }

  push(ending: ConnectionEnding): void {
    this.items.push(ending);
  }

  emit(max: number): void {
    const end = Math.min(this.items.length, this.next + max);
    const start = this.next;
    // taken before making: a span that fails to be made is lost, not retried forever
    this.next = end;
    const items = this.items;
    if (this.next === this.items.length) this.clear();
    else if (this.next > 1024 && this.next * 2 > this.items.length) this.compact();
    for (let i = start; i < end; i++) {
      const ending = items[i];
      if (ending === undefined) continue;
      const span = toConnectionSpan(ending);
      this.add({ resource: this.resourceFor(span.task.comm), span });
    }
  }

  clear(): void {
    this.items = [];
    this.next = 0;
  }

  private compact(): void {
    this.items = this.items.slice(this.next);
    this.next = 0;
  }
}
