/**
 * OtlpSink against a real gRPC collector on 127.0.0.1 (test/fixtures/otlp-collector.ts),
 * with synthetic events: delivery, resource, and the fault cases (collector
 * absent, stopping, refusing, slow, answering partial success; queue
 * overflow; shutdown flush), for log records and for connection spans.
 * The log-record cases run with `signals: logs` so that their counts are the
 * records' alone; the span cases follow.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import type { HrTime } from '@opentelemetry/api';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { ATTR_HOST_ID, ATTR_HOST_NAME, ATTR_OS_TYPE } from '../src/semconv.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import type { OtlpSignalStats, OtlpSinkOptions, OtlpSinkStats } from '../src/otlp/sink.ts';
import { connectionIds } from '../src/otlp/traces/ids.ts';
import { formatDropReport } from '../src/otlp/report.ts';
import { SPAN_KIND, STATUS_CODE, TestCollector } from './fixtures/otlp-collector.ts';
import type { ReceivedLogRecord } from './fixtures/otlp-collector.ts';
import { BASE_TIME_NS, connection, connections, tcpEvent, tcpEvents } from './fixtures/tcp-events.ts';

const FAST_RETRY: OtlpSinkOptions = { retry: { initialBackoffMs: 50, maxBackoffMs: 250, maxElapsedMs: 20_000 } };
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function startCollector(): Promise<TestCollector> {
  const collector = new TestCollector();
  await collector.start();
  cleanup.push(() => {
    collector.stop();
  });
  return collector;
}

function createSink(collector: TestCollector, env: Record<string, string> = {}, options: OtlpSinkOptions = FAST_RETRY, signals = 'logs'): OtlpSink {
  const cfg = resolveOtlpConfig({ endpoint: collector.endpoint, signals }, { OTEL_BLRP_SCHEDULE_DELAY: '20', ...env });
  const sink = new OtlpSink(cfg, options);
  cleanup.push(() => sink.shutdown(1000));
  return sink;
}

function assertBalanced(stats: OtlpSignalStats): void {
  assert.equal(stats.exported + stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected + stats.pending, stats.emitted, JSON.stringify(stats));
}

/** The totals of `stats` (what the CLI's drop line reports). */
function totals(stats: OtlpSinkStats): OtlpSignalStats {
  const { emitted, exported, droppedQueueFull, droppedExportFailed, droppedRejected, pending, retries, lastError, sampledOut } = stats;
  return { emitted, exported, droppedQueueFull, droppedExportFailed, droppedRejected, pending, retries, lastError, sampledOut };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const pids = (collector: TestCollector): number[] => collector.records.map((r) => Number(r.attributes['process.pid'])).sort((a, b) => a - b);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('OtlpSink with a healthy collector', () => {
  it('delivers every record with its fields and the resource', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,k8s.node.name=n1', OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=t1' });
    const observed: HrTime = [1_800_000_000, 42];
    sink.emit(tcpEvents(1000), observed);
    await collector.waitForRecords(1000);
    await waitFor(() => sink.stats().exported === 1000, 'acknowledgements');

    assert.deepEqual(pids(collector), range(1, 1000));
    const first = collector.records.find((r) => r.attributes['process.pid'] === 7);
    assert.ok(first);
    assert.equal(first.eventName, 'tcp.connect');
    assert.equal(first.timeUnixNano, BASE_TIME_NS + 6000n);
    assert.equal(first.observedTimeUnixNano, 1_800_000_000_000_000_042n);
    assert.equal(first.severityNumber, 9);
    assert.equal(first.severityText, 'INFO');
    assert.equal(first.body, 'connect 10.0.0.1:41234 -> 10.0.0.2:5432 (psql pid 7)');
    assert.equal(first.attributes['server.address'], '10.0.0.2');
    assert.equal(first.attributes['tcptracer.netns.inode'], 4026531840);
    assert.equal(first.scope, 'tcptracer-otel');

    const resource = first.resource;
    assert.equal(resource['service.name'], 'tcptracer');
    assert.equal(resource['service.version'], PACKAGE_VERSION);
    assert.equal(resource[ATTR_HOST_NAME], hostname());
    assert.equal(resource[ATTR_OS_TYPE], 'linux');
    assert.equal(resource['deployment.environment.name'], 'test');
    assert.equal(resource['k8s.node.name'], 'n1');
    assert.equal(resource['telemetry.sdk.language'], 'nodejs');
    if (existsSync('/etc/machine-id')) assert.equal(resource[ATTR_HOST_ID], readFileSync('/etc/machine-id', 'utf8').trim());

    assert.deepEqual(totals(sink.stats()), { emitted: 1000, exported: 1000, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 0, pending: 0, retries: 0, lastError: undefined, sampledOut: 0 });
    assert.deepEqual(sink.stats().logs, totals(sink.stats()));
    assert.equal(sink.stats().traces, undefined);
    assert.equal(collector.spans.length, 0);
  });
});

