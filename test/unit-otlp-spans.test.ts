import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { OpenConnections } from '../src/otlp/traces/connections.ts';
import { connectionIds } from '../src/otlp/traces/ids.ts';
import { FALLBACK_SERVICE_NAME, MAX_SPAN_RESOURCES, SpanResources } from '../src/otlp/resources.ts';
import { connectionStatus, toConnectionSpan } from '../src/otlp/traces/span.ts';
import type { TcpEvent } from '../src/types.ts';
import { BASE_TIME_NS, tcpEvent } from './fixtures/tcp-events.ts';
import { logContext, spanOptions } from './helpers/sdk-reference.ts';
import { PresetIdGenerator, recordSpan } from './helpers/sdk-spans.ts';

const connect = tcpEvent();
const close = tcpEvent({ type: 'close', pid: 99, tid: 100, comm: 'psql-exit', timeUnixNs: BASE_TIME_NS + 2_000_000n, durationNs: 1_500_000, bytesAcked: 10, bytesReceived: 20, end: 'fin' });
const accept = tcpEvent({ type: 'accept', role: 'server', comm: 'postgres', pid: 77, tid: 77, saddr: '10.0.0.2', sport: 5432, daddr: '10.0.0.1', dport: 41234, localIsn: 0x2000_0002, peerIsn: 0x1000_0001 });
const serverClose: TcpEvent = { ...accept, type: 'close', timeUnixNs: BASE_TIME_NS + 3_000_000n, durationNs: 2_000_000, end: 'reset', errno: 104 };

