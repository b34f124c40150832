/**
 * OtlpSink with a sampler (src/otlp/sampling.ts), against the gRPC collector
 * fixture on 127.0.0.1, with synthetic connections: exactly the records and
 * spans of the kept connections arrive (the expectation read independently
 * from each trace id's hex), their spans carry the trace state, failures and
 * resets arrive whatever the ratio, and what was sampled out is counted per
 * signal, apart from the losses.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { formatDropReport, formatSampledReport } from '../src/otlp/report.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import type { OtlpSignalStats, OtlpSinkOptions } from '../src/otlp/sink.ts';
import { connectionIds } from '../src/otlp/traces/ids.ts';
import type { TcpEvent } from '../src/types.ts';
import { SPAN_KIND, TestCollector } from './fixtures/otlp-collector.ts';
import { connection, tcpEvent } from './fixtures/tcp-events.ts';

const FAST_RETRY: OtlpSinkOptions = { retry: { initialBackoffMs: 50, maxBackoffMs: 250, maxElapsedMs: 20_000 } };

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(env: Record<string, string>, signals = 'logs,traces', sample?: string): Promise<{ collector: TestCollector; sink: OtlpSink }> {
  const collector = new TestCollector();
  await collector.start();
  cleanup.push(() => {
    collector.stop();
  });
  const cfg = resolveOtlpConfig({ endpoint: collector.endpoint, signals, sample }, { OTEL_BLRP_SCHEDULE_DELAY: '20', ...env });
  const sink = new OtlpSink(cfg, FAST_RETRY);
  cleanup.push(() => sink.shutdown(1000));
  return { collector, sink };
}

function assertBalanced(stats: OtlpSignalStats | undefined): void {
  assert.ok(stats);
  assert.equal(stats.exported + stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected + stats.pending, stats.emitted, JSON.stringify(stats));
}

/** Kept at ratio 0.5, read from the hex: the trace id's low 56 bits (its last 14 digits) at least 0x80000000000000. */
function keptAtHalf(i: number): boolean {
  const ids = connectionIds(connection(i).connect);
  assert.ok(ids);
  return Number.parseInt(ids.traceId.charAt(18), 16) >= 8;
}

/**
 * The workload: connections 0-199 closed (the client's close `fin`, the
 * server's `reset`: see connection()), 200-219 still open at shutdown, and
 * five failed connects.
 */
function workload(): { events: TcpEvent[]; failed: TcpEvent[] } {
  const events: TcpEvent[] = [];
  for (let i = 0; i < 220; i++) {
    const c = connection(i);
    events.push(c.connect, c.accept);
    if (i < 200) events.push(c.clientClose, c.serverClose);
  }
  const failed = Array.from({ length: 5 }, (_, i) => tcpEvent({ type: 'failed', errno: 111, pid: 9000 + i, localIsn: 0, peerIsn: 0 }));
  return { events: [...events, ...failed], failed };
}

/** A record's key: event name, role and connection number (from the client port). */
function recordKey(eventName: string, pid: number, clientPort: number, server: boolean): string {
  return eventName === 'tcp.connect_failed' ? `failed ${pid}` : `${eventName} ${server ? 'server' : 'client'} ${clientPort - 40_000}`;
}

