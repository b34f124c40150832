/**
 * Export requests, encoded straight from the tracer's events: an
 * ExportLogsServiceRequest from {@link LogItem}s (one log record per event)
 * and an ExportTraceServiceRequest from {@link SpanItem}s (one span per
 * connection), without the SDK's LogRecordImpl / Span objects in between.
 *
 * What is encoded is what src/otlp/logs/mapping.ts and src/otlp/traces/span.ts define,
 * field for field as the OpenTelemetry JS SDK would emit and serialize it
 * (LoggerProvider -> ProtobufLogsSerializer, TracerProvider ->
 * ProtobufTraceSerializer): test/unit-otlp-encode.test.ts checks that the bytes
 * are the same. Items are grouped by resource, in the order their resource
 * first appears, under one instrumentation scope (the tracer); a resource's
 * bytes are encoded once, the first time it is exported (after its async
 * attributes, such as host.id, settled: the processor waits for them).
 */
import { randomFillSync } from 'node:crypto';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { TcpEvent } from '../../types.ts';
import { CLIENT_SPAN_ID, connectionIds, SERVER_SPAN_ID, TRACE_ID } from '../traces/ids.ts';
import { eventName, logSeverity, writeEventAttributes, writeEventBody } from '../logs/record.ts';
import { I32, I64, LEN, ProtoWriter, VARINT, writeAttributes } from './protobuf.ts';
import type { ConnectionSpan } from '../traces/span.ts';

/** One log record to export: the event it is made of, and when user space read it. */
export interface LogItem {
  readonly resource: Resource;
  readonly event: TcpEvent;
  /** ObservedTimestamp, ns since the epoch. */
  readonly observedNs: bigint;
}

/** One span to export. */
export interface SpanItem {
  readonly resource: Resource;
  readonly span: ConnectionSpan;
}

/** The instrumentation scope every record and span is exported under. */
export interface Scope {
  readonly name: string;
  readonly version: string;
}

/** Bytes of a Resource message (its content), by resource, once its attributes settled. */
const resourceBytes = new WeakMap<Resource, Buffer>();

function encodedResource(resource: Resource): Buffer {
  let bytes = resourceBytes.get(resource);
  if (bytes === undefined) {
    const w = new ProtoWriter(1024);
    writeAttributes(w, resource.attributes, 1, false);
    w.tag(2, VARINT);
    w.varint(0);
    bytes = Buffer.from(w.finish());
    if (!resource.asyncAttributesPending) resourceBytes.set(resource, bytes);
  }
  return bytes;
}

function encodedScope(scope: Scope): Buffer {
  const w = new ProtoWriter(256);
  w.tag(1, LEN);
  w.string(scope.name);
  if (scope.version !== '') {
    w.tag(2, LEN);
    w.string(scope.version);
  }
  return Buffer.from(w.finish());
}

/** Bytes reserved for a request's resources, scope and framing, beside its items. */
const REQUEST_BYTES = 4096;

/** The buffer a request of `count` items starts with. */
function reserved(count: number, bytesPerItem: number): number {
  return count * bytesPerItem + REQUEST_BYTES;
}

/** Items by resource, in first-appearance order. */
function byResource<T extends { readonly resource: Resource }>(items: readonly T[]): Map<Resource, T[]> {
  const groups = new Map<Resource, T[]>();
  for (const item of items) {
    let group = groups.get(item.resource);
    if (group === undefined) {
      group = [];
      groups.set(item.resource, group);
    }
    group.push(item);
  }
  return groups;
}

/**
 * One Export*ServiceRequest: for each resource a Resource{Logs,Spans} (field
 * 1) holding the resource, one Scope{Logs,Spans} (the scope, then each item
 * in field 2 as `writeItem` writes it) and the resource's schema URL.
 */
function encodeRequest<T extends { readonly resource: Resource }>(
  items: readonly T[],
  scope: Buffer,
  bytesPerItem: number,
  writeItem: (w: ProtoWriter, item: T) => void,
): Buffer {
  const w = new ProtoWriter(reserved(items.length, bytesPerItem));
  for (const [resource, group] of byResource(items)) {
    w.tag(1, LEN);
    const resourceGroup = w.begin(3);
    w.tag(1, LEN);
    w.bytes(encodedResource(resource));
    w.tag(2, LEN);
    const scoped = w.begin(3);
    w.tag(1, LEN);
    w.bytes(scope);
    for (const item of group) {
      w.tag(2, LEN);
      const one = w.begin(2);
      writeItem(w, item);
      w.end(one);
    }
    w.end(scoped);
    const schemaUrl = resource.schemaUrl;
    if (schemaUrl !== undefined && schemaUrl !== '') {
      w.tag(3, LEN);
      w.string(schemaUrl);
    }
    w.end(resourceGroup);
  }
  return w.finish();
}

/** Encodes one kind of Export*ServiceRequest for one scope. */
class RequestEncoder<T extends { readonly resource: Resource }> {
  private readonly scope: Buffer;
  private bytesPerItem: number;
  private readonly writeItem: (w: ProtoWriter, item: T) => void;

  /**
   * @param bytesPerItem what to reserve per item at first (an estimate: the buffer grows if
   *   needed); raised to what the requests took, so that a buffer grows at most once
   */
  constructor(scope: Scope, bytesPerItem: number, writeItem: (w: ProtoWriter, item: T) => void) {
    this.scope = encodedScope(scope);
    this.bytesPerItem = bytesPerItem;
    this.writeItem = writeItem;
  }