describe('OtlpSink when the collector misbehaves', () => {
  it('delivers once a collector that was absent at start appears', async () => {
    const collector = await startCollector();
    collector.stop();
    const sink = createSink(collector);
    sink.emit(tcpEvents(100));
    await waitFor(() => sink.stats().retries >= 2, 'retries while the collector is down');
    assert.equal(collector.records.length, 0);
    assert.match(sink.stats().lastError ?? '', /UNAVAILABLE/);
    await collector.start();
    await collector.waitForRecords(100, 20_000);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');
    assert.deepEqual(pids(collector), range(1, 100));
    const stats = sink.stats();
    assert.equal(stats.exported, 100);
    assert.equal(stats.droppedExportFailed + stats.droppedQueueFull, 0);
    assertBalanced(stats);
  });

  it('survives the collector stopping mid-stream and delivers after it restarts', async () => {
    const collector = await startCollector();
    const sink = createSink(collector);
    sink.emit(tcpEvents(200, 1));
    await collector.waitForRecords(200);
    collector.stop();
    const retriesBefore = sink.stats().retries;
    sink.emit(tcpEvents(300, 201));
    await waitFor(() => sink.stats().retries > retriesBefore + 1, 'retries after the stop');
    assertBalanced(sink.stats());
    await collector.start();
    await waitFor(() => sink.stats().pending === 0, 'the backlog to drain', 20_000);
    const stats = sink.stats();
    assert.equal(stats.exported, 500);
    assert.equal(stats.droppedExportFailed + stats.droppedQueueFull, 0);
    assert.deepEqual([...new Set(pids(collector))], range(1, 500));
  });

  it('retries RESOURCE_EXHAUSTED answers', async () => {
    const collector = await startCollector();
    collector.failNext(3, status.RESOURCE_EXHAUSTED);
    const sink = createSink(collector);
    sink.emit(tcpEvents(50));
    await collector.waitForRecords(50);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');
    assert.equal(sink.stats().retries, 3);
    assert.equal(sink.stats().exported, 50);
    assert.equal(collector.calls, 4);
  });

  it('counts batches refused with a non-retryable status as export failures', async () => {
    const collector = await startCollector();
    collector.failNext(2, status.INVALID_ARGUMENT, 'bad data');
    const sink = createSink(collector, { OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '10' }, { ...FAST_RETRY, maxConcurrentExports: 1 });
    sink.emit(tcpEvents(50));
    await waitFor(() => sink.stats().pending === 0, 'all batches settled');
    const stats = sink.stats();
    assert.deepEqual([stats.exported, stats.droppedExportFailed, stats.retries], [30, 20, 0]);
    assert.equal(collector.records.length, stats.emitted - stats.droppedExportFailed);
    assert.deepEqual(pids(collector), range(21, 50));
    assert.match(stats.lastError ?? '', /INVALID_ARGUMENT: bad data/);
  });

  it('retries a collector slower than the export timeout and delivers once it is fast again', async () => {
    const collector = await startCollector();
    collector.delayMs = 400;
    const sink = createSink(collector, { OTEL_EXPORTER_OTLP_TIMEOUT: '150' });
    sink.emit(tcpEvents(20));
    await waitFor(() => sink.stats().retries >= 2, 'retries after deadlines');
    assert.match(sink.stats().lastError ?? '', /DEADLINE_EXCEEDED/);
    collector.delayMs = 0;
    await collector.waitForRecords(20);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');
    assert.equal(sink.stats().exported, 20);
    assert.deepEqual(pids(collector), range(1, 20));
  });

  it('reports exactly the records lost to a full queue', async () => {
    const collector = await startCollector();
    collector.delayMs = 50;
    const sink = createSink(collector, { TCPTRACER_OTLP_QUEUE_SIZE: '100', OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '10' });
    sink.emit(tcpEvents(1000, 1));
    assert.equal(sink.stats().droppedQueueFull, 900);
    await waitFor(() => sink.stats().pending === 0, 'the queue to drain');
    sink.emit(tcpEvents(60, 1001));
    await waitFor(() => sink.stats().pending === 0, 'the second burst');
    const stats = sink.stats();
    assert.deepEqual([stats.emitted, stats.droppedQueueFull, stats.droppedExportFailed], [1060, 900, 0]);
    assert.equal(collector.records.length, stats.emitted - stats.droppedQueueFull);
    assert.deepEqual(pids(collector), [...range(1, 100), ...range(1001, 1060)]);
    assertBalanced(stats);
  });
});

