/**
 * How many bytes tcptracer's telemetry takes in an OTLP export request, as the
 * SDK's protobuf serializer (the one the gRPC exporters use) writes it: log
 * records made by src/otlp/logs/mapping.ts from the largest events the probe can
 * report, and connection spans with the same attributes. The Collector's
 * receivers limit the decoded request (gRPC: 4 MiB by default) and its `bytes`
 * sizer measures this same protobuf size, so these numbers are what a batch
 * budget is checked against.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { formatEndpoint } from '../../src/otlp/logs/record.ts';
import { eventAttributes, toLogRecord } from './sdk-reference.ts';
import type { TcpEvent } from '../../src/types.ts';
import { tcpEvent } from '../fixtures/tcp-events.ts';

/**
 * Every field at its widest: full IPv6 addresses, a 15-byte comm, 5-digit ports, large counters,
 * and a container process's identity (container.id: 64 hex digits, k8s.pod.uid: a 36-character uuid).
 */
export function widestEvents(): TcpEvent[] {
  const base = {
    ip: 6 as const,
    saddr: 'fd12:3456:789a:bcde:f012:3456:789a:bcde',
    daddr: 'fd98:7654:3210:fedc:ba98:7654:3210:fedc',
    sport: 65535,
    dport: 65534,
    pid: 4_194_304,
    tid: 4_194_303,
    uid: 4_294_967_294,
    euid: 4_294_967_294,
    comm: 'abcdefghijklmno',
    netns: 4_294_967_295,
    cgroupId: 2 ** 53 - 1,
    containerId: 'c'.repeat(64),
    podUid: '01234567-89ab-cdef-0123-456789abcdef',
  };
  return [
    tcpEvent({ ...base, type: 'connect', role: 'client', handshakeNs: 2 ** 53 - 1 }),
    tcpEvent({ ...base, type: 'accept', role: 'server' }),
    tcpEvent({
      ...base,
      type: 'close',
      role: 'server',
      durationNs: 2 ** 53 - 1,
      bytesAcked: 2 ** 53 - 1,
      bytesReceived: 2 ** 53 - 1,
      rttUs: 2 ** 32 - 1,
      retransmits: 2 ** 32 - 1,
      errno: 104,
      end: 'reset',
    }),
  ];
}

/**
 * A resource as large as the tracer's own (service.*, host.*, os.*,
 * telemetry.sdk.*) plus what the DaemonSet adds (OTEL_RESOURCE_ATTRIBUTES),
 * what the agent Collector's groupbyattrs moves there (container.id,
 * k8s.pod.uid) and what its k8s_attributes extracts. The items measured keep
 * container.id and k8s.pod.uid as attributes too (as the tracer sends them):
 * an upper bound for both sides of the agent.
 */
export function largeResource(extra: Attributes = {}): Resource {
  return resourceFromAttributes({
    'service.name': 'tcptracer',
    'service.version': '0.1.0',
    'host.name': 'ip-10-123-234-123.eu-central-1.compute.internal',
    'host.id': 'a'.repeat(32),
    'host.arch': 'amd64',
    'os.type': 'linux',
    'os.version': '6.12.48+deb13-cloud-amd64',
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.language': 'nodejs',
    'telemetry.sdk.version': '3.1.0',
    'k8s.node.name': 'ip-10-123-234-123.eu-central-1.compute.internal',
    'tcptracer.k8s.pod.name': 'tcptracer-abcde',
    'tcptracer.k8s.pod.uid': '01234567-89ab-cdef-0123-456789abcdef',
    'tcptracer.k8s.namespace.name': 'tcptracer',
    'container.id': 'c'.repeat(64),
    'k8s.pod.name': 'payments-api-7d9f8b6c5d-x2x9z',
    'k8s.pod.uid': '01234567-89ab-cdef-0123-456789abcdef',
    'k8s.namespace.name': 'payments-production',
    'k8s.deployment.name': 'payments-api',
    'k8s.container.name': 'payments-api-server',
    ...extra,
  });
}

