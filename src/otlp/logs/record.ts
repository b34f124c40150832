/**
 * What a log record is made of, and its writer: each TcpEvent becomes one
 * OpenTelemetry log record, written straight into the export request. This is
 * the one definition of a record (and of the attributes a connection's span
 * shares with it); test/unit-otlp-encode.test.ts checks its bytes against the
 * SDK's own, for records the test builds the stock way (test/helpers/sdk-reference.ts).
 *
 * One record per event, with EventName `tcp.connect` / `tcp.accept` / `tcp.close`
 * / `tcp.connect_failed`, Timestamp = the kernel's event time, ObservedTimestamp =
 * when user space read it, severity INFO (WARN for a failed connect), a
 * one-line human body, and attributes:
 *
 * | attribute                                 | connect | accept | close | failed |
 * | ----------------------------------------- | ------- | ------ | ----- | ------ |
 * | network.transport (`tcp`), network.type   | yes     | yes    | yes   | yes    |
 * | network.local.address / .port             | yes     | yes    | yes   | yes    |
 * | network.peer.address / .port              | yes     | yes    | yes   | yes    |
 * | client.address / .port, server.address / .port | yes | yes   | yes   | yes    |
 * | process.pid, process.executable.name, process.user.id (effective), process.real_user.id, thread.id | yes | yes | yes | yes |
 * | tcptracer.netns.inode, tcptracer.cgroup.id | yes    | yes    | yes   | yes    |
 * | container.id, k8s.pod.uid (when known: src/identity/) | yes | yes | yes | yes |
 * | tcptracer.connection.role (`client` / `server`) | yes | yes  | yes   | yes (`client`) |
 * | tcptracer.connection.handshake_ns         | yes (1) | no     | no    | no     |
 * | tcptracer.connection.{duration_ns,bytes_acked,bytes_received} | no | no | yes | no |
 * | tcptracer.connection.rtt_us               | no      | no     | yes (2) | no   |
 * | tcptracer.connection.retransmits          | no      | no     | yes   | no     |
 * | error.type (see {@link errorType})        | no      | no     | no    | yes    |
 *
 * (1) Left out when 0: the probe measures every connect it emits (from
 * SYN_SENT), so 0 is no measurement. (2) Left out when 0: the kernel had no
 * RTT sample (its smoothed RTT is at least 1 µs once it has one).
 *
 * A connect/accept/close record carries its connection's trace id and this
 * side's span id in its context (src/otlp/traces/ids.ts: derived from the
 * connection, so they are set whether or not spans are exported); a failed
 * connect has none.
 *
 * Direction: the probe reports which end this host's socket is (event.role,
 * kept per socket from its connect or accept, so closes have it too): as client,
 * server = peer; as server, server = local.
 *
 * The writer: each key's KeyValue prefix (protobuf.ts keyPrefix) is taken once,
 * at load; constant KeyValues (network.transport, network.type) are encoded
 * whole; the body is written piece by piece where it is ASCII.
 */
import { SeverityNumber } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_LOCAL_ADDRESS,
  ATTR_NETWORK_LOCAL_PORT,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NETWORK_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  NETWORK_TRANSPORT_VALUE_TCP,
  NETWORK_TYPE_VALUE_IPV4,
  NETWORK_TYPE_VALUE_IPV6,
} from '@opentelemetry/semantic-conventions';
import {
  ATTR_CONTAINER_ID,
  ATTR_K8S_POD_UID,
  ATTR_PROCESS_EXECUTABLE_NAME,
  ATTR_PROCESS_PID,
  ATTR_PROCESS_REAL_USER_ID,
  ATTR_PROCESS_USER_ID,
  ATTR_TCPTRACER_CGROUP_ID,
  ATTR_TCPTRACER_CONNECTION_BYTES_ACKED,
  ATTR_TCPTRACER_CONNECTION_BYTES_RECEIVED,
  ATTR_TCPTRACER_CONNECTION_DURATION_NS,
  ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS,
  ATTR_TCPTRACER_CONNECTION_RETRANSMITS,
  ATTR_TCPTRACER_CONNECTION_ROLE,
  ATTR_TCPTRACER_CONNECTION_RTT_US,
  ATTR_TCPTRACER_NETNS_INODE,
  ATTR_THREAD_ID,
  EVENT_TCP_ACCEPT,
  EVENT_TCP_CLOSE,
  EVENT_TCP_CONNECT,
  EVENT_TCP_CONNECT_FAILED,
} from '../../semconv.ts';
import type { TcpEvent, TcpEventType } from '../../types.ts';
import { errnoName } from '../../errno.ts';
import { keyPrefix, LEN, ProtoWriter, VARINT, varintSize, writeKeyValue } from '../wire/protobuf.ts';

