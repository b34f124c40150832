/**
 * TcpEvent -> OpenTelemetry log record fields. Pure functions, no I/O.
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
 * | tcptracer.connection.{duration_ns,bytes_acked,bytes_received} | no | no | yes | no |
 * | error.type (see {@link errorType})        | no      | no     | no    | yes    |
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
 * This module is the definition, in the SDK's terms (toLogRecord is what
 * Logger.emit would take). The exporter does not build these objects: it
 * writes the same fields straight from the event (src/otlp/logs/record.ts),
 * and test/unit-otlp-encode.test.ts checks that the bytes are the ones the SDK
 * writes for toLogRecord's records. Change both together.
 */
import { SeverityNumber } from '@opentelemetry/api';
import type { Attributes, Context, HrTime, LogRecord } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_CLIENT_PORT,
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
  ATTR_TCPTRACER_NETNS_INODE,
  ATTR_THREAD_ID,
  EVENT_TCP_ACCEPT,
  EVENT_TCP_CLOSE,
  EVENT_TCP_CONNECT,
  EVENT_TCP_CONNECT_FAILED,
} from '../../semconv.ts';
import { errnoName } from '../../errno.ts';
import type { TcpEvent, TcpEventType } from '../../types.ts';

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

const NS_PER_SECOND = 1_000_000_000n;