describe('OtlpSink with traceidratio 0.5', () => {
  it('exports exactly the kept connections, ot=th:8 on their spans, every failure and reset with ot=th:0, and counts the rest as sampled out', async () => {
    const { collector, sink } = await setup({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' });
    const { events } = workload();
    sink.emit(events);
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });

    const kept = Array.from({ length: 220 }, (_, i) => keptAtHalf(i));
    const keptClosed = kept.slice(0, 200).filter(Boolean).length;
    const keptOpen = kept.slice(200).filter(Boolean).length;
    assert.ok(keptClosed > 60 && keptClosed < 140, `kept ${keptClosed} of 200: the trace ids are not uniform`);

    const wantRecords: string[] = [];
    for (let i = 0; i < 220; i++) {
      if (kept[i] === true) wantRecords.push(`tcp.connect client ${i}`, `tcp.accept server ${i}`);
      if (i < 200 && kept[i] === true) wantRecords.push(`tcp.close client ${i}`);
      if (i < 200) wantRecords.push(`tcp.close server ${i}`); // reset: always kept
    }
    for (let i = 0; i < 5; i++) wantRecords.push(`failed ${9000 + i}`);
    const gotRecords = collector.records.map((r) =>
      recordKey(r.eventName, Number(r.attributes['process.pid']), Number(r.attributes['client.port']), r.attributes['server.port'] === r.attributes['network.local.port']),
    );
    assert.deepEqual(gotRecords.sort(), wantRecords.sort());

    const wantSpans: string[] = [];
    for (let i = 0; i < 220; i++) {
      const { traceId } = connectionIds(connection(i).connect) ?? assert.fail('no ids');
      if (kept[i] === true) wantSpans.push(`${traceId} client ot=th:8`);
      if (i < 200) wantSpans.push(`${traceId} server ot=th:0`);
      else if (kept[i] === true) wantSpans.push(`${traceId} server ot=th:8`);
    }
    const gotSpans = collector.spans.map((s) => `${s.traceId} ${s.kind === SPAN_KIND.CLIENT ? 'client' : 'server'} ${s.traceState}`);
    assert.deepEqual(gotSpans.sort(), wantSpans.sort());
    assert.equal(collector.spans.filter((s) => s.attributes['tcptracer.connection.end'] === 'tracer_stopped').length, 2 * keptOpen);

    const stats = sink.stats();
    const sampledRecords = events.length - wantRecords.length;
    const sampledSpans = 200 - keptClosed + 2 * (20 - keptOpen);
    assert.deepEqual([stats.logs?.sampledOut, stats.traces?.sampledOut, stats.sampledOut], [sampledRecords, sampledSpans, sampledRecords + sampledSpans]);
    assert.deepEqual([stats.logs?.exported, stats.traces?.exported], [wantRecords.length, wantSpans.length]);
    assert.equal(stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected, 0, 'nothing sampled out is a loss');
    assertBalanced(stats.logs);
    assertBalanced(stats.traces);
    assert.equal(formatDropReport(stats), undefined);
    assert.equal(formatSampledReport(stats), `otlp: sampled out (not exported, not lost): ${sampledRecords} records, ${sampledSpans} spans`);
  });
});

describe('OtlpSink with always_off', () => {
  it('exports the failures and resets alone, with --sample 0 as with the variable', async () => {
    for (const [env, sample] of [[{ OTEL_TRACES_SAMPLER: 'always_off' }, undefined], [{}, '0']] as const) {
      const { collector, sink } = await setup(env, 'logs,traces', sample);
      const { events } = workload();
      sink.emit(events);
      assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
      assert.deepEqual(
        collector.records.map((r) => r.eventName).sort(),
        [...Array<string>(200).fill('tcp.close'), ...Array<string>(5).fill('tcp.connect_failed')],
      );
      assert.equal(collector.records.filter((r) => r.eventName === 'tcp.close' && r.attributes['process.pid'] !== 77).length, 0, 'only the servers saw resets');
      assert.deepEqual([...new Set(collector.spans.map((s) => `${s.kind} ${s.traceState} ${s.statusCode}`))], [`${SPAN_KIND.SERVER} ot=th:0 2`]);
      assert.equal(collector.spans.length, 200);
      const stats = sink.stats();
      assert.deepEqual([stats.logs?.sampledOut, stats.traces?.sampledOut], [events.length - 205, 200 + 40]);
    }
  });

  it('counts sampled-out records alone when only logs are exported', async () => {
    const { collector, sink } = await setup({ OTEL_TRACES_SAMPLER: 'always_off' }, 'logs');
    const { events } = workload();
    sink.emit(events);
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    assert.equal(collector.records.length, 205);
    const stats = sink.stats();
    assert.deepEqual([stats.sampledOut, stats.traces], [events.length - 205, undefined]);
    assert.equal(formatSampledReport(stats), `otlp: sampled out (not exported, not lost): ${events.length - 205} records`);
  });
});

describe('OtlpSink without a sampler', () => {
  it('exports everything and writes no trace state', async () => {
    const { collector, sink } = await setup({});
    const { events } = workload();
    sink.emit(events);
    assert.deepEqual(await sink.shutdown(5000), { undelivered: 0 });
    assert.equal(collector.records.length, events.length);
    assert.equal(collector.spans.length, 440);
    assert.ok(collector.spans.every((s) => s.traceState === ''));
    assert.equal(sink.stats().sampledOut, 0);
    assert.equal(formatSampledReport(sink.stats()), undefined);
  });
});