describe('OtlpSink queue', () => {
  it('makes records when they are sent, from the events and the time they were read at', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, { OTEL_BLRP_SCHEDULE_DELAY: '60000', OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '100' });
    const batch = tcpEvents(30);
    const observed: HrTime = [1_800_000_000, 7];
    sink.emit(batch, observed);
    // the caller may reuse its array once emit returns
    batch.length = 0;
    batch.push(...tcpEvents(30, 1001));
    assert.deepEqual(totals(sink.stats()), { emitted: 30, exported: 0, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 0, pending: 30, retries: 0, lastError: undefined, sampledOut: 0 });
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    assert.deepEqual(pids(collector), range(1, 30));
    assert.ok(collector.records.every((r) => r.observedTimeUnixNano === 1_800_000_000_000_000_007n));
  });
});

describe('OtlpSink shutdown', () => {
  it('delivers everything queued before it resolves', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, { OTEL_BLRP_SCHEDULE_DELAY: '60000' });
    sink.emit(tcpEvents(1234));
    assert.ok(sink.stats().pending > 0);
    const result = await sink.shutdown(5000);
    assert.deepEqual(result, { undelivered: 0 });
    assert.equal(collector.records.length, 1234);
    assert.equal(sink.stats().exported, 1234);
  });

  it('reports what it could not deliver by the deadline, and refuses later records', async () => {
    const collector = await startCollector();
    collector.stop();
    const sink = createSink(collector);
    sink.emit(tcpEvents(50));
    const started = performance.now();
    const result = await sink.shutdown(300);
    const elapsed = performance.now() - started;
    assert.deepEqual(result, { undelivered: 50 });
    assert.ok(elapsed >= 250 && elapsed < 2000, `shutdown took ${elapsed} ms`);
    sink.emit(tcpEvents(5));
    assert.deepEqual(sink.stats(), {
      ...sink.stats(),
      emitted: 55,
      exported: 0,
      droppedExportFailed: 50,
      droppedQueueFull: 5,
      pending: 0,
    });
    assert.deepEqual(await sink.shutdown(300), { undelivered: 50 });
  });
});

const BOTH = 'logs,traces';