export interface Size {
  /** Bytes each further item adds to a request (the largest of the event kinds). */
  readonly perItem: number;
  /** Bytes of a request holding one item, beyond that item: resource, scope, framing. */
  readonly perRequest: number;
}

/** Protobuf bytes of one ExportLogsServiceRequest holding `records` (one resource, one scope). */
function logsRequestBytes(events: TcpEvent[], resource: Resource): number {
  const batch: ReadableLogRecord[] = [];
  const processor: LogRecordProcessor = {
    onEmit: (record) => {
      batch.push(record);
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const logger = new LoggerProvider({ resource, processors: [processor] }).getLogger('tcptracer-otel', '0.1.0');
  const observed: [number, number] = [1_735_689_600, 999_999_999];
  for (const event of events) {
    // Every record carries its connection's trace and span id (issue 12).
    const context = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'f'.repeat(32), spanId: 'e'.repeat(16), traceFlags: TraceFlags.SAMPLED });
    logger.emit({ ...toLogRecord(event, observed, context), attributes: { ...eventAttributes(event), 'event.name': 'tcp.accept' } });
  }
  return ProtobufLogsSerializer.serializeRequest(batch)?.length ?? 0;
}

/**
 * The widest log record, with trace context and the `event.name` attribute the
 * Loki pipeline adds, under {@link largeResource}.
 */
export function logRecordSize(): Size {
  const resource = largeResource();
  let perItem = 0;
  let perRequest = 0;
  for (const event of widestEvents()) {
    const one = logsRequestBytes([event], resource);
    const hundred = logsRequestBytes(Array.from({ length: 100 }, () => event), resource);
    const item = Math.ceil((hundred - one) / 99);
    perItem = Math.max(perItem, item);
    perRequest = Math.max(perRequest, one - item);
  }
  return { perItem, perRequest };
}

/** Protobuf bytes of one ExportTraceServiceRequest holding `count` connection spans of `event`. */
function traceRequestBytes(event: TcpEvent, count: number, resource: Resource): number {
  const spans: ReadableSpan[] = [];
  const processor: SpanProcessor = {
    onStart: () => undefined,
    onEnd: (span) => {
      spans.push(span);
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const tracer = new TracerProvider({ resource, spanProcessors: [processor] }).getTracer('tcptracer-otel', '0.1.0');
  // A SERVER span: a child of the remote CLIENT span, with an ERROR status (reset), and the
  // handshake a CLIENT span has (no span has both: an upper bound of either).
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'f'.repeat(32), spanId: 'e'.repeat(16), traceFlags: TraceFlags.SAMPLED, isRemote: true });
  const server = formatEndpoint(event.ip, event.saddr, event.sport);
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan(
      `accept ${server}`,
      {
        kind: SpanKind.SERVER,
        startTime: [1_735_689_600, 0],
        attributes: { ...eventAttributes(event), 'tcptracer.connection.handshake_ns': 2 ** 53 - 1, 'tcptracer.connection.end': 'reset' },
      },
      parent,
    );
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'connection reset (ECONNRESET)' });
    span.end([1_735_689_601, 999_999_999]);
  }
  return ProtobufTraceSerializer.serializeRequest(spans)?.length ?? 0;
}

/**
 * The widest connection span (the close event's attributes, a SERVER span with
 * a parent and an ERROR status). Spans go under one resource per traced
 * process: perRequest is the cost of one such resource, paid once per process
 * present in a request.
 */
export function connectionSpanSize(): Size {
  const close = widestEvents().find((e) => e.type === 'close')!;
  const resource = largeResource({
    'service.name': close.comm,
    'process.executable.name': close.comm,
    'telemetry.distro.name': 'tcptracer-otel',
    'telemetry.distro.version': '0.1.0',
    'tcptracer.observer.service.name': 'tcptracer',
  });
  const one = traceRequestBytes(close, 1, resource);
  const hundred = traceRequestBytes(close, 100, resource);
  const perItem = Math.ceil((hundred - one) / 99);
  return { perItem, perRequest: one - perItem };
}
