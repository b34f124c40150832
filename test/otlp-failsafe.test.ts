/**
 * Nothing is lost without being counted, whatever the collector does: for
 * each way a collector can fail (nothing listening, holding connections,
 * answering garbage, closing at once, speaking HTTP/1.1, UNAVAILABLE,
 * RESOURCE_EXHAUSTED, slow), OtlpSink is fed connections the way the CLI feeds
 * it (events it may refuse for want of room), then shut down; for log records and for spans,
 * delivered + counted as dropped == generated, and what the collector kept is
 * exactly what the sink counts as exported.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { droppedTotal } from '../src/otlp/report.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import type { OtlpSignalStats } from '../src/otlp/sink.ts';
import type { TcpEvent } from '../src/types.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { connection, connections } from './fixtures/tcp-events.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function failAll(code: status, details: string): (c: TestCollector) => void {
  return (c) => {
    c.failAll(code, details);
  };
}

/** How each failure is set up on a collector that was started once (its port is the sink's endpoint). */
const MODES: readonly { readonly name: string; readonly fails: boolean; readonly setup: (c: TestCollector) => Promise<void> | void }[] = [
  { name: 'nothing listening', fails: true, setup: (c) => c.misbehave('refuse') },
  { name: 'holding connections', fails: true, setup: (c) => c.misbehave('hold') },
  { name: 'answering garbage', fails: true, setup: (c) => c.misbehave('garble') },
  { name: 'closing connections at once', fails: true, setup: (c) => c.misbehave('close') },
  { name: 'speaking HTTP/1.1', fails: true, setup: (c) => c.misbehave('http1') },
  { name: 'answering UNAVAILABLE', fails: true, setup: failAll(status.UNAVAILABLE, 'overloaded') },
  { name: 'answering RESOURCE_EXHAUSTED', fails: true, setup: failAll(status.RESOURCE_EXHAUSTED, 'quota') },
  {
    name: 'slow (300 ms a request)',
    fails: false,
    setup: (c) => {
      c.delayMs = 300;
    },
  },
];

const CLOSED = 600; // connections opened and closed: 4 events, 2 spans each
const OPEN = 20; // connections still open at shutdown: 2 events, 2 spans (tracer_stopped) each
const CHUNK = 100;

/** The events of the workload, in the order a tracer would read them. */
function workload(): TcpEvent[] {
  const open: TcpEvent[] = [];
  for (let i = CLOSED; i < CLOSED + OPEN; i++) {
    const c = connection(i);
    open.push(c.connect, c.accept);
  }
  return [...connections(CLOSED), ...open];
}

/** Feeds `events` as the CLI does, in chunks, whole: the sink refuses and counts what does not fit. */
async function feed(sink: OtlpSink, events: readonly TcpEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += CHUNK) {
    sink.emit(events.slice(i, i + CHUNK));
    await sleep(10);
  }
}

function assertAccounted(stats: OtlpSignalStats | undefined, generated: number, received: number, what: string): void {
  assert.ok(stats, what);
  const detail = `${what}: ${JSON.stringify(stats)}, collector kept ${received}`;
  assert.equal(stats.emitted, generated, detail);
  assert.equal(stats.pending, 0, detail);
  assert.equal(stats.exported + droppedTotal(stats), generated, detail);
  assert.equal(received, stats.exported, detail);
}

describe('OtlpSink accounts for every record and span whatever the collector does', () => {
  for (const mode of MODES) {
    it(`collector ${mode.name}: delivered + counted dropped == generated, for records and spans`, async () => {
      const collector = new TestCollector();
      await collector.start();
      cleanup.push(() => {
        collector.stop();
      });
      await mode.setup(collector);
      const cfg = resolveOtlpConfig(
        { endpoint: collector.endpoint, signals: 'logs,traces' },
        { OTEL_BLRP_SCHEDULE_DELAY: '20', TCPTRACER_OTLP_QUEUE_SIZE: '256', OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '64', OTEL_EXPORTER_OTLP_TIMEOUT: '2000' },
      );
      const sink = new OtlpSink(cfg, { retry: { initialBackoffMs: 50, maxBackoffMs: 250, maxElapsedMs: 20_000 } });
      cleanup.push(() => sink.shutdown(100));
      const events = workload();
      await feed(sink, events);
      await sink.shutdown(1500);

      const stats = sink.stats();
      assertAccounted(stats.logs, events.length, collector.records.length, 'log records');
      assertAccounted(stats.traces, 2 * (CLOSED + OPEN), collector.spans.length, 'spans');
      assert.ok(droppedTotal(stats) > 0, 'the workload overflowed the queues');
      if (mode.fails) {
        assert.equal(stats.exported, 0);
        assert.ok(stats.lastError, 'the failure is reported');
      } else {
        assert.ok(stats.logs !== undefined && stats.logs.exported > 0 && stats.traces !== undefined && stats.traces.exported > 0, JSON.stringify(stats));
      }
    });
  }
});
