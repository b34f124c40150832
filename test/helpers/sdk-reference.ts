/**
 * The reference the tracer's encoder is proven against: log records and span
 * views in the SDK's own terms, built here independently of src/otlp (the
 * attribute table written out as object literals, as Logger.emit and
 * Tracer.startSpan take them), for test/unit-otlp-encode.test.ts to serialize
 * with the SDK's serializers and compare byte for byte with what
 * src/otlp/wire/requests.ts writes. Also the reference path of
 * bench/otlp-record-cost.ts.
 */
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
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
  ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS,
  ATTR_TCPTRACER_CONNECTION_RETRANSMITS,
  ATTR_TCPTRACER_CONNECTION_ROLE,
  ATTR_TCPTRACER_CONNECTION_RTT_US,
  ATTR_TCPTRACER_NETNS_INODE,
  ATTR_THREAD_ID,
} from '../../src/semconv.ts';
import type { TcpEvent } from '../../src/types.ts';
import { errorType, eventName, logBody, logSeverity } from '../../src/otlp/logs/record.ts';
import type { EventTask } from '../../src/otlp/logs/record.ts';
import { connectionIds, ownSpanId } from '../../src/otlp/traces/ids.ts';
import type { ConnectionSpan } from '../../src/otlp/traces/span.ts';

const NS_PER_SECOND = 1_000_000_000n;

/** Nanoseconds since the epoch as an exact HrTime `[seconds, nanoseconds]`. */
export function nsToHrTime(ns: bigint): HrTime {
  return [Number(ns / NS_PER_SECOND), Number(ns % NS_PER_SECOND)];
}

/**
 * The attributes of the record for `event` (the table in src/otlp/logs/record.ts),
 * naming `task` (default: the event's own; a span names the task that opened
 * its connection).
 *
 * Each shape is one object literal: V8 gives it all its properties at once,
 * in a fast (non-dictionary) layout that the SDK copies quickly. Adding them
 * one by one would turn a close record's 20 into a dictionary. container.id
 * and k8s.pod.uid are undefined for host processes: the SDK drops undefined
 * values silently, so one shape serves both (and the health attributes left
 * out when not measured).
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
      [ATTR_TCPTRACER_CONNECTION_ROLE]: 'client',
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
      [ATTR_TCPTRACER_CONNECTION_ROLE]: event.role,
      // measured on every connect the probe emits: 0 is none
      [ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS]: event.type === 'connect' && event.handshakeNs !== 0 ? event.handshakeNs : undefined,
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
    [ATTR_TCPTRACER_CONNECTION_ROLE]: event.role,
    [ATTR_TCPTRACER_CONNECTION_DURATION_NS]: event.durationNs,
    [ATTR_TCPTRACER_CONNECTION_BYTES_ACKED]: event.bytesAcked,
    [ATTR_TCPTRACER_CONNECTION_BYTES_RECEIVED]: event.bytesReceived,
    // no RTT sample: srtt is 0 until the first one
    [ATTR_TCPTRACER_CONNECTION_RTT_US]: event.rttUs !== 0 ? event.rttUs : undefined,
    [ATTR_TCPTRACER_CONNECTION_RETRANSMITS]: event.retransmits,
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

/**
 * The context a log record of `event` carries: its connection's trace id and
 * this side's span id. Undefined for a failed connect, or without ISNs.
 */
export function logContext(event: TcpEvent): Context | undefined {
  if (event.type === 'failed') return undefined;
  const ids = connectionIds(event);
  if (ids === undefined) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: ids.traceId, spanId: ownSpanId(ids, event.role), traceFlags: TraceFlags.SAMPLED });
}

/** A connection span's times and attributes as Tracer.startSpan takes them. */
export function spanOptions(span: ConnectionSpan): { startTime: HrTime; endTime: HrTime; attributes: Attributes } {
  return {
    startTime: nsToHrTime(span.startNs),
    endTime: nsToHrTime(span.endNs),
    attributes: { ...eventAttributes(span.event, span.task), ...span.spanAttributes },
  };
}
