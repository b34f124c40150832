/**
 * The metrics the tracer exports (issue 19): names, units, kinds, histogram
 * buckets, the attributes of a series, and the temporality each preference
 * gives each kind of instrument.
 *
 * | metric | instrument | unit | from |
 * | --- | --- | --- | --- |
 * | `tcptracer.connections` | Counter (asynchronous) | `{connection}` | connect, accept |
 * | `tcptracer.connections.open` | UpDownCounter (asynchronous) | `{connection}` | +1 connect/accept, -1 close |
 * | `tcptracer.connection.failures` | Counter (asynchronous), with `error.type` | `{connection}` | failed connect, close by reset |
 * | `tcptracer.connection.duration` | Histogram | `s` | close |
 * | `tcptracer.connection.handshake.duration` | Histogram | `s` | connect (client) |
 * | `tcptracer.connection.rtt` | Histogram | `s` | close, when the kernel had an RTT sample |
 * | `tcptracer.connection.retransmits` | Counter (asynchronous) | `{segment}` | close |
 * | `tcptracer.connection.io` | Counter (asynchronous), with `network.io.direction` | `By` | close (bytes acked / received) |
 *
 * Series attributes: `network.type` (`ipv4`/`ipv6`), `tcptracer.connection.role`
 * (`client`/`server`), `server.address` and `server.port` (the peer for a
 * client; this host's address and listening port for a server), and, when
 * the traced process runs in a container (src/identity/), `container.id` and
 * `k8s.pod.uid`: the per-process resources are keyed by executable name, so
 * two pods running the same program on a node share one; these attributes keep
 * their series apart, and a Collector moves them to the resource (groupbyattrs)
 * where k8s_attributes names the workload (otel-config/k8s/daemonset.yaml).
 * Never a client port: its cardinality is the number of connections.
 */
import type { Attributes } from '@opentelemetry/api';
import { AggregationTemporality, InstrumentType } from '@opentelemetry/sdk-metrics';
import type { AggregationTemporalitySelector } from '@opentelemetry/sdk-metrics';
import { ATTR_ERROR_TYPE, ATTR_NETWORK_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from '@opentelemetry/semantic-conventions';
import { ATTR_CONTAINER_ID, ATTR_K8S_POD_UID, ATTR_TCPTRACER_CONNECTION_ROLE } from '../../semconv.ts';
import type { TcpEvent } from '../../types.ts';
import type { MetricTemporality } from '../config.ts';
import { errorType } from '../logs/record.ts';

export const METRIC_CONNECTIONS = 'tcptracer.connections';
export const METRIC_CONNECTIONS_OPEN = 'tcptracer.connections.open';
export const METRIC_FAILURES = 'tcptracer.connection.failures';
export const METRIC_DURATION = 'tcptracer.connection.duration';
export const METRIC_HANDSHAKE = 'tcptracer.connection.handshake.duration';
export const METRIC_RTT = 'tcptracer.connection.rtt';
export const METRIC_RETRANSMITS = 'tcptracer.connection.retransmits';
export const METRIC_IO = 'tcptracer.connection.io';

/** `network.io.direction` (incubating, copied as src/semconv.ts does): `transmit` / `receive`. */
export const ATTR_NETWORK_IO_DIRECTION = 'network.io.direction';
/** The attribute of the overflow series, as the SDK specification defines it. */
export const ATTR_OTEL_METRIC_OVERFLOW = 'otel.metric.overflow';
export const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ [ATTR_OTEL_METRIC_OVERFLOW]: true });

/** Connection lifetimes, s: the HTTP semantic conventions' duration buckets, then minutes. */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300, 1800];
/** Handshakes and round trips, s: from 50 µs (loopback, a rack) to seconds (retransmitted SYNs). */
export const LATENCY_BUCKETS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The temporality of each instrument kind under a preference
 * (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the specification
 * defines it). The counters here are asynchronous (observed from the tracer's
 * own tallies): `delta` makes them delta, `lowmemory` keeps them cumulative
 * (only synchronous counters and histograms are delta there).
 */
export function temporalitySelector(preference: MetricTemporality): AggregationTemporalitySelector {
  const delta: ReadonlySet<InstrumentType> =
    preference === 'cumulative'
      ? new Set()
      : preference === 'delta'
        ? new Set([InstrumentType.COUNTER, InstrumentType.OBSERVABLE_COUNTER, InstrumentType.HISTOGRAM])
        : new Set([InstrumentType.COUNTER, InstrumentType.HISTOGRAM]);
  return (kind) => (delta.has(kind) ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE);
}

/** True when the event's series is the client's (a connect, a failed connect, or a close of either). */
function isClient(event: TcpEvent): boolean {
  return event.type === 'failed' || event.role === 'client';
}

/** A short string naming the event's series (role, IP version, server address and port, container). */
export function seriesKey(event: TcpEvent): string {
  const key = isClient(event) ? `c${event.ip} ${event.daddr} ${event.dport}` : `s${event.ip} ${event.saddr} ${event.sport}`;
  return event.containerId === undefined && event.podUid === undefined ? key : `${key} ${event.containerId ?? ''} ${event.podUid ?? ''}`;
}

/** The attributes of the event's series (see the module doc). */
export function seriesAttributes(event: TcpEvent): Attributes {
  const client = isClient(event);
  const attributes: Attributes = {
    [ATTR_NETWORK_TYPE]: event.ip === 6 ? 'ipv6' : 'ipv4',
    [ATTR_TCPTRACER_CONNECTION_ROLE]: client ? 'client' : 'server',
    [ATTR_SERVER_ADDRESS]: client ? event.daddr : event.saddr,
    [ATTR_SERVER_PORT]: client ? event.dport : event.sport,
  };
  if (event.containerId !== undefined) attributes[ATTR_CONTAINER_ID] = event.containerId;
  if (event.podUid !== undefined) attributes[ATTR_K8S_POD_UID] = event.podUid;
  return attributes;
}

/**
 * `error.type` of a failure, as the log records name it (src/otlp/logs/record.ts):
 * `connection_refused`, `timed_out`, `connection_reset`..., `aborted` for errno 0.
 */
export function failureType(event: TcpEvent): string {
  return errorType(event.errno);
}

/** The series attributes and `error.type`. */
export function failureAttributes(event: TcpEvent): Attributes {
  return { ...seriesAttributes(event), [ATTR_ERROR_TYPE]: failureType(event) };
}
