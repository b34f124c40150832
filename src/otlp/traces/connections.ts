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
 * those the export queue refused, so that each connection's span is made or
 * counted as dropped exactly once. The spans due wait in ./queue.ts.
 */
import type { TcpEvent } from '../../types.ts';
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

/**
 * What following one event says about spans: none due (undefined), a span due
 * (a ConnectionEnding), or a span due that cannot be made any more (null: the
 * tracer has stopped), which the caller counts as dropped.
 */
export type SpanDue = ConnectionEnding | null | undefined;

export class OpenConnections {
  /** Open connections: their connect/accept event. */
  private readonly open = new Map<string, TcpEvent>();
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
   * Follows one event: remembers a connect/accept, forgets it at its close
   * and says what span is due then.
   * Every connection it sees a connect, accept or close of gets exactly one
   * SpanDue that is not undefined, here or from {@link stopAll} (except those
   * past the map's bound still open at stopAll: {@link overflow}).
   */
  observe(event: TcpEvent): SpanDue {
    switch (event.type) {
      case 'connect':
      case 'accept': {
        // after stopAll nothing ends it any more: its span is due now, and cannot be made
        if (this.stopped !== undefined) return null;
        const k = key(event);
        if (this.open.size >= this.max && !this.open.has(k)) this.overflowCount++;
        else this.open.set(k, event);
        return undefined;
      }
      case 'close': {
        const k = key(event);
        if (this.stopped?.delete(k) === true) return undefined;
        const opened = this.open.get(k);
        this.open.delete(k);
        if (this.stopped !== undefined) return null;
        return { event, opened, end: event.end };
      }
      default:
        return undefined;
    }
  }

  /**
   * Ends every open connection at `stoppedAtNs` (ns since the epoch) and
   * forgets it: the endings of their spans.
   */
  stopAll(stoppedAtNs: bigint): ConnectionEnding[] {
    const endings: ConnectionEnding[] = [];
    for (const event of this.open.values()) endings.push({ event, opened: event, end: 'tracer_stopped', stoppedAtNs });
    this.stopped = new Set(this.open.keys());
    this.open.clear();
    return endings;
  }
}