/** Nanoseconds since the epoch as an exact HrTime `[seconds, nanoseconds]`. */
export function nsToHrTime(ns: bigint): HrTime {
  return [Number(ns / NS_PER_SECOND), Number(ns % NS_PER_SECOND)];
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

/**
 * The attributes of the record for `event` (see the table in this module's doc),
 * naming `task` (default: the event's own; a span names the task that opened
 * its connection).
 *
 * Each shape is one object literal: V8 gives it all its properties at once,
 * in a fast (non-dictionary) layout that the SDK copies quickly. Adding them
 * one by one would turn a close record's 20 into a dictionary. container.id
 * and k8s.pod.uid are undefined for host processes: the SDK drops undefined
 * values silently, so one shape serves both.
 */
export function eventAttributes(event: TcpEvent, task: EventTask = event): Attributes {
  const client = event.role === 'client';
  const network = event.ip === 6 ? NETWORK_TYPE_VALUE_IPV6 : NETWORK_TYPE_VALUE_IPV4;
  if (event.type === 'failed') {
    return {
      [ATTR_NETWORK_TRANSPORT]: NETWORK_TRANSPORT_VALUE_TCP,
      [ATTR_NETWORK_TYPE]: network,
      [ATTR_NETWORK_LOCAL_ADDRESS]: event.saddr,
      [ATTR_NETWORK_LOCAL_PORT]: event.sport,
      [ATTR_NETWORK_PEER_ADDRESS]: event.daddr,
      [ATTR_NETWORK_PEER_PORT]: event.dport,
      [ATTR_PROCESS_PID]: task.pid,
      [ATTR_PROCESS_EXECUTABLE_NAME]: task.comm,
      [ATTR_PROCESS_USER_ID]: task.euid,
      [ATTR_PROCESS_REAL_USER_ID]: task.uid,
      [ATTR_THREAD_ID]: task.tid,
      [ATTR_TCPTRACER_NETNS_INODE]: event.netns,
      [ATTR_TCPTRACER_CGROUP_ID]: event.cgroupId,
      [ATTR_CONTAINER_ID]: task.containerId,
      [ATTR_K8S_POD_UID]: task.podUid,
      [ATTR_CLIENT_ADDRESS]: event.saddr,
      [ATTR_CLIENT_PORT]: event.sport,
      [ATTR_SERVER_ADDRESS]: event.daddr,
      [ATTR_SERVER_PORT]: event.dport,
      [ATTR_ERROR_TYPE]: errorType(event.errno),
    };
  }
  if (event.type !== 'close') {
    return {
      [ATTR_NETWORK_TRANSPORT]: NETWORK_TRANSPORT_VALUE_TCP,
      [ATTR_NETWORK_TYPE]: network,
      [ATTR_NETWORK_LOCAL_ADDRESS]: event.saddr,
      [ATTR_NETWORK_LOCAL_PORT]: event.sport,
      [ATTR_NETWORK_PEER_ADDRESS]: event.daddr,
      [ATTR_NETWORK_PEER_PORT]: event.dport,
      [ATTR_PROCESS_PID]: task.pid,
      [ATTR_PROCESS_EXECUTABLE_NAME]: task.comm,
      [ATTR_PROCESS_USER_ID]: task.euid,
      [ATTR_PROCESS_REAL_USER_ID]: task.uid,
      [ATTR_THREAD_ID]: task.tid,
      [ATTR_TCPTRACER_NETNS_INODE]: event.netns,
      [ATTR_TCPTRACER_CGROUP_ID]: event.cgroupId,
      [ATTR_CONTAINER_ID]: task.containerId,
      [ATTR_K8S_POD_UID]: task.podUid,
      [ATTR_CLIENT_ADDRESS]: client ? event.saddr : event.daddr,
      [ATTR_CLIENT_PORT]: client ? event.sport : event.dport,
      [ATTR_SERVER_ADDRESS]: client ? event.daddr : event.saddr,
      [ATTR_SERVER_PORT]: client ? event.dport : event.sport,
    };
  }
  return {
    [ATTR_NETWORK_TRANSPORT]: NETWORK_TRANSPORT_VALUE_TCP,
    [ATTR_NETWORK_TYPE]: network,
    [ATTR_NETWORK_LOCAL_ADDRESS]: event.saddr,
    [ATTR_NETWORK_LOCAL_PORT]: event.sport,
    [ATTR_NETWORK_PEER_ADDRESS]: event.daddr,
    [ATTR_NETWORK_PEER_PORT]: event.dport,
    [ATTR_PROCESS_PID]: task.pid,
    [ATTR_PROCESS_EXECUTABLE_NAME]: task.comm,
    [ATTR_PROCESS_USER_ID]: task.euid,
    [ATTR_PROCESS_REAL_USER_ID]: task.uid,
    [ATTR_THREAD_ID]: task.tid,
    [ATTR_TCPTRACER_NETNS_INODE]: event.netns,
    [ATTR_TCPTRACER_CGROUP_ID]: event.cgroupId,
    [ATTR_CONTAINER_ID]: task.containerId,
    [ATTR_K8S_POD_UID]: task.podUid,
    [ATTR_CLIENT_ADDRESS]: client ? event.saddr : event.daddr,
    [ATTR_CLIENT_PORT]: client ? event.sport : event.dport,
    [ATTR_SERVER_ADDRESS]: client ? event.daddr : event.saddr,
    [ATTR_SERVER_PORT]: client ? event.dport : event.sport,
    [ATTR_TCPTRACER_CONNECTION_DURATION_NS]: event.durationNs,
    [ATTR_TCPTRACER_CONNECTION_BYTES_ACKED]: event.bytesAcked,
    [ATTR_TCPTRACER_CONNECTION_BYTES_RECEIVED]: event.bytesReceived,
  };
}

/**
 * The log record for one event.
 *
 * @param observedAt when user space read the event; one HrTime may be shared by
 *   every event of a batch (it is never mutated).
 * @param context holds the span context the record points at (its
 *   connection's trace id and this side's span id); none for a failed connect.
 */
export function toLogRecord(event: TcpEvent, observedAt: HrTime, context?: Context): LogRecord {
  const severity = logSeverity(event);
  return {
    eventName: eventName(event),
    timestamp: nsToHrTime(event.timeUnixNs),
    observedTimestamp: observedAt,
    severityNumber: severity.number,
    severityText: severity.text,
    body: logBody(event),
    attributes: eventAttributes(event),
    context,
  };
}