const EVENT_NAMES: Readonly<Record<TcpEventType, string>> = {
  connect: EVENT_TCP_CONNECT,
  accept: EVENT_TCP_ACCEPT,
  close: EVENT_TCP_CLOSE,
  failed: EVENT_TCP_CONNECT_FAILED,
};

/** error.type of the common connect failures, by errno name. */
const ERROR_TYPES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection_refused',
  ETIMEDOUT: 'timed_out',
  EHOSTUNREACH: 'host_unreachable',
  ENETUNREACH: 'network_unreachable',
  ECONNRESET: 'connection_reset',
};

/**
 * `error.type` of a failed connect, from the errno the kernel recorded on the
 * socket: ECONNREFUSED (a RST answered the SYN) `connection_refused`,
 * ETIMEDOUT (SYN retries exhausted) `timed_out`, EHOSTUNREACH / ENETUNREACH
 * (ICMP) `host_unreachable` / `network_unreachable`, ECONNRESET
 * `connection_reset`, 0 `aborted` (no error recorded: the application gave up
 * first, closing the socket or letting its own timeout fire, or the connect
 * failed before a SYN was sent); any other errno its name lower-cased
 * (EACCES: `eacces`), and `errno_N` for a number without a name.
 */
export function errorType(errno: number): string {
  if (errno === 0) return 'aborted';
  const name = errnoName(errno);
  return ERROR_TYPES[name] ?? name.toLowerCase().replace(' ', '_');
}

/** What the body says of a failure: `connection refused`, `timed out`, ..., or the errno name (`EACCES`). */
function describeFailure(errno: number): string {
  const name = errnoName(errno);
  return errno === 0 || name in ERROR_TYPES ? errorType(errno).replace('_', ' ') : name;
}

