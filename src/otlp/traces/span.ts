/**
 * Connections as spans: one span per connection that had a connect or an
 * accept, made when its close arrives (or at shutdown, for one still open).
 *
 * | field      | value |
 * | ---------- | ----- |
 * | name       | `connect <server.address>:<server.port>` (CLIENT) / `accept <server.address>:<server.port>` (SERVER); IPv6 in brackets |
 * | kind       | CLIENT where this host connected, SERVER where it accepted |
 * | start      | establishment: the close's kernel time minus its duration (still open at shutdown: the connect/accept event's time) |
 * | end        | the close's kernel time (still open at shutdown: the shutdown time) |
 * | ids        | derived from the connection (src/otlp/traces/ids.ts); the SERVER span's parent is the CLIENT span |
 * | attributes | the log records' (network.*, client.*, server.*, process.*, thread.id, tcptracer.*: role, duration, bytes, rtt_us, retransmits), the connect's `tcptracer.connection.handshake_ns` (client), `tcptracer.connection.end` |
 * | status     | ERROR when the connection was reset or aborted (`connection reset (ECONNRESET)`), UNSET otherwise |
 * | trace state | `ot=th:<threshold>` when sampling (src/otlp/sampling.ts) kept it, none otherwise |
 *
 * process.* and thread.id name the task that connected or accepted when the
 * tracer saw it, else the closing task.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Attributes, SpanStatus } from '@opentelemetry/api';
import { errnoName } from '../../errno.ts';
import { ATTR_TCPTRACER_CONNECTION_DURATION_NS, ATTR_TCPTRACER_CONNECTION_END, ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS } from '../../semconv.ts';
import type { ConnectionEnd, TcpEvent } from '../../types.ts';
import { connectionIds } from './ids.ts';
import type { ConnectionIds } from './ids.ts';
import { formatEndpoint } from '../logs/record.ts';
import type { EventTask } from '../logs/record.ts';

/** How a span's connection ended: as the probe saw it, or still open when the tracer stopped. */
export type SpanEnd = ConnectionEnd | 'tracer_stopped';

/** A connection whose span is due: what its span is made from. */
export interface ConnectionEnding {
  /** The close event; for `tracer_stopped`, the connect or accept event. */
  readonly event: TcpEvent;
  /** The connect or accept event of the same connection, when the tracer saw it. */
  readonly opened: TcpEvent | undefined;
  readonly end: SpanEnd | undefined;
  /** `tracer_stopped` only: when the tracer stopped, ns since the epoch. */
  readonly stoppedAtNs?: bigint;
  /** The span's W3C trace state, when the sampler gives one (`ot=th:8`: src/otlp/sampling.ts). */
  readonly traceState?: string;
}

/** Everything a connection's span is made of (see the table in this module's doc). */
export interface ConnectionSpan {
  readonly name: string;
  readonly kind: SpanKind;
  /** Start and end, in ns since the epoch. */
  readonly startNs: bigint;
  readonly endNs: bigint;
  /** The event the span is made of (the close; for `tracer_stopped`, the connect or accept): its attributes are the record's (src/otlp/logs/record.ts). */
  readonly event: TcpEvent;
  /** The task its process.* / thread.id attributes name: the one that opened the connection when seen, else the closing one. */
  readonly task: EventTask;
  /**
   * The span's own, after those: tcptracer.connection.end (and the duration, for
   * tracer_stopped), and for a close whose connect the tracer saw, its handshake
   * (a tracer_stopped span is made of the connect: its record's attributes have it).
   */
  readonly spanAttributes: Attributes;
  readonly status: SpanStatus;
  /** Undefined when the events carry no ISNs: the SDK then picks random ids. */
  readonly ids: ConnectionIds | undefined;
  /** The W3C trace state (`ot=th:8`), when the connection was sampled; else none is written. */
  readonly traceState: string | undefined;
}

const NO_ATTRIBUTES: Attributes = Object.freeze({});

/** Span status of a connection that ended `end` with sk_err `errno`. */
export function connectionStatus(end: SpanEnd | undefined, errno: number): SpanStatus {
  if (end !== 'reset') return { code: SpanStatusCode.UNSET };
  if (errno === 0) return { code: SpanStatusCode.ERROR, message: 'connection reset/aborted' };
  const name = errnoName(errno);
  return { code: SpanStatusCode.ERROR, message: `connection ${name === 'ECONNRESET' ? 'reset' : 'aborted'} (${name})` };
}

/** The span of one connection. Pure: no SDK object is made. */
export function toConnectionSpan(ending: ConnectionEnding): ConnectionSpan {
  const { event, opened, end } = ending;
  // the connection as the close saw it, named after the task that opened it
  const who = opened ?? event;
  const client = event.role === 'client';
  const server = client ? formatEndpoint(event.ip, event.daddr, event.dport) : formatEndpoint(event.ip, event.saddr, event.sport);
  let startNs: bigint;
  let endNs: bigint;
  let spanAttributes: Attributes;
  if (end === 'tracer_stopped' || event.type !== 'close') {
    startNs = event.timeUnixNs;
    endNs = ending.stoppedAtNs ?? event.timeUnixNs;
    if (endNs < startNs) endNs = startNs;
    spanAttributes = { [ATTR_TCPTRACER_CONNECTION_DURATION_NS]: Number(endNs - startNs), [ATTR_TCPTRACER_CONNECTION_END]: 'tracer_stopped' };
  } else {
    endNs = event.timeUnixNs;
    startNs = endNs - BigInt(event.durationNs);
    const handshakeNs = opened?.type === 'connect' ? opened.handshakeNs : 0;
    if (handshakeNs !== 0) {
      spanAttributes = end === undefined ? { [ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS]: handshakeNs } : { [ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS]: handshakeNs, [ATTR_TCPTRACER_CONNECTION_END]: end };
    } else {
      spanAttributes = end === undefined ? NO_ATTRIBUTES : { [ATTR_TCPTRACER_CONNECTION_END]: end };
    }
  }
  return {
    name: `${client ? 'connect' : 'accept'} ${server}`,
    kind: client ? SpanKind.CLIENT : SpanKind.SERVER,
    startNs,
    endNs,
    event,
    task: who,
    spanAttributes,
    status: connectionStatus(end, event.errno),
    ids: connectionIds(event),
    traceState: ending.traceState,
  };
}