/** A span processor that keeps every ended span. */
function capture(): SpanProcessor & { spans: ReadableSpan[] } {
  const spans: ReadableSpan[] = [];
  return {
    spans,
    onStart: () => undefined,
    onEnd: (span) => spans.push(span),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

describe('toConnectionSpan', () => {
  it('maps a client connection: name, kind, establishment to close, attributes of the opener, end', () => {
    const span = toConnectionSpan({ event: close, opened: connect, end: close.end });
    assert.equal(span.name, 'connect 10.0.0.2:5432');
    assert.equal(span.kind, SpanKind.CLIENT);
    // closed 2 ms after BASE_TIME_NS, 1.5 ms after it was established
    assert.deepEqual(spanOptions(span).startTime, [1_735_689_600, 123_956_789]);
    assert.deepEqual(spanOptions(span).endTime, [1_735_689_600, 125_456_789]);
    assert.deepEqual(span.status, { code: SpanStatusCode.UNSET });
    assert.equal(span.task.comm, 'psql');
    const a = spanOptions(span).attributes;
    assert.deepEqual([a['process.pid'], a['thread.id'], a['process.executable.name']], [4242, 4243, 'psql']);
    assert.deepEqual([a['server.address'], a['server.port'], a['client.address'], a['client.port']], ['10.0.0.2', 5432, '10.0.0.1', 41234]);
    assert.equal(a['network.transport'], 'tcp');
    assert.equal(a['tcptracer.connection.duration_ns'], 1_500_000);
    assert.equal(a['tcptracer.connection.bytes_acked'], 10);
    assert.equal(a['tcptracer.connection.bytes_received'], 20);
    assert.equal(a['tcptracer.connection.end'], 'fin');
    assert.deepEqual(span.ids, connectionIds(connect));
  });

  it('names the closing task when the tracer did not see the open', () => {
    const span = toConnectionSpan({ event: close, opened: undefined, end: 'fin' });
    assert.equal(spanOptions(span).attributes['process.pid'], 99);
    assert.equal(span.task.comm, 'psql-exit');
  });

  it('maps a server connection reset: SERVER, accept <local>, ERROR with the errno', () => {
    const span = toConnectionSpan({ event: serverClose, opened: accept, end: 'reset' });
    assert.equal(span.name, 'accept 10.0.0.2:5432');
    assert.equal(span.kind, SpanKind.SERVER);
    assert.deepEqual(span.status, { code: SpanStatusCode.ERROR, message: 'connection reset (ECONNRESET)' });
    assert.equal(span.spanAttributes['tcptracer.connection.end'], 'reset');
    assert.equal(spanOptions(span).attributes['server.address'], '10.0.0.2');
  });

  it('brackets IPv6 in the name', () => {
    const v6 = tcpEvent({ type: 'close', ip: 6, saddr: '2001:db8::1', daddr: '2001:db8::2', end: 'destroyed' });
    assert.equal(toConnectionSpan({ event: v6, opened: undefined, end: 'destroyed' }).name, 'connect [2001:db8::2]:5432');
  });

  it('ends a connection still open at shutdown, marked tracer_stopped', () => {
    const stoppedAtNs = BASE_TIME_NS + 9_000_000n;
    const span = toConnectionSpan({ event: connect, opened: connect, end: 'tracer_stopped', stoppedAtNs });
    assert.deepEqual(spanOptions(span).startTime, [1_735_689_600, 123_456_789]);
    assert.deepEqual(spanOptions(span).endTime, [1_735_689_600, 132_456_789]);
    assert.equal(span.spanAttributes['tcptracer.connection.end'], 'tracer_stopped');
    assert.equal(span.spanAttributes['tcptracer.connection.duration_ns'], 9_000_000);
    assert.deepEqual(span.status, { code: SpanStatusCode.UNSET });
  });
});

describe('toConnectionSpan: connection health', () => {
  const measured = { ...connect, handshakeNs: 41_000_000 };
  const health = { ...close, rttUs: 40_321, retransmits: 3 };

  it("puts the role, the close's RTT and retransmits and the connect's handshake on a client span", () => {
    const span = toConnectionSpan({ event: health, opened: measured, end: 'fin' });
    const a = spanOptions(span).attributes;
    assert.deepEqual(
      [a['tcptracer.connection.role'], a['tcptracer.connection.handshake_ns'], a['tcptracer.connection.rtt_us'], a['tcptracer.connection.retransmits']],
      ['client', 41_000_000, 40_321, 3],
    );
    assert.deepEqual(span.spanAttributes, { 'tcptracer.connection.handshake_ns': 41_000_000, 'tcptracer.connection.end': 'fin' });
    // without an ending the probe named, the handshake alone
    assert.deepEqual(toConnectionSpan({ event: health, opened: measured, end: undefined }).spanAttributes, { 'tcptracer.connection.handshake_ns': 41_000_000 });
  });

  it('has no handshake where the connect was not seen, nor on a server span; no RTT without a sample', () => {
    const unseen = spanOptions(toConnectionSpan({ event: { ...health, rttUs: 0 }, opened: undefined, end: 'fin' })).attributes;
    assert.deepEqual([unseen['tcptracer.connection.handshake_ns'], unseen['tcptracer.connection.rtt_us'], unseen['tcptracer.connection.retransmits']], [undefined, undefined, 3]);
    const server = spanOptions(toConnectionSpan({ event: { ...serverClose, rttUs: 7, retransmits: 0 }, opened: { ...accept, handshakeNs: 5 }, end: 'reset' })).attributes;
    assert.deepEqual(
      [server['tcptracer.connection.role'], server['tcptracer.connection.handshake_ns'], server['tcptracer.connection.rtt_us'], server['tcptracer.connection.retransmits']],
      ['server', undefined, 7, 0],
    );
  });

  it('keeps the handshake of a connection still open at shutdown; it has no RTT or retransmits (no close)', () => {
    const span = toConnectionSpan({ event: measured, opened: measured, end: 'tracer_stopped', stoppedAtNs: BASE_TIME_NS + 1n });
    const a = spanOptions(span).attributes;
    assert.deepEqual(
      [a['tcptracer.connection.role'], a['tcptracer.connection.handshake_ns'], a['tcptracer.connection.rtt_us'], a['tcptracer.connection.retransmits']],
      ['client', 41_000_000, undefined, undefined],
    );
  });
});

describe('connectionStatus', () => {
  it('is ERROR only for a reset, with a description', () => {
    assert.deepEqual(connectionStatus('fin', 0), { code: SpanStatusCode.UNSET });
    assert.deepEqual(connectionStatus('destroyed', 0), { code: SpanStatusCode.UNSET });
    assert.deepEqual(connectionStatus('tracer_stopped', 0), { code: SpanStatusCode.UNSET });
    assert.deepEqual(connectionStatus('reset', 104), { code: SpanStatusCode.ERROR, message: 'connection reset (ECONNRESET)' });
    assert.deepEqual(connectionStatus('reset', 110), { code: SpanStatusCode.ERROR, message: 'connection aborted (ETIMEDOUT)' });
    assert.deepEqual(connectionStatus('reset', 0), { code: SpanStatusCode.ERROR, message: 'connection reset/aborted' });
  });
});

describe('recordSpan', () => {
  it('makes one trace of both ends: a CLIENT root and a SERVER child with the derived ids', () => {
    const processor = capture();
    const ids = new PresetIdGenerator();
    const tracer = new TracerProvider({ idGenerator: ids, spanProcessors: [processor] }).getTracer('t');
    recordSpan(tracer, ids, toConnectionSpan({ event: close, opened: connect, end: 'fin' }));
    recordSpan(tracer, ids, toConnectionSpan({ event: serverClose, opened: accept, end: 'reset' }));
    const [client, server] = processor.spans;
    assert.ok(client && server);
    const want = connectionIds(connect);
    assert.ok(want);
    assert.deepEqual([client.spanContext().traceId, client.spanContext().spanId, client.parentSpanContext], [want.traceId, want.clientSpanId, undefined]);
    assert.deepEqual([server.spanContext().traceId, server.spanContext().spanId], [want.traceId, want.serverSpanId]);
    const parent = server.parentSpanContext;
    assert.ok(parent);
    assert.deepEqual([parent.traceId, parent.spanId, parent.isRemote], [want.traceId, want.clientSpanId, true]);
    assert.equal(client.kind, SpanKind.CLIENT);
    assert.equal(server.status.code, SpanStatusCode.ERROR);
    assert.deepEqual([client.startTime, client.endTime], [[1_735_689_600, 123_956_789], [1_735_689_600, 125_456_789]]);
    // a span without ISNs gets random ids, and the preset ones are not reused
    recordSpan(tracer, ids, toConnectionSpan({ event: { ...close, localIsn: 0, peerIsn: 0 }, opened: undefined, end: 'fin' }));
    const random = processor.spans[2];
    assert.ok(random);
    assert.notEqual(random.spanContext().traceId, want.traceId);
    assert.match(random.spanContext().spanId, /^[0-9a-f]{16}$/);
  });
});

describe('logContext', () => {
  it("points a record at its side's span, and a failed connect nowhere", () => {
    const want = connectionIds(connect);
    assert.ok(want);
    const own = (event: TcpEvent): unknown => {
      const ctx = logContext(event);
      assert.ok(ctx);
      const spanContext = (ctx.getValue(Symbol.for('OpenTelemetry Context Key SPAN')) as { spanContext(): { traceId: string; spanId: string } }).spanContext();
      return [spanContext.traceId, spanContext.spanId];
    };
    assert.deepEqual(own(connect), [want.traceId, want.clientSpanId]);
    assert.deepEqual(own(close), [want.traceId, want.clientSpanId]);
    assert.deepEqual(own(accept), [want.traceId, want.serverSpanId]);
    assert.equal(logContext(tcpEvent({ type: 'failed', errno: 111 })), undefined);
  });
});

describe('OpenConnections', () => {
  it('pairs each close with its open, bounded, and ends the rest at shutdown', () => {
    const open = new OpenConnections(2);
    assert.equal(open.observe(connect), undefined);
    assert.equal(open.observe(accept), undefined);
    assert.equal(open.observe(tcpEvent({ sport: 1 })), undefined);
    assert.deepEqual([open.size, open.overflow], [2, 1]);
    assert.deepEqual(open.observe(close), { event: close, opened: connect, end: 'fin' });
    assert.equal(open.observe(tcpEvent({ type: 'failed' })), undefined);
    assert.deepEqual(open.observe(tcpEvent({ type: 'close', sport: 1 })), { event: tcpEvent({ type: 'close', sport: 1 }), opened: undefined, end: undefined });
    assert.deepEqual(open.stopAll(5n), [{ event: accept, opened: accept, end: 'tracer_stopped', stoppedAtNs: 5n }]);
    assert.equal(open.size, 0);
  });

  it('after stopAll: the close of a connection it ended is no second span; anything else is due at once, unmade', () => {
    const open = new OpenConnections();
    const other = (e: TcpEvent): TcpEvent => ({ ...e, sport: 2, localIsn: 9, peerIsn: 10 });
    assert.equal(open.observe(accept), undefined);
    assert.deepEqual(open.stopAll(7n).map((e) => e.event), [accept]);
    assert.equal(open.observe({ ...accept, type: 'close' }), undefined);
    assert.equal(open.observe(other(connect)), null);
    assert.equal(open.observe(other(close)), null);
  });
});

describe('SpanResources', () => {
  const resourceOf = (resources: SpanResources, comm: string): Record<string, unknown> => resources.resourceFor(comm).attributes;

  it('puts each process under its own service.name, with the tracer as observer, bounded', () => {
    const cfg = resolveOtlpConfig({}, { OTEL_SERVICE_NAME: 'edge-tcp', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,service.name=ignored' });
    const resources = new SpanResources(cfg, '1.2.3');
    const r = resourceOf(resources, 'psql');
    assert.equal(r['service.name'], 'psql');
    assert.equal(r['process.executable.name'], 'psql');
    assert.equal(r['tcptracer.observer.service.name'], 'edge-tcp');
    assert.equal(r['telemetry.distro.name'], 'tcptracer-otel');
    assert.equal(r['telemetry.distro.version'], '1.2.3');
    assert.equal(r['telemetry.sdk.language'], 'nodejs');
    assert.equal(r['deployment.environment.name'], 'prod');
    assert.equal(typeof r['host.name'], 'string');
    assert.equal(resources.resourceFor('psql'), resources.resourceFor('psql'));
    for (let i = resources.size; i < MAX_SPAN_RESOURCES; i++) resources.resourceFor(`p${i}`);
    assert.equal(resources.overflow, 0);
    assert.equal(resourceOf(resources, 'one-too-many')['service.name'], FALLBACK_SERVICE_NAME);
    assert.equal(resources.overflow, 1);
    assert.equal(resourceOf(resources, 'psql')['service.name'], 'psql');
  });

  it("puts every span under the tracer's own resource with TCPTRACER_SPAN_SERVICE_NAME=tracer", () => {
    const cfg = resolveOtlpConfig({}, { TCPTRACER_SPAN_SERVICE_NAME: 'tracer', OTEL_SERVICE_NAME: 'edge-tcp' });
    const resources = new SpanResources(cfg, '1.2.3');
    assert.equal(resourceOf(resources, 'psql')['service.name'], 'edge-tcp');
    assert.equal(resources.resourceFor('a'), resources.resourceFor('b'));
  });
});
