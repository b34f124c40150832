/**
 * Which connections are open, and the spans due: the traces side of the
 * OTLP sink's queue.
 *
 * {@link OpenConnections} remembers each connect/accept until its close (a
 * bounded map: past {@link MAX_OPEN_CONNECTIONS} a connection is not
 * remembered, and counted; its close still makes its span, from the close
 * alone), so that at shutdown the connections still open can be ended as
 * spans marked `tracer_stopped` (each entry holds the connect/accept event:
 * about 20-30 MB at the bound). {@link SpanQueue} holds the connections whose
 * span is due and makes the spans only when the processor is about to export
 * them (the deferred-items mechanism of processor.ts).
 */
import type { Resource } from '@opentelemetry/resources';
import type { TcpEvent } from '../types.ts';
import type { SpanItem } from './encode.ts';
import type { DeferredItems } from './processor.ts';
import { toConnectionSpan } from './spans.ts';
import type { ConnectionEnding } from './spans.ts';

/** Most open connections remembered. */
export const MAX_OPEN_CONNECTIONS = 65_536;

/**
 * A connection's key: its ISN pair, ports, network namespace and this end's
 * role, as the 16-bit units of a short string (formatting the numbers as
 * decimal text cost more than the map itself). Addresses are left out: two
 * connections open at once with the same ISN pair, ports and namespace would
 * also share their span ids (src/otlp/ids.ts). Without ISNs (both 0: a kernel
 * that did not report them) the addresses are in.
 */
function key(event: TcpEvent): string {
  const { localIsn, peerIsn, netns } = event;
  if (localIsn === 0 && peerIsn === 0) return `${netns} ${event.role} ${event.saddr} ${event.sport} ${event.daddr} ${event.dport}`;
  return String.fromCharCode(
    localIsn & 0xffff,
    localIsn >>> 16,
    peerIsn & 0xffff,
    peerIsn >>> 16,
    event.sport,
    event.dport,
    netns & 0xffff,
    netns >>> 16,
    event.role === 'client' ? 1 : 2,
  );
}

export class OpenConnections {
  private readonly open = new Map<string, TcpEvent>();
  private readonly max: number;
  private overflowCount = 0;

  constructor(max = MAX_OPEN_CONNECTIONS) {
    this.max = max;
  }

  /** Connections open now (connect/accept seen, close not yet). */
  get size(): number {
    return this.open.size;
  }

  /** Connections not remembered because the map was full. */
  get overflow(): number {
    return this.overflowCount;
  }

  /**
   * Follows one event: remembers a connect/accept, forgets it at its close and
   * returns what the close's span is made from. Undefined for anything else.
   */
  observe(event: TcpEvent): ConnectionEnding | undefined {
    switch (event.type) {
      case 'connect':
      case 'accept': {
        const k = key(event);
        if (this.open.size >= this.max && !this.open.has(k)) this.overflowCount++;
        else this.open.set(k, event);
        return undefined;
      }
      case 'close': {
        const k = key(event);
        const opened = this.open.get(k);
        if (opened !== undefined) this.open.delete(k);
        return { event, opened, end: event.end };
      }
      default:
        return undefined;
    }
  }

  /** Ends every open connection at `stoppedAtNs` (ns since the epoch) and forgets them. */
  stopAll(stoppedAtNs: bigint): ConnectionEnding[] {
    const out: ConnectionEnding[] = [];
    for (const event of this.open.values()) out.push({ event, opened: event, end: 'tracer_stopped', stoppedAtNs });
    this.open.clear();
    return out;
  }
}

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
      this.add({ resource: this.resourceFor(span.comm), span });
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
