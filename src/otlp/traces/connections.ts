/**
 * Which connections are open, and the spans due: the traces side of the
 * OTLP sink's queue.
 *
 * {@link OpenConnections} remembers each connect/accept until its close (a
 * bounded map: past {@link MAX_OPEN_CONNECTIONS} a connection is not
 * remembered, and counted; its close still makes its span, from the close
 * alone), so that at shutdown the connections still open can be ended as
 * spans marked `tracer_stopped` (each entry holds the connect/accept event:
 * about 20-30 MB at the bound). It follows every event the tracer read, also
 * those the export queue refused or the tracer did not decode (their refs), so
 * that each connection's span is made or counted as dropped exactly once. {@link SpanQueue} holds the connections whose
 * span is due and makes the spans only when the processor is about to export
 * them (the deferred-items mechanism of processor.ts).
 */
import type { ConnectionRef, TcpEvent } from '../../types.ts';
import type { ConnectionEnding } from './span.ts';

/** Most open connections remembered. */
export const MAX_OPEN_CONNECTIONS = 65_536;

/**
 * A connection's key: its ISN pair, ports, network namespace and this end's
 * role, as the 16-bit units of a short string (formatting the numbers as
 * decimal text cost more than the map itself). Addresses are left out: two
 * connections open at once with the same ISN pair, ports and namespace would
 * also share their span ids (src/otlp/traces/ids.ts). Without ISNs (both 0: a kernel
 * that did not report them) the addresses are in.
 */
function key(event: ConnectionRef): string {
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

/**
 * What following one event says about spans: none due (undefined), a span due
 * that can be made from what was seen (a ConnectionEnding), or a span due that
 * cannot be made (null: the close was not decoded, or the tracer has
 * stopped), which the caller counts as dropped.
 */
export type SpanDue = ConnectionEnding | null | undefined;

export class OpenConnections {
  /** Open connections: the connect/accept event, or null when only its ref was seen. */
  private readonly open = new Map<string, TcpEvent | null>();
  private readonly max: number;
  private overflowCount = 0;
  /** After {@link stopAll}: the keys it ended, whose closes are no second span. */
  private stopped: Set<string> | undefined;

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
   * Follows one event, decoded (`full`) or only its ref: remembers a
   * connect/accept, forgets it at its close and says what span is due then.
   * Every connection it sees a connect, accept or close of gets exactly one
   * SpanDue that is not undefined, here or from {@link stopAll} (except those
   * past the map's bound still open at stopAll: {@link overflow}).
   */
  observe(event: ConnectionRef, full: boolean): SpanDue {
    switch (event.type) {
      case 'connect':
      case 'accept': {
        // after stopAll nothing ends it any more: its span is due now, and cannot be made
        if (this.stopped !== undefined) return null;
        const k = key(event);
        if (this.open.size >= this.max && !this.open.has(k)) this.overflowCount++;
        else this.open.set(k, full ? (event as TcpEvent) : null);
        return undefined;
      }
      case 'close': {
        const k = key(event);
        if (this.stopped?.delete(k) === true) return undefined;
        const opened = this.open.get(k);
        this.open.delete(k);
        if (!full || this.stopped !== undefined) return null;
        const close = event as TcpEvent;
        return { event: close, opened: opened ?? undefined, end: close.end };
      }
      default:
        return undefined;
    }
  }

  /**
   * Ends every open connection at `stoppedAtNs` (ns since the epoch) and
   * forgets it: `endings` of those whose connect/accept was decoded, and how
   * many others (`unmade`: only their ref seen) are due but cannot be made.
   */
  stopAll(stoppedAtNs: bigint): { endings: ConnectionEnding[]; unmade: number } {
    const endings: ConnectionEnding[] = [];
    let unmade = 0;
    for (const event of this.open.values()) {
      if (event === null) unmade++;
      else endings.push({ event, opened: event, end: 'tracer_stopped', stoppedAtNs });
    }
    this.stopped = new Set(this.open.keys());
    this.open.clear();
    return { endings, unmade };
  }
}