/** `addr:port`, with IPv6 addresses in brackets (`[::1]:80`). */
export function formatEndpoint(ip: 4 | 6, address: string, port: number): string {
  return ip === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** EventName of the record for `event`: `tcp.connect`, `tcp.accept`, `tcp.close`, `tcp.connect_failed`. */
export function eventName(event: TcpEvent): string {
  return EVENT_NAMES[event.type];
}

const INFO = { number: SeverityNumber.INFO, text: 'INFO' } as const;
const WARN = { number: SeverityNumber.WARN, text: 'WARN' } as const;

/** Severity of the record for `event`: WARN for a failed connect, INFO otherwise. */
export function logSeverity(event: TcpEvent): { readonly number: SeverityNumber; readonly text: string } {
  return event.type === 'failed' ? WARN : INFO;
}

/**
 * One-line summary used as the record body, local end first:
 * `connect 10.0.0.1:41234 -> 10.0.0.2:5432 (psql pid 4242)`; the arrow points
 * from client to server (`<-` where this host is the server).
 */
export function logBody(event: TcpEvent): string {
  const arrow = event.role === 'client' ? '->' : '<-';
  const local = formatEndpoint(event.ip, event.saddr, event.sport);
  const peer = formatEndpoint(event.ip, event.daddr, event.dport);
  if (event.type === 'failed') return `connect ${local} ${arrow} ${peer} failed: ${describeFailure(event.errno)} (${event.comm} pid ${event.pid})`;
  return `${event.type} ${local} ${arrow} ${peer} (${event.comm} pid ${event.pid})`;
}

/** The task an event's process.* / thread.* / container attributes name. */
export type EventTask = Pick<TcpEvent, 'pid' | 'tid' | 'comm' | 'uid' | 'euid' | 'containerId' | 'podUid'>;


/** A whole KeyValue with a constant value (without its field's tag). */
function constant(key: string, value: string): Buffer {
  const w = new ProtoWriter(key.length + value.length + 16);
  writeKeyValue(w, keyPrefix(key), value);
  return Buffer.from(w.finish());
}

const TRANSPORT_TCP = constant(ATTR_NETWORK_TRANSPORT, NETWORK_TRANSPORT_VALUE_TCP);
const TYPE_IPV4 = constant(ATTR_NETWORK_TYPE, NETWORK_TYPE_VALUE_IPV4);
const TYPE_IPV6 = constant(ATTR_NETWORK_TYPE, NETWORK_TYPE_VALUE_IPV6);
const ROLE_CLIENT = constant(ATTR_TCPTRACER_CONNECTION_ROLE, 'client');
const ROLE_SERVER = constant(ATTR_TCPTRACER_CONNECTION_ROLE, 'server');
const LOCAL_ADDRESS = keyPrefix(ATTR_NETWORK_LOCAL_ADDRESS);
const LOCAL_PORT = keyPrefix(ATTR_NETWORK_LOCAL_PORT);
const PEER_ADDRESS = keyPrefix(ATTR_NETWORK_PEER_ADDRESS);
const PEER_PORT = keyPrefix(ATTR_NETWORK_PEER_PORT);
const PID = keyPrefix(ATTR_PROCESS_PID);
const EXECUTABLE_NAME = keyPrefix(ATTR_PROCESS_EXECUTABLE_NAME);
const USER_ID = keyPrefix(ATTR_PROCESS_USER_ID);
const REAL_USER_ID = keyPrefix(ATTR_PROCESS_REAL_USER_ID);
const THREAD_ID = keyPrefix(ATTR_THREAD_ID);
const NETNS_INODE = keyPrefix(ATTR_TCPTRACER_NETNS_INODE);
const CGROUP_ID = keyPrefix(ATTR_TCPTRACER_CGROUP_ID);
const CONTAINER_ID = keyPrefix(ATTR_CONTAINER_ID);
const POD_UID = keyPrefix(ATTR_K8S_POD_UID);
const CLIENT_ADDRESS = keyPrefix(ATTR_CLIENT_ADDRESS);
const CLIENT_PORT = keyPrefix(ATTR_CLIENT_PORT);
const SERVER_ADDRESS = keyPrefix(ATTR_SERVER_ADDRESS);
const SERVER_PORT = keyPrefix(ATTR_SERVER_PORT);
const DURATION_NS = keyPrefix(ATTR_TCPTRACER_CONNECTION_DURATION_NS);
const BYTES_ACKED = keyPrefix(ATTR_TCPTRACER_CONNECTION_BYTES_ACKED);
const BYTES_RECEIVED = keyPrefix(ATTR_TCPTRACER_CONNECTION_BYTES_RECEIVED);
const HANDSHAKE_NS = keyPrefix(ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS);
const RTT_US = keyPrefix(ATTR_TCPTRACER_CONNECTION_RTT_US);
const RETRANSMITS = keyPrefix(ATTR_TCPTRACER_CONNECTION_RETRANSMITS);
const ERROR_TYPE = keyPrefix(ATTR_ERROR_TYPE);

/** The generic KeyValue writer, for values the fast paths below do not take. */
function slow(w: ProtoWriter, field: number, key: Buffer, value: string | number): void {
  w.tag(field, LEN);
  writeKeyValue(w, key, value);
}

/**
 * The head of a KeyValue in `field` whose lengths all fit in one byte, up to
 * its value's bytes: tag, length, the key's prefix, the AnyValue's length and
 * the value's tag. Room for it must be ensured. Returns the position after it.
 */
function head(buf: Buffer, pos: number, field: number, key: Buffer, kvLength: number, valueTag: number, anyValueLength: number): number {
  let at = pos;
  buf[at++] = (field << 3) | LEN;
  buf[at++] = kvLength;
  buf.set(key, at);
  at += key.length;
  buf[at++] = anyValueLength;
  buf[at++] = valueTag;
  return at;
}

/**
 * A KeyValue in `field` with a string value (string_value, field 1). Fast
 * path: an ASCII value short enough that every length is one byte, written
 * with one bounds check.
 */
function str(w: ProtoWriter, field: number, key: Buffer, value: string): void {
  const n = value.length;
  const kvLength = key.length + 3 + n; // key and value tag, AnyValue length, string tag, string length, string
  if (kvLength > 0x7f) {
    slow(w, field, key, value);
    return;
  }
  w.ensure(kvLength + 2);
  const buf = w.buf;
  const start = w.pos;
  let pos = head(buf, start, field, key, kvLength, (1 << 3) | LEN, n + 2);
  buf[pos++] = n;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c > 0x7f) {
      w.pos = start;
      slow(w, field, key, value);
      return;
    }
    buf[pos++] = c;
  }
  w.pos = pos;
}

/** A KeyValue in `field` with a non-negative integer value (int_value, field 3), written with one bounds check. */
function int(w: ProtoWriter, field: number, key: Buffer, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    // not one of ours (counters and ids are unsigned 32/53-bit): the generic path
    slow(w, field, key, value);
    return;
  }
  const size = varintSize(value);
  const kvLength = key.length + 2 + size; // key and value tag, AnyValue length, int tag, varint
  if (kvLength > 0x7f) {
    slow(w, field, key, value);
    return;
  }
  w.ensure(kvLength + 2);
  w.pos = head(w.buf, w.pos, field, key, kvLength, (3 << 3) | VARINT, size + 1);
  w.varint(value);
}

/**
 * The attributes of the record for `event` (the table above) as repeated
 * KeyValue in `field`, naming `task` (default: the event's own; a span names
 * the task that opened its connection). container.id and k8s.pod.uid are left
 * out where unknown.
 */