describe('OtlpSink spans', () => {
  it('exports one span per connection end, joined into one trace per connection, and points the records at them', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, { OTEL_SERVICE_NAME: 'edge-tcp' }, FAST_RETRY, BOTH);
    const failed = tcpEvent({ type: 'failed', errno: 111, pid: 5, localIsn: 0, peerIsn: 0 });
    sink.emit([...connections(10), failed]);
    await collector.waitForSpans(20);
    await collector.waitForRecords(41);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');

    const want = connectionIds(connection(3).connect);
    assert.ok(want);
    const trace3 = collector.spans.filter((s) => s.traceId === want.traceId);
    assert.equal(trace3.length, 2);
    const client = trace3.find((s) => s.kind === SPAN_KIND.CLIENT);
    const server = trace3.find((s) => s.kind === SPAN_KIND.SERVER);
    assert.ok(client && server);
    assert.deepEqual([client.spanId, client.parentSpanId], [want.clientSpanId, '']);
    assert.deepEqual([server.spanId, server.parentSpanId], [want.serverSpanId, want.clientSpanId]);
    assert.equal(client.name, 'connect 10.0.0.2:5432');
    assert.equal(server.name, 'accept 10.0.0.2:5432');
    const t = BASE_TIME_NS + 3_000_000n;
    assert.deepEqual([client.startTimeUnixNano, client.endTimeUnixNano], [t, t + 500_000n]);
    assert.deepEqual([server.startTimeUnixNano, server.endTimeUnixNano], [t + 10_000n, t + 600_000n]);
    assert.deepEqual([client.statusCode, server.statusCode, server.statusMessage], [STATUS_CODE.UNSET, STATUS_CODE.ERROR, 'connection reset (ECONNRESET)']);
    assert.equal(client.attributes['process.pid'], 1003);
    assert.equal(client.attributes['tcptracer.connection.end'], 'fin');
    assert.equal(client.attributes['tcptracer.connection.bytes_acked'], 100);
    assert.equal(client.resource['service.name'], 'psql');
    assert.equal(server.resource['service.name'], 'postgres');
    assert.equal(server.resource['process.executable.name'], 'postgres');
    assert.equal(server.resource['tcptracer.observer.service.name'], 'edge-tcp');
    assert.equal(server.resource[ATTR_HOST_NAME], hostname());
    assert.equal(client.scope, 'tcptracer-otel');

    // each record points at its own side's span; the failed connect's at none, and it has no span
    const recordsOf = (pid: number): ReceivedLogRecord[] => collector.records.filter((r) => r.attributes['process.pid'] === pid);
    assert.deepEqual(recordsOf(1003).map((r) => [r.eventName, r.traceId, r.spanId]), [
      ['tcp.connect', want.traceId, want.clientSpanId],
      ['tcp.close', want.traceId, want.clientSpanId],
    ]);
    const serverRecords = collector.records.filter((r) => r.attributes['client.port'] === 40_003 && r.attributes['process.pid'] === 77);
    assert.deepEqual(serverRecords.map((r) => [r.traceId, r.spanId]), [[want.traceId, want.serverSpanId], [want.traceId, want.serverSpanId]]);
    const failedRecord = recordsOf(5)[0];
    assert.ok(failedRecord);
    assert.deepEqual([failedRecord.eventName, failedRecord.severityText, failedRecord.traceId, failedRecord.spanId], ['tcp.connect_failed', 'WARN', '', '']);
    assert.equal(failedRecord.resource['service.name'], 'edge-tcp');
    assert.equal(collector.spans.length, 20);

    const stats = sink.stats();
    assert.equal(stats.logs?.exported, 41);
    assert.equal(stats.traces?.exported, 20);
    assert.deepEqual([stats.emitted, stats.exported, stats.openConnections], [61, 61, 0]);
    assertBalanced(stats);
  });

  it('exports no spans with signals logs, and the records still carry the derived ids', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, {}, FAST_RETRY, 'logs');
    sink.emit(connections(5));
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    assert.equal(collector.records.length, 20);
    assert.equal(collector.spans.length, 0);
    assert.equal(collector.traceCalls, 0);
    const want = connectionIds(connection(0).connect);
    assert.equal(collector.records[0]?.traceId, want?.traceId);
  });

  it('exports spans alone with signals traces', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, {}, FAST_RETRY, 'traces');
    sink.emit(connections(5));
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    assert.equal(collector.spans.length, 10);
    assert.equal(collector.records.length, 0);
    assert.deepEqual([sink.stats().emitted, sink.stats().logs], [10, undefined]);
  });

  it('ends the connections still open at shutdown as spans marked tracer_stopped', async () => {
    const collector = await startCollector();
    const sink = createSink(collector, {}, FAST_RETRY, BOTH);
    const open = connection(1);
    sink.emit([...connections(1, 0), open.connect, open.accept]);
    assert.equal(sink.stats().openConnections, 2);
    const before = BigInt(Date.now()) * 1_000_000n;
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    const stopped = collector.spans.filter((s) => s.attributes['tcptracer.connection.end'] === 'tracer_stopped');
    assert.deepEqual(stopped.map((s) => s.name).sort(), ['accept 10.0.0.2:5432', 'connect 10.0.0.2:5432']);
    for (const s of stopped) {
      assert.ok(s.endTimeUnixNano >= before, 'ended at shutdown time');
      assert.equal(s.statusCode, STATUS_CODE.UNSET);
    }
    assert.equal(stopped.find((s) => s.kind === SPAN_KIND.CLIENT)?.startTimeUnixNano, open.connect.timeUnixNs);
    assert.equal(collector.spans.length, 4);
    assert.equal(sink.stats().traces?.exported, 4);
  });

  it('delivers spans once a collector that was absent at start appears', async () => {
    const collector = await startCollector();
    collector.stop();
    const sink = createSink(collector, {}, FAST_RETRY, BOTH);
    sink.emit(connections(25));
    await waitFor(() => (sink.stats().traces?.retries ?? 0) >= 2, 'span export retries while the collector is down');
    assert.match(sink.stats().traces?.lastError ?? '', /UNAVAILABLE/);
    await collector.start();
    await collector.waitForSpans(50, 20_000);
    await collector.waitForRecords(100, 20_000);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');
    const stats = sink.stats();
    assert.deepEqual([stats.traces?.exported, stats.logs?.exported], [50, 100]);
    assert.equal(stats.droppedExportFailed + stats.droppedQueueFull, 0);
    assert.equal(new Set(collector.spans.map((s) => s.spanId)).size, 50);
    assertBalanced(stats);
  });

  it('counts spans it could not deliver by the shutdown deadline, with the records', async () => {
    const collector = await startCollector();
    collector.stop();
    const sink = createSink(collector, {}, FAST_RETRY, BOTH);
    sink.emit(connections(10));
    const result = await sink.shutdown(300);
    assert.deepEqual(result, { undelivered: 60 });
    const stats = sink.stats();
    assert.deepEqual([stats.logs?.droppedExportFailed, stats.traces?.droppedExportFailed, stats.droppedExportFailed], [40, 20, 60]);
    assertBalanced(stats);
    assert.equal(sink.room(), 0);
  });

  it('retries span exports refused with a retryable status', async () => {
    const collector = await startCollector();
    collector.failNext(2, status.UNAVAILABLE, 'busy', 'traces');
    const sink = createSink(collector, {}, FAST_RETRY, BOTH);
    sink.emit(connections(3));
    await collector.waitForSpans(6);
    await waitFor(() => sink.stats().pending === 0, 'acknowledgements');
    assert.deepEqual([sink.stats().traces?.retries, sink.stats().logs?.retries, collector.traceCalls], [2, 0, 3]);
  });
});

