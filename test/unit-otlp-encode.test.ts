/**
 * The export requests src/otlp/wire/requests.ts writes are byte for byte the ones
 * the OpenTelemetry JS SDK writes for the same records and spans: the stock
 * path (mapping.ts's toLogRecord through LoggerProvider / Logger.emit, spans
 * through TracerProvider with the derived ids, then the SDK's
 * ProtobufLogsSerializer / ProtobufTraceSerializer) against the encoder fed
 * the same events. Metrics: the SDK's own collection (src/otlp/metrics/meters.ts)
 * written by its ProtobufMetricsSerializer, against the same collection split
 * into the data points the export path carries and put back together.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtobufLogsSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { ResourceMeters } from '../src/otlp/metrics/meters.ts';
import { encodeMetricPoints, pointsOf } from '../src/otlp/metrics/points.ts';
import { decodeMetricsRequest } from './fixtures/otlp-collector.ts';
import { LogsEncoder, SpansEncoder } from '../src/otlp/wire/requests.ts';
import { ProtoWriter, varintSize } from '../src/otlp/wire/protobuf.ts';
import { detectHost, tracerResource } from '../src/otlp/resources.ts';
import { toConnectionSpan } from '../src/otlp/traces/span.ts';
import type { ConnectionSpan } from '../src/otlp/traces/span.ts';
import type { TcpEvent } from '../src/types.ts';
import { logContext, nsToHrTime, toLogRecord } from './helpers/sdk-reference.ts';
import { BASE_TIME_NS, tcpEvent } from './fixtures/tcp-events.ts';
import { PresetIdGenerator, PresetTraceStateSampler, recordSpan } from './helpers/sdk-spans.ts';

const SCOPE = { name: 'tcptracer-otel', version: '0.1.0' };
const OBSERVED_NS = BASE_TIME_NS + 5_000_000n;
const CONTAINER = 'a'.repeat(64);
const POD = '0f0e0d0c-0b0a-0908-0706-050403020100';

/** Every shape of event: each type, both roles, IPv4 and IPv6, identity, big counters, failures, odd comms. */
function events(): TcpEvent[] {
  const out: TcpEvent[] = [
    tcpEvent(),
    tcpEvent({ type: 'accept', role: 'server', comm: 'postgres', saddr: '10.0.0.2', sport: 5432, daddr: '10.0.0.1', dport: 41234, localIsn: 0x2000_0002, peerIsn: 0x1000_0001 }),
    tcpEvent({ type: 'close', durationNs: 1_500_000, bytesAcked: 2 ** 40 + 3, bytesReceived: 2 ** 32, end: 'fin' }),
    tcpEvent({ type: 'close', role: 'server', end: 'reset', errno: 104, durationNs: 7, containerId: CONTAINER, podUid: POD }),
    tcpEvent({ type: 'close', end: 'destroyed', durationNs: 0 }),
    tcpEvent({ type: 'failed', errno: 111, localIsn: 0, peerIsn: 0 }),
    tcpEvent({ type: 'failed', errno: 0, localIsn: 0, peerIsn: 0, comm: 'curl' }),
    tcpEvent({ type: 'failed', errno: 1234, localIsn: 0, peerIsn: 0, containerId: CONTAINER }),
    tcpEvent({ ip: 6, saddr: '2001:db8::1', daddr: 'fe80::1:2:3:4', sport: 50000, dport: 443, comm: 'curl', containerId: CONTAINER, podUid: POD }),
    tcpEvent({ type: 'close', ip: 6, role: 'server', saddr: '::1', daddr: '::1', end: 'fin', durationNs: 2 ** 33 }),
    tcpEvent({ comm: 'café-Ω ☃', pid: 2 ** 31 - 1, uid: 0, euid: 4294967294 }),
    tcpEvent({ comm: '', netns: 0, cgroupId: 2 ** 50 }),
    tcpEvent({ type: 'close', end: 'fin', cgroupId: 2 ** 60 + 2 ** 20, bytesAcked: 2 ** 53 + 2, comm: 'x'.repeat(15), containerId: 'c'.repeat(200) }),
    tcpEvent({ comm: 'fifteen-chars-x', timeUnixNs: 1n }),
    // connection health: the handshake on connects, RTT and retransmits on closes, 0 and widest values
    tcpEvent({ handshakeNs: 40_123_456 }),
    tcpEvent({ ip: 6, saddr: '::1', daddr: '::1', handshakeNs: 2 ** 53 - 1 }),
    tcpEvent({ type: 'accept', role: 'server', handshakeNs: 99, rttUs: 99, retransmits: 99 }),
    tcpEvent({ type: 'close', end: 'fin', durationNs: 80_000_000, rttUs: 40_321, retransmits: 7 }),
    tcpEvent({ type: 'close', role: 'server', comm: 'postgres', end: 'reset', errno: 104, rttUs: 1, retransmits: 2 ** 32 - 1 }),
    tcpEvent({ type: 'close', ip: 6, comm: 'curl', end: 'destroyed', rttUs: 2 ** 32 - 1, retransmits: 1, handshakeNs: 5 }),
    tcpEvent({ type: 'close', comm: 'no-end', end: undefined, rttUs: 0, retransmits: 300 }),
    tcpEvent({ type: 'failed', errno: 110, localIsn: 0, peerIsn: 0, handshakeNs: 1, rttUs: 1, retransmits: 1 }),
  ];
  // a batch as big as an export: lengths of three bytes and more
  for (let i = 0; i < 600; i++) out.push(tcpEvent({ pid: 1000 + i, sport: 10000 + i, localIsn: 0x3000_0000 + i, timeUnixNs: BASE_TIME_NS + BigInt(i) }));
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at byte ${i} of ${a.length} / ${b.length}`;
  return `lengths ${a.length} / ${b.length}`;
}

function assertSameBytes(ours: Uint8Array, stock: Uint8Array | undefined): void {
  assert.ok(stock !== undefined && stock.length > 0);
  assert.ok(Buffer.from(ours).equals(Buffer.from(stock)), firstDifference(ours, stock));
}

async function settled(resource: Resource): Promise<Resource> {
  await resource.waitForAsyncAttributes?.();
  return resource;
}

describe('LogsEncoder', () => {
  it("writes the SDK's bytes for every record shape", async () => {
    const cfg = resolveOtlpConfig({}, { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=net' });
    const resource = await settled(tracerResource(cfg, SCOPE.version, detectHost()));
    const records: ReadableLogRecord[] = [];
    const capture: LogRecordProcessor = { onEmit: (r) => records.push(r), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
    const logger = new LoggerProvider({ resource, processors: [capture] }).getLogger(SCOPE.name, SCOPE.version);
    const all = events();
    for (const event of all) logger.emit(toLogRecord(event, nsToHrTime(OBSERVED_NS), logContext(event)));
    const ours = new LogsEncoder(SCOPE).encode(all.map((event) => ({ resource, event, observedNs: OBSERVED_NS })));
    assertSameBytes(ours, ProtobufLogsSerializer.serializeRequest(records));
  });

  it('writes the same bytes again once its first buffer grew (records larger than it reserved)', async () => {
    const resource = await settled(tracerResource(resolveOtlpConfig({}, {}), SCOPE.version, detectHost()));
    const records: ReadableLogRecord[] = [];
    const capture: LogRecordProcessor = { onEmit: (r) => records.push(r), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
    const logger = new LoggerProvider({ resource, processors: [capture] }).getLogger(SCOPE.name, SCOPE.version);
    const v6 = { ip: 6 as const, saddr: 'fd12:3456:789a:bcde:f012:3456:789a:bcde', daddr: 'fd98:7654:3210:fedc:ba98:7654:3210:fedc', containerId: CONTAINER, podUid: POD };
    const big = Array.from({ length: 512 }, (_, i) =>
      i % 2 === 0
        ? tcpEvent({ ...v6, sport: 40_000 + i, handshakeNs: 40_000_000 + i })
        : tcpEvent({ ...v6, type: 'close', sport: 40_000 + i, end: 'fin', durationNs: 2 ** 40, bytesAcked: 2 ** 40, bytesReceived: 2 ** 40, rttUs: 40_321, retransmits: i }),
    );
    for (const event of big) logger.emit(toLogRecord(event, nsToHrTime(OBSERVED_NS), logContext(event)));
    const encoder = new LogsEncoder(SCOPE);
    const items = big.map((event) => ({ resource, event, observedNs: OBSERVED_NS }));
    const first = Buffer.from(encoder.encode(items));
    assert.ok(first.length > items.length * 720 + 4096, `${first.length} bytes: more than the first buffer held`);
    assertSameBytes(first, ProtobufLogsSerializer.serializeRequest(records));
    assertSameBytes(encoder.encode(items), first);
  });

  it('groups records by resource in order of first appearance, with schema URLs', () => {
    const a = resourceFromAttributes({ 'service.name': 'a', n: 1, ok: true, ratio: 0.5, list: ['x', 'y'] }, { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' });
    const b = resourceFromAttributes({ 'service.name': 'b' });
    const records: ReadableLogRecord[] = [];
    const capture: LogRecordProcessor = { onEmit: (r) => records.push(r), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
    const loggers = new Map([a, b].map((r) => [r, new LoggerProvider({ resource: r, processors: [capture] }).getLogger(SCOPE.name, SCOPE.version)]));
    const items = events()
      .slice(0, 13)
      .map((event, i) => ({ resource: i % 3 === 0 ? b : a, event, observedNs: OBSERVED_NS }));
    for (const item of items) loggers.get(item.resource)?.emit(toLogRecord(item.event, nsToHrTime(OBSERVED_NS), logContext(item.event)));
    assertSameBytes(new LogsEncoder(SCOPE).encode(items), ProtobufLogsSerializer.serializeRequest(records));
  });
});

describe('SpansEncoder', () => {
  it("writes the SDK's bytes for client and server spans, errors, tracer_stopped, health, per-process resources, trace states", async () => {
    const host = await settled(detectHost());
    const psql = resourceFromAttributes({ 'service.name': 'psql', 'process.executable.name': 'psql' }).merge(host);
    const postgres = resourceFromAttributes({ 'service.name': 'postgres', 'process.executable.name': 'postgres' }).merge(host);
    const spans: ReadableSpan[] = [];
    const capture: SpanProcessor = {
      onStart: () => undefined,
      onEnd: (s) => spans.push(s),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    const ids = new PresetIdGenerator();
    const sampler = new PresetTraceStateSampler();
    const tracers = new Map(
      [psql, postgres].map((r) => [r, new TracerProvider({ resource: r, idGenerator: ids, sampler, spanProcessors: [capture] }).getTracer(SCOPE.name, SCOPE.version)]),
    );
    const made: { resource: Resource; span: ConnectionSpan }[] = [];
    // what src/otlp/sampling.ts writes (none, the always-kept th:0, ratios 0.5, 0.01, 1e-6), on client and server spans
    const traceStates = [undefined, 'ot=th:0', 'ot=th:8', 'ot=th:fd70a', 'ot=th:ffffef39'];
    const perRole = { client: 0, server: 0 };
    const accepts = traceStates.map((_, i) => tcpEvent({ type: 'accept', role: 'server', comm: 'postgres', localIsn: 0x4000_0000 + i, peerIsn: 0x5000_0000 + i }));
    for (const event of [...events(), ...accepts]) {
      if (event.type === 'failed') continue;
      const resource = event.role === 'client' ? psql : postgres;
      const ending =
        event.type === 'close'
          ? // the opener's handshake on the span: some with one, some without
            { event, opened: event.comm === 'psql' ? undefined : tcpEvent({ comm: 'opener', pid: 1, handshakeNs: event.retransmits === 0 ? 0 : 25_000_000 + event.retransmits }), end: event.end }
          : { event, opened: event, end: 'tracer_stopped' as const, stoppedAtNs: event.timeUnixNs + 1000n };
      const traceState = traceStates[perRole[event.role]++ % traceStates.length];
      made.push({ resource, span: toConnectionSpan(traceState === undefined ? ending : { ...ending, traceState }) });
    }
    for (const { resource, span } of made) {
      const tracer = tracers.get(resource);
      assert.ok(tracer);
      recordSpan(tracer, ids, span, sampler);
    }
    assert.equal(spans.length, made.length);
    for (const state of traceStates.slice(1)) assert.ok(spans.some((s) => s.spanContext().traceState?.serialize() === state && s.parentSpanContext !== undefined), `${state} on a server span`);
    for (const state of traceStates.slice(1)) assert.ok(spans.some((s) => s.spanContext().traceState?.serialize() === state && s.parentSpanContext === undefined), `${state} on a client span`);
    assertSameBytes(new SpansEncoder(SCOPE).encode(made), ProtobufTraceSerializer.serializeRequest(spans));
  });

  it('gives a span without ISNs random ids of the right sizes', () => {
    const close = tcpEvent({ type: 'close', end: 'fin', localIsn: 0, peerIsn: 0 });
    const resource = resourceFromAttributes({ 'service.name': 'x' });
    const one = (): Buffer => new SpansEncoder(SCOPE).encode([{ resource, span: toConnectionSpan({ event: close, opened: undefined, end: 'fin' }) }]);
    const [a, b] = [one(), one()];
    assert.equal(a.length, b.length);
    assert.ok(!a.equals(b), 'two random trace ids');
  });
});

describe('ProtoWriter', () => {
  it('writes varints of every size, and negative int64 as ten bytes', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [127, '7f'],
      [128, '8001'],
      [300, 'ac02'],
      [2 ** 32, '8080808010'],
      [2 ** 53 - 1, 'ffffffffffffff0f'],
    ];
    for (const [v, hex] of cases) {
      const w = new ProtoWriter(1);
      w.varint(v);
      assert.equal(w.finish().toString('hex'), hex, `varint ${v}`);
      assert.equal(varintSize(v), hex.length / 2, `varintSize ${v}`);
    }
    const w = new ProtoWriter(1);
    w.int64(-1);
    assert.equal(w.finish().toString('hex'), 'ffffffffffffffffff01');
  });

  it('fixes a length-delimited field up when its length needs fewer or more bytes than reserved, growing the buffer', () => {
    const w = new ProtoWriter(4);
    const small = w.begin(3);
    w.raw(Buffer.from('abc'));
    w.end(small);
    const big = w.begin(1);
    w.raw(Buffer.alloc(300, 7));
    w.end(big);
    const out = w.finish();
    assert.equal(out.subarray(0, 4).toString('hex'), '03616263');
    assert.equal(out.subarray(4, 6).toString('hex'), 'ac02');
    assert.equal(out.length, 4 + 2 + 300);
    assert.ok(out.subarray(6).every((b) => b === 7));
  });

  it('writes non-ASCII strings as UTF-8 with their byte length', () => {
    const w = new ProtoWriter(2);
    w.string('é☃');
    assert.equal(w.finish().toString('hex'), '05c3a9e29883');
  });
});

describe('metrics requests (src/otlp/metrics/points.ts)', () => {
  /** The SDK's own collection of one process's meters, fed every shape of event. */
  async function collection(comm: string): Promise<ResourceMetrics> {
    const cfg = resolveOtlpConfig({ signals: 'metrics' }, {});
    const meters = new ResourceMeters(resourceFromAttributes({ 'service.name': comm }), cfg.metricExport, SCOPE);
    for (const e of events()) meters.record({ ...e, handshakeNs: 1234, rttUs: 56, retransmits: 1 });
    meters.record(tcpEvent({ type: 'failed', errno: 111 }));
    const rm = await meters.collect();
    assert.ok(rm);
    return rm;
  }

  it('are the SDK serializer\'s bytes for its collection, once split into data points and put back together', async () => {
    const rm = await collection('psql');
    const points = pointsOf(rm);
    assert.equal(points.length, rm.scopeMetrics.flatMap((s) => s.metrics).reduce((n, m) => n + m.dataPoints.length, 0));
    assert.deepEqual(Buffer.from(encodeMetricPoints(points)), Buffer.from(ProtobufMetricsSerializer.serializeRequest(rm) ?? new Uint8Array()));
  });

  it('write a batch of several resources as one request: the concatenation of theirs, every point decoded', async () => {
    const a = await collection('psql');
    const b = await collection('postgres');
    const points = [...pointsOf(a), ...pointsOf(b)];
    const bytes = encodeMetricPoints(points);
    const expected = Buffer.concat([ProtobufMetricsSerializer.serializeRequest(a) ?? new Uint8Array(), ProtobufMetricsSerializer.serializeRequest(b) ?? new Uint8Array()]);
    assert.deepEqual(Buffer.from(bytes), expected);
    const decoded = decodeMetricsRequest(bytes);
    assert.equal(decoded.length, points.length);
    assert.deepEqual([...new Set(decoded.map((p) => p.resource['service.name']))], ['psql', 'postgres']);
    // a batch that splits a metric: both halves decode to their own points
    const half = Math.floor(points.length / 2) + 1;
    assert.equal(decodeMetricsRequest(encodeMetricPoints(points.slice(0, half))).length + decodeMetricsRequest(encodeMetricPoints(points.slice(half))).length, points.length);
  });
});