export function writeEventAttributes(w: ProtoWriter, field: number, event: TcpEvent, task: EventTask = event): void {
  w.tag(field, LEN);
  w.raw(TRANSPORT_TCP);
  w.tag(field, LEN);
  w.raw(event.ip === 6 ? TYPE_IPV6 : TYPE_IPV4);
  str(w, field, LOCAL_ADDRESS, event.saddr);
  int(w, field, LOCAL_PORT, event.sport);
  str(w, field, PEER_ADDRESS, event.daddr);
  int(w, field, PEER_PORT, event.dport);
  int(w, field, PID, task.pid);
  str(w, field, EXECUTABLE_NAME, task.comm);
  int(w, field, USER_ID, task.euid);
  int(w, field, REAL_USER_ID, task.uid);
  int(w, field, THREAD_ID, task.tid);
  int(w, field, NETNS_INODE, event.netns);
  int(w, field, CGROUP_ID, event.cgroupId);
  if (task.containerId !== undefined) str(w, field, CONTAINER_ID, task.containerId);
  if (task.podUid !== undefined) str(w, field, POD_UID, task.podUid);
  const client = event.type === 'failed' || event.role === 'client';
  str(w, field, CLIENT_ADDRESS, client ? event.saddr : event.daddr);
  int(w, field, CLIENT_PORT, client ? event.sport : event.dport);
  str(w, field, SERVER_ADDRESS, client ? event.daddr : event.saddr);
  int(w, field, SERVER_PORT, client ? event.dport : event.sport);
  w.tag(field, LEN);
  w.raw(client ? ROLE_CLIENT : ROLE_SERVER);
  if (event.type === 'failed') {
    str(w, field, ERROR_TYPE, errorType(event.errno));
  } else if (event.type === 'close') {
    int(w, field, DURATION_NS, event.durationNs);
    int(w, field, BYTES_ACKED, event.bytesAcked);
    int(w, field, BYTES_RECEIVED, event.bytesReceived);
    if (event.rttUs !== 0) int(w, field, RTT_US, event.rttUs);
    int(w, field, RETRANSMITS, event.retransmits);
  } else if (event.type === 'connect' && event.handshakeNs !== 0) {
    int(w, field, HANDSHAKE_NS, event.handshakeNs);
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function digits(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

/** Writes the decimal digits of non-negative integer `n` (exactly `count` of them). */
function decimal(w: ProtoWriter, n: number, count: number): void {
  const buf = w.buf;
  let rest = n;
  for (let i = w.pos + count - 1; i >= w.pos; i--) {
    buf[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  w.pos += count;
}

function ascii(w: ProtoWriter, s: string): void {
  const buf = w.buf;
  let pos = w.pos;
  for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
  w.pos = pos;
}

const TYPE_WORDS: Readonly<Record<TcpEvent['type'], string>> = { connect: 'connect ', accept: 'accept ', close: 'close ', failed: 'connect ' };

/**
 * The body, logBody(event), as a length-prefixed string: written piece by
 * piece for the usual events; a failed connect, or a name or address that is
 * not ASCII, goes through logBody itself.
 */
export function writeEventBody(w: ProtoWriter, event: TcpEvent): void {
  const { comm, saddr, daddr } = event;
  if (event.type === 'failed' || !isAscii(comm) || !isAscii(saddr) || !isAscii(daddr)) {
    w.string(logBody(event));
    return;
  }
  const word = TYPE_WORDS[event.type];
  const brackets = event.ip === 6 ? 2 : 0;
  const sportDigits = digits(event.sport);
  const dportDigits = digits(event.dport);
  const pidDigits = digits(event.pid);
  // `<type> <local> -> <peer> (<comm> pid <pid>)`
  const length = word.length + brackets + saddr.length + 1 + sportDigits + 4 + brackets + daddr.length + 1 + dportDigits + 2 + comm.length + 5 + pidDigits + 1;
  w.varint(length);
  w.ensure(length);
  ascii(w, word);
  if (brackets) ascii(w, '[');
  ascii(w, saddr);
  ascii(w, brackets ? ']:' : ':');
  decimal(w, event.sport, sportDigits);
  ascii(w, event.role === 'client' ? ' -> ' : ' <- ');
  if (brackets) ascii(w, '[');
  ascii(w, daddr);
  ascii(w, brackets ? ']:' : ':');
  decimal(w, event.dport, dportDigits);
  ascii(w, ' (');
  ascii(w, comm);
  ascii(w, ' pid ');
  decimal(w, event.pid, pidDigits);
  ascii(w, ')');
}