describe('OtlpSink partial success', () => {
  it('counts the records and spans a collector rejects as dropped, with its message as the last error', async () => {
    const collector = await startCollector();
    collector.partialSuccessNext(1, 3, 'log records too old', 'logs');
    collector.partialSuccessNext(1, 2, 'spans over quota', 'traces');
    const sink = createSink(collector, { OTEL_BLRP_SCHEDULE_DELAY: '60000' }, FAST_RETRY, BOTH);
    sink.emit(connections(5));
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    const stats = sink.stats();
    assert.deepEqual([stats.logs?.droppedRejected, stats.logs?.exported], [3, 17]);
    assert.deepEqual([stats.traces?.droppedRejected, stats.traces?.exported], [2, 8]);
    assert.equal(stats.droppedRejected, 5);
    assert.equal(collector.records.length, 17);
    assert.equal(collector.spans.length, 8);
    assert.equal(stats.logs?.lastError, 'log records too old');
    assert.equal(stats.traces?.lastError, 'spans over quota');
    assert.equal(stats.retries, 0);
    assertBalanced(stats);
    assert.match(formatDropReport(stats) ?? '', /^otlp: 5 records dropped \(queue full 0, export failed 0, rejected 5\);.* logs 3, spans 2 dropped/);
  });
});

describe('OtlpSink backpressure', () => {
  it('has room for what every signal can take, and says when room grew', async () => {
    const collector = await startCollector();
    collector.delayMs = 100;
    const sink = createSink(collector, { TCPTRACER_OTLP_QUEUE_SIZE: '20', OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '10' }, FAST_RETRY, BOTH);
    assert.equal(sink.room(), 20);
    let called = 0;
    const calls = (): number => called;
    const off = sink.onRoom(() => called++);
    sink.emit(connections(5)); // 20 records, 10 spans
    assert.equal(sink.room(), 0);
    assert.equal(calls(), 0, 'never called from inside emit');
    await waitFor(() => sink.room() > 0, 'room after an export', 5000);
    assert.ok(calls() > 0);
    await waitFor(() => sink.stats().pending === 0, 'the queue to drain');
    assert.equal(sink.room(), 20);
    off();
    const seen = calls();
    sink.emit(connections(1, 5));
    await waitFor(() => sink.stats().pending === 0, 'the second batch');
    assert.equal(calls(), seen);
    // 8 records past the room are refused and counted; the spans of all their connections are still made
    const full = sink.room();
    sink.emit(connections(full / 4 + 2, 6));
    const stats = sink.stats();
    assert.deepEqual([stats.logs?.droppedQueueFull, stats.traces?.droppedQueueFull], [8, 0]);
    assertBalanced(stats);
  });
});
