/**
 * Trace and span ids derived from the connection itself, so that the tracer
 * on the client's host and the one on the server's host compute the same
 * ones with no propagation.
 *
 * At ESTABLISHED both ends of a TCP connection know the same two initial
 * sequence numbers (ISNs): the client's (its SYN) and the server's (its
 * SYN-ACK). The probe reports this socket's own ISN and the peer's
 * (TcpEvent.localIsn / peerIsn), so client ISN = the client's local one, or
 * the server's peer one. One SHA-256 over a domain-separation label and the
 * two ISNs, client first, gives 32 bytes: the trace id (16), the client
 * span's id (8) and the server span's id (8). The server span is a child of
 * the client span: one connection traced on two hosts is one trace, a CLIENT
 * root and a SERVER child.
 *
 * Ports and addresses are left out of the hash on purpose: DNAT (a
 * Kubernetes Service maps port 80 to the pod's targetPort 8080, a load
 * balancer rewrites the destination address) and SNAT (masquerading rewrites
 * the source) make the two ends see different tuples, while the ISN pair
 * survives NAT and already tells connections apart (two 32-bit numbers that
 * RFC 6528 makes unpredictable, chosen anew per connection). Limits: TCP Fast
 * Open (the server side is established before the handshake completes, so
 * the pair may not match), middleboxes that rewrite sequence numbers
 * (some firewalls randomize ISNs; then the ends compute different ids and
 * each end's span is a one-span trace), and an end that is not traced (its
 * span is missing: the server span then names a parent no one exported).
 *
 * The ISNs and the hash stay in this process: only the derived ids leave.
 * An event with both ISNs 0 (a failed connect, or a kernel that did not
 * report them) has no derived ids.
 */
import { hash } from 'node:crypto';
import type { TcpEvent } from '../../types.ts';

/**
 * Ids of one connection: 32 bytes, the trace id (0-15), the client span's id
 * (16-23) and the server span's (24-31); the hex spellings OpenTelemetry JS
 * uses are made only when asked for (the encoder writes the bytes).
 */
export class ConnectionIds {
  readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  /** 32 hex digits. */
  get traceId(): string {
    return this.bytes.toString('hex', 0, 16);
  }

  /** 16 hex digits: the span of the connecting side (CLIENT, the trace's root). */
  get clientSpanId(): string {
    return this.bytes.toString('hex', 16, 24);
  }

  /** 16 hex digits: the span of the accepting side (SERVER, child of the client span). */
  get serverSpanId(): string {
    return this.bytes.toString('hex', 24, 32);
  }
}

/** Offsets of the ids in {@link ConnectionIds.bytes}. */
export const TRACE_ID = 0;
export const CLIENT_SPAN_ID = 16;
export const SERVER_SPAN_ID = 24;

const LABEL = Buffer.from('tcptracer-otel connection ids v1\0', 'latin1');

/** The hash's input, reused (hashing is synchronous): the label, the two ISNs, and a counter byte for retries. */
const HASH_INPUT = Buffer.alloc(LABEL.length + 9);
LABEL.copy(HASH_INPUT);
const HASH_INPUT_FIRST = HASH_INPUT.subarray(0, HASH_INPUT.length - 1);

function allZero(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * The ids of the connection whose client ISN and server ISN (unsigned 32-bit)
 * are given. Never an all-zero id, and the two span ids differ: in the
 * (2^-64) case where the hash gives one, it is taken again with a counter
 * byte appended, which both ends do alike.
 */
export function idsFromIsns(clientIsn: number, serverIsn: number): ConnectionIds {
  const input = HASH_INPUT;
  input.writeUInt32BE(clientIsn >>> 0, LABEL.length);
  input.writeUInt32BE(serverIsn >>> 0, LABEL.length + 4);
  let data = HASH_INPUT_FIRST;
  for (let round = 1; ; round++) {
    const bytes = hash('sha256', data, 'buffer');
    const valid =
      !allZero(bytes, TRACE_ID, 16) &&
      !allZero(bytes, CLIENT_SPAN_ID, 24) &&
      !allZero(bytes, SERVER_SPAN_ID, 32) &&
      bytes.compare(bytes, CLIENT_SPAN_ID, 24, SERVER_SPAN_ID, 32) !== 0;
    if (valid) return new ConnectionIds(bytes);
    input.writeUInt8(round & 0xff, input.length - 1);
    data = input;
  }
}

/**
 * Recently derived ids by client ISN (with the server ISN they were derived
 * with): a connection's connect/accept record, its close record and its span
 * need the same ids, and a lookup costs a small fraction of a SHA-256. A slot
 * taken by another connection with the same client ISN is simply derived
 * again. Bounded: cleared when full.
 */
const recent = new Map<number, { readonly serverIsn: number; readonly ids: ConnectionIds }>();
const RECENT_MAX = 16_384;

/** The ids of `event`'s connection, or undefined when it carries no ISNs (both 0). */
export function connectionIds(event: TcpEvent): ConnectionIds | undefined {
  if (event.localIsn === 0 && event.peerIsn === 0) return undefined;
  const client = event.role === 'client';
  const clientIsn = client ? event.localIsn : event.peerIsn;
  const serverIsn = client ? event.peerIsn : event.localIsn;
  const hit = recent.get(clientIsn);
  if (hit !== undefined && hit.serverIsn === serverIsn) return hit.ids;
  const ids = idsFromIsns(clientIsn, serverIsn);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(clientIsn, { serverIsn, ids });
  return ids;
}

/** This side's span id: the client span's for role client, the server span's for role server. */
export function ownSpanId(ids: ConnectionIds, role: TcpEvent['role']): string {
  return role === 'client' ? ids.clientSpanId : ids.serverSpanId;
}
