/**
 * OtlpSink against a real gRPC collector on 127.0.0.1 (test/fixtures/otlp-collector.ts),
 * with synthetic events: delivery, resource, and the fault cases (collector
 * absent, stopping, refusing, slow; queue overflow; shutdown flush).
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
import { OtlpSink } from '../src/otlp/service.ts';
import type { OtlpSinkOptions, OtlpSinkStats } from '../src/otlp/service.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { BASE_TIME_NS, tcpEvents } from './fixtures/tcp-events.ts';

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

function createSink(collector: TestCollector, env: Record<string, string> = {}, options: OtlpSinkOptions = FAST_RETRY): OtlpSink {
  const cfg = resolveOtlpConfig({ endpoint: collector.endpoint }, { OTEL_BLRP_SCHEDULE_DELAY: '20', ...env });
  const sink = new OtlpSink(cfg, options);
  cleanup.push(() => sink.shutdown(1000));
  return sink;
}

function assertBalanced(stats: OtlpSinkStats): void {
  assert.equal(stats.exported + stats.droppedQueueFull + stats.droppedExportFailed + stats.pending, stats.emitted, JSON.stringify(stats));
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

    assert.deepEqual(sink.stats(), { emitted: 1000, exported: 1000, droppedQueueFull: 0, droppedExportFailed: 0, pending: 0, retries: 0, lastError: undefined });
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
    assert.deepEqual(sink.stats(), { emitted: 30, exported: 0, droppedQueueFull: 0, droppedExportFailed: 0, pending: 30, retries: 0, lastError: undefined });
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
