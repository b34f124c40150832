/**
 * The metrics signal of OtlpSink against the real gRPC collector fixture on
 * 127.0.0.1, with synthetic events: periodic and final collections delivered
 * under the process resources, and every data point not delivered counted
 * (the collector refusing, a partial success), on the same export path as the
 * records and spans.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { formatDropReport } from '../src/otlp/report.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import type { OtlpSignalStats } from '../src/otlp/sink.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { connections, tcpEvent } from './fixtures/tcp-events.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(env: Record<string, string> = {}, queueSize?: number): Promise<{ collector: TestCollector; sink: OtlpSink }> {
  const collector = new TestCollector();
  await collector.start();
  cleanup.push(() => {
    collector.stop();
  });
  const cfg = resolveOtlpConfig({ endpoint: collector.endpoint, signals: 'metrics', queueSize }, { OTEL_METRIC_EXPORT_INTERVAL: '200', ...env });
  const sink = new OtlpSink(cfg, { retry: { initialBackoffMs: 50, maxBackoffMs: 100, maxElapsedMs: 300 } });
  cleanup.push(() => sink.shutdown(1000));
  return { collector, sink };
}

function assertBalanced(stats: OtlpSignalStats | undefined): asserts stats {
  assert.ok(stats);
  assert.equal(stats.exported + stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected + stats.pending, stats.emitted, JSON.stringify(stats));
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('OtlpSink metrics', () => {
  it('exports a collection every interval and the last one at shutdown, under each process resource', async () => {
    const { collector, sink } = await setup();
    sink.measure(connections(10));
    await waitFor(() => collector.metricsCalls >= 1, 'a periodic collection');
    sink.measure(connections(5, 10));
    const { undelivered } = await sink.shutdown(2000);
    assert.equal(undelivered, 0);
    const last = (service: string, name: string): number | undefined =>
      collector.metricPoints.filter((p) => p.resource['service.name'] === service && p.name === name).at(-1)?.value;
    assert.equal(last('psql', 'tcptracer.connections'), 15);
    assert.equal(last('postgres', 'tcptracer.connections'), 15);
    assert.equal(last('postgres', 'tcptracer.connection.failures'), 15, 'every server close was a reset');
    const stats = sink.stats();
    assertBalanced(stats.metrics);
    assert.equal(stats.metricEvents, 60);
    assert.equal(stats.metrics.exported, collector.metricPoints.length);
    assert.equal(stats.metrics.pending, 0);
    assert.equal(stats.logs, undefined);
    assert.equal(sink.room(), 0, 'shut down');
  });

  it('sends a collection larger than the export queue whole, and the next one after it', async () => {
    const { collector, sink } = await setup({ OTEL_METRIC_EXPORT_INTERVAL: '60000' }, 64);
    const events = Array.from({ length: 100 }, (_, i) => {
      const connect = tcpEvent({ dport: 1000 + i, handshakeNs: 1000 });
      return [connect, { ...connect, type: 'close' as const, durationNs: 1000, end: 'fin' as const, rttUs: 50 }];
    }).flat();
    sink.measure(events);
    const first = sink.collectMetrics();
    sink.measure(events);
    // a second collection while the first is in the queue waits for it to leave
    const second = sink.collectMetrics().then(() => sink.collectMetrics());
    await Promise.all([first, second]);
    await sink.shutdown(2000);
    const stats = sink.stats();
    assertBalanced(stats.metrics);
    assert.equal(stats.metrics.droppedQueueFull, 0);
    assert.equal(stats.metrics.exported, stats.metrics.emitted);
    assert.ok(stats.metrics.emitted >= 3 * 100 * 5, `points of three collections of 100 series: ${stats.metrics.emitted}`);
    assert.equal(collector.metricPoints.length, stats.metrics.exported);
    // the last collection counted every connection of every series
    const connectionsOf = collector.metricPoints.filter((p) => p.name === 'tcptracer.connections').slice(-100);
    assert.deepEqual(new Set(connectionsOf.map((p) => p.value)), new Set([2]));
  });

  it('counts the data points of a collection the collector refuses, and reports them', async () => {
    const { collector, sink } = await setup({ OTEL_METRIC_EXPORT_INTERVAL: '60000' });
    collector.failNext(Infinity, status.INVALID_ARGUMENT, 'refused', 'metrics');
    sink.measure(connections(3));
    await sink.collectMetrics();
    await waitFor(() => (sink.stats().metrics?.droppedExportFailed ?? 0) > 0, 'the refusal counted');
    const stats = sink.stats();
    assertBalanced(stats.metrics);
    assert.equal(stats.metrics.exported, 0);
    assert.equal(stats.metrics.droppedExportFailed, stats.metrics.emitted);
    assert.ok(stats.metrics.emitted >= 10, `data points of one collection: ${stats.metrics.emitted}`);
    assert.match(formatDropReport(stats) ?? '', /records dropped .*export failed \d+/);
    assert.equal(collector.metricPoints.length, 0);
  });

  it('counts the data points a partial success rejects', async () => {
    const { collector, sink } = await setup({ OTEL_METRIC_EXPORT_INTERVAL: '60000' });
    collector.partialSuccessNext(1, 2, 'too many series', 'metrics');
    sink.measure(connections(2));
    await sink.collectMetrics();
    await waitFor(() => (sink.stats().metrics?.pending ?? 1) === 0, 'the export answered');
    const stats = sink.stats();
    assertBalanced(stats.metrics);
    assert.equal(stats.metrics.droppedRejected, 2);
    assert.equal(stats.metrics.exported, stats.metrics.emitted - 2);
    assert.equal(collector.metricPoints.length, stats.metrics.exported);
  });
});
