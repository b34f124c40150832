/**
 * TcpEvent -> OpenTelemetry log record fields. Pure functions, no I/O.
 *
 * One record per event, with EventName `tcp.connect` / `tcp.accept` / `tcp.close`,
 * Timestamp = the kernel's event time, ObservedTimestamp = when user space read it,
 * severity INFO, a one-line human body, and attributes:
 *
 * | attribute                                 | connect | accept | close            |
 * | ----------------------------------------- | ------- | ------ | ---------------- |
 * | network.transport (`tcp`), network.type   | yes     | yes    | yes              |
 * | network.local.address / .port             | yes     | yes    | yes              |
 * | network.peer.address / .port              | yes     | yes    | yes              |
 * | client.address / .port, server.address / .port | yes | yes   | yes              |
 * | process.pid, process.executable.name, process.user.id (effective), process.real_user.id, thread.id | yes | yes | yes |
 * | tcptracer.netns.inode, tcptracer.cgroup.id | yes    | yes    | yes              |
 * | tcptracer.connection.{duration_ns,bytes_acked,bytes_received} | no | no | yes |
 *
 * Direction: the probe reports which end this host's socket is (event.role,
 * kept per socket from its connect or accept, so closes have it too): as client,
 * server = peer; as server, server = local.
 */
import { SeverityNumber } from '@opentelemetry/api';
import type { Attributes, HrTime, LogRecord } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
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
} from '../semconv.ts';
import type { TcpEvent, TcpEventType } from '../types.ts';

const EVENT_NAMES: Readonly<Record<TcpEventType, string>> = {
  connect: EVENT_TCP_CONNECT,
  accept: EVENT_TCP_ACCEPT,
  close: EVENT_TCP_CLOSE,
};

const NS_PER_SECOND = 1_000_000_000n;

/** Nanoseconds since the epoch as an exact HrTime `[seconds, nanoseconds]`. */
export function nsToHrTime(ns: bigint): HrTime {
  return [Number(ns / NS_PER_SECOND), Number(ns % NS_PER_SECOND)];
}

/** `addr:port`, with IPv6 addresses in brackets (`[::1]:80`). */
export function formatEndpoint(ip: 4 | 6, address: string, port: number): string {
  return ip === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * One-line summary used as the record body, local end first:
 * `connect 10.0.0.1:41234 -> 10.0.0.2:5432 (psql pid 4242)`; the arrow points
 * from client to server (`<-` where this host is the server).
 */
function summarize(event: TcpEvent): string {
  const arrow = event.role === 'client' ? '->' : '<-';
  const local = formatEndpoint(event.ip, event.saddr, event.sport);
  const peer = formatEndpoint(event.ip, event.daddr, event.dport);
  return `${event.type} ${local} ${arrow} ${peer} (${event.comm} pid ${event.pid})`;
}

/**
 * The attributes of the record for `event` (see the table in this module's doc).
 *
 * Each shape is one object literal: V8 gives it all its properties at once,
 * in a fast (non-dictionary) layout that the SDK copies quickly. Adding them
 * one by one would turn a close record's 20 into a dictionary.
 */
function eventAttributes(event: TcpEvent): Attributes {
  const client = event.role === 'client';
  const network = event.ip === 6 ? NETWORK_TYPE_VALUE_IPV6 : NETWORK_TYPE_VALUE_IPV4;
  if (event.type !== 'close') {
    return {
      [ATTR_NETWORK_TRANSPORT]: NETWORK_TRANSPORT_VALUE_TCP,
      [ATTR_NETWORK_TYPE]: network,
      [ATTR_NETWORK_LOCAL_ADDRESS]: event.saddr,
      [ATTR_NETWORK_LOCAL_PORT]: event.sport,
      [ATTR_NETWORK_PEER_ADDRESS]: event.daddr,
      [ATTR_NETWORK_PEER_PORT]: event.dport,
      [ATTR_PROCESS_PID]: event.pid,
      [ATTR_PROCESS_EXECUTABLE_NAME]: event.comm,
      [ATTR_PROCESS_USER_ID]: event.euid,
      [ATTR_PROCESS_REAL_USER_ID]: event.uid,
      [ATTR_THREAD_ID]: event.tid,
      [ATTR_TCPTRACER_NETNS_INODE]: event.netns,
      [ATTR_TCPTRACER_CGROUP_ID]: event.cgroupId,
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
    [ATTR_PROCESS_PID]: event.pid,
    [ATTR_PROCESS_EXECUTABLE_NAME]: event.comm,
    [ATTR_PROCESS_USER_ID]: event.euid,
    [ATTR_PROCESS_REAL_USER_ID]: event.uid,
    [ATTR_THREAD_ID]: event.tid,
    [ATTR_TCPTRACER_NETNS_INODE]: event.netns,
    [ATTR_TCPTRACER_CGROUP_ID]: event.cgroupId,
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
 */
export function toLogRecord(event: TcpEvent, observedAt: HrTime): LogRecord {
  return {
    eventName: EVENT_NAMES[event.type],
    timestamp: nsToHrTime(event.timeUnixNs),
    observedTimestamp: observedAt,
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: summarize(event),
    attributes: eventAttributes(event),
  };
}