  encode(items: readonly T[]): Buffer {
    const out = encodeRequest(items, this.scope, this.bytesPerItem, this.writeItem);
    // A request that outgrew its buffer cost more than its records (measured: 1.8 -> 3.0 µs a
    // log record once records with container ids passed 720 bytes): the next one fits at once.
    // At most the widest item with a resource of its own (spans: one per process), about 2.4 kB.
    if (out.length > reserved(items.length, this.bytesPerItem)) this.bytesPerItem = Math.ceil((out.length - REQUEST_BYTES) / items.length);
    return out;
  }
}

/** Encodes ExportLogsServiceRequests for one scope. */
export class LogsEncoder extends RequestEncoder<LogItem> {
  constructor(scope: Scope) {
    super(scope, 720, writeLogRecord);
  }
}

/** Encodes ExportTraceServiceRequests for one scope. */
export class SpansEncoder extends RequestEncoder<SpanItem> {
  constructor(scope: Scope) {
    super(scope, 800, writeSpan);
  }
}

/** TraceFlags.SAMPLED: every record and span of ours is sampled. */
const SAMPLED = 1;

/**
 * A LogRecord (logs.proto): time_unix_nano 1, severity_number 2,
 * severity_text 3, body 5, attributes 6, dropped_attributes_count 7, flags 8,
 * trace_id 9, span_id 10, observed_time_unix_nano 11, event_name 12.
 */
function writeLogRecord(w: ProtoWriter, item: LogItem): void {
  const event = item.event;
  const severity = logSeverity(event);
  w.tag(1, I64);
  w.fixed64(event.timeUnixNs);
  w.tag(2, VARINT);
  w.varint(severity.number);
  w.tag(3, LEN);
  w.string(severity.text);
  w.tag(5, LEN);
  const body = w.begin();
  w.tag(1, LEN);
  writeEventBody(w, event);
  w.end(body);
  writeEventAttributes(w, 6, event);
  w.tag(7, VARINT);
  w.varint(0);
  const ids = event.type === 'failed' ? undefined : connectionIds(event);
  if (ids !== undefined) {
    w.tag(8, I32);
    w.fixed32(SAMPLED);
    w.tag(9, LEN);
    w.bytesRange(ids.bytes, TRACE_ID, TRACE_ID + 16);
    w.tag(10, LEN);
    const own = event.role === 'client' ? CLIENT_SPAN_ID : SERVER_SPAN_ID;
    w.bytesRange(ids.bytes, own, own + 8);
  }
  w.tag(11, I64);
  w.fixed64(item.observedNs);
  w.tag(12, LEN);
  w.string(eventName(event));
}

/** Span flags: the trace flags, and whether the parent is remote (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE / _IS_REMOTE). */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

const randomIds = Buffer.alloc(24);

/**
 * A Span (trace.proto): trace_id 1, span_id 2, parent_span_id 4, name 5,
 * kind 6, start 7, end 8, attributes 9, dropped_attributes_count 10,
 * dropped_events_count 12, dropped_links_count 14, status 15, flags 16; and
 * trace_state 3 when the sampler gave one. No events or links. The SERVER span's parent is the CLIENT span,
 * on the other host: a remote parent. A span without derived ids (no ISNs)
 * gets random ones, as the SDK's RandomIdGenerator would give it.
 */
function writeSpan(w: ProtoWriter, item: SpanItem): void {
  const span = item.span;
  const server = span.kind === SpanKind.SERVER;
  const ids = span.ids;
  const remoteParent = ids !== undefined && server;
  w.tag(1, LEN);
  if (ids === undefined) {
    randomFillSync(randomIds);
    w.bytesRange(randomIds, 0, 16);
    w.tag(2, LEN);
    w.bytesRange(randomIds, 16, 24);
  } else {
    w.bytesRange(ids.bytes, TRACE_ID, TRACE_ID + 16);
    w.tag(2, LEN);
    const own = server ? SERVER_SPAN_ID : CLIENT_SPAN_ID;
    w.bytesRange(ids.bytes, own, own + 8);
  }
  if (span.traceState !== undefined && span.traceState !== '') {
    w.tag(3, LEN);
    w.string(span.traceState);
  }
  if (remoteParent) {
    w.tag(4, LEN);
    w.bytesRange(ids.bytes, CLIENT_SPAN_ID, CLIENT_SPAN_ID + 8);
  }
  w.tag(5, LEN);
  w.string(span.name);
  w.tag(6, VARINT);
  w.varint(span.kind + 1);
  w.tag(7, I64);
  w.fixed64(span.startNs);
  w.tag(8, I64);
  w.fixed64(span.endNs);
  writeEventAttributes(w, 9, span.event, span.task);
  writeAttributes(w, span.spanAttributes, 9, true);
  w.tag(10, VARINT);
  w.varint(0);
  w.tag(12, VARINT);
  w.varint(0);
  w.tag(14, VARINT);
  w.varint(0);
  w.tag(15, LEN);
  const status = w.begin();
  if (span.status.code === SpanStatusCode.ERROR && span.status.message !== undefined && span.status.message !== '') {
    w.tag(2, LEN);
    w.string(span.status.message);
  }
  w.tag(3, VARINT);
  w.varint(span.status.code);
  w.end(status);
  w.tag(16, I32);
  w.fixed32(SAMPLED | HAS_IS_REMOTE | (remoteParent ? IS_REMOTE : 0));
}
