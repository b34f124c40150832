import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExportFailure } from '../src/otlp/export/retry.ts';
import { ExportFailureReporter, formatDropReport, formatExportFailure, formatSampledReport, startDropReporter } from '../src/otlp/report.ts';
import type { OtlpSinkStats } from '../src/otlp/sink.ts';

const clean: OtlpSinkStats = {
  emitted: 10,
  exported: 10,
  droppedQueueFull: 0,
  droppedExportFailed: 0,
  droppedRejected: 0,
  pending: 0,
  retries: 2,
  lastError: '14 UNAVAILABLE: No connection established',
  logs: undefined,
  traces: undefined,
  metrics: undefined,
  metricEvents: 0,
  openConnections: 0,
  openOverflow: 0,
  resourceOverflow: 0,
  sampledOut: 0,
};

describe('formatDropReport', () => {
  it('says nothing when nothing was dropped', () => {
    assert.equal(formatDropReport(clean), undefined);
  });

  it('gives totals and the last error on one line', () => {
    const line = formatDropReport({ ...clean, emitted: 1500, droppedQueueFull: 1000, droppedExportFailed: 234, exported: 146, pending: 120, retries: 7 });
    assert.equal(
      line,
      'otlp: 1234 records dropped (queue full 1000, export failed 234); exported 146, pending 120, retries 7; last error: 14 UNAVAILABLE: No connection established',
    );
  });
});

describe('formatSampledReport', () => {
  it('says nothing when nothing was sampled out, else the count per exported signal, apart from the drops', () => {
    assert.equal(formatSampledReport(clean), undefined);
    const logs = { ...clean, sampledOut: 120 };
    const traces = { ...clean, sampledOut: 30 };
    const both = { ...clean, sampledOut: 150, logs, traces };
    assert.equal(formatSampledReport(both), 'otlp: sampled out (not exported, not lost): 120 records, 30 spans');
    assert.equal(formatDropReport(both), undefined, 'sampled out is not dropped');
    assert.equal(formatSampledReport({ ...clean, sampledOut: 30, traces }), 'otlp: sampled out (not exported, not lost): 30 spans');
  });
});

describe('formatDropReport with spans and partial success', () => {
  it('counts rejected records in the total, inside the parentheses, and splits by signal', () => {
    const logs = { ...clean, droppedQueueFull: 4, droppedRejected: 2 };
    const traces = { ...clean, emitted: 5, exported: 4, droppedExportFailed: 1 };
    const line = formatDropReport({ ...clean, droppedQueueFull: 4, droppedExportFailed: 1, droppedRejected: 2, logs, traces, lastError: 'too old' });
    assert.equal(line, 'otlp: 7 records dropped (queue full 4, export failed 1, rejected 2); exported 10, pending 0, retries 2; logs 6, spans 1 dropped; last error: too old');
  });
});

describe('formatDropReport with metrics', () => {
  it('splits by signal whenever more than one is exported, data points as metric points', () => {
    const logs = { ...clean, droppedQueueFull: 3 };
    const metrics = { ...clean, emitted: 40, exported: 38, droppedExportFailed: 2 };
    const line = formatDropReport({ ...clean, droppedQueueFull: 3, droppedExportFailed: 2, logs, metrics, lastError: undefined });
    assert.equal(line, 'otlp: 5 records dropped (queue full 3, export failed 2); exported 10, pending 0, retries 2; logs 3, metric points 2 dropped');
  });

  it('has no split with metrics alone', () => {
    const metrics = { ...clean, droppedQueueFull: 7 };
    const line = formatDropReport({ ...clean, droppedQueueFull: 7, metrics, lastError: undefined });
    assert.equal(line, 'otlp: 7 records dropped (queue full 7, export failed 0); exported 10, pending 0, retries 2');
  });
});

describe('startDropReporter', () => {
  it('writes only when the dropped total grew, and stops', async () => {
    let stats: OtlpSinkStats = clean;
    const lines: string[] = [];
    const stop = startDropReporter({ stats: () => stats }, (line) => lines.push(line), 10);
    const wait = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 100));
    await wait();
    assert.equal(lines.length, 0);
    stats = { ...clean, droppedQueueFull: 5 };
    await wait();
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /^otlp: 5 records dropped/);
    await wait();
    assert.equal(lines.length, 1);
    stats = { ...clean, droppedQueueFull: 5, droppedExportFailed: 1 };
    await wait();
    assert.equal(lines.length, 2);
    stats = { ...clean, droppedQueueFull: 5, droppedExportFailed: 1, droppedRejected: 1 };
    await wait();
    assert.equal(lines.length, 3);
    stop();
    stats = { ...clean, droppedQueueFull: 50 };
    await wait();
    assert.equal(lines.length, 3);
  });
});

describe('export failure lines', () => {
  const unavailable = (time: string): ExportFailure => ({
    message: `14 UNAVAILABLE: No connection established. Last error: Protocol error (${time}). Resolution note: `,
    outcome: 'retrying',
    at: 0,
  });

  it('say "retrying" only for a batch that will be retried', () => {
    assert.equal(formatExportFailure({ message: '14 UNAVAILABLE: x', outcome: 'retrying', at: 0 }), 'otlp export failed, retrying: 14 UNAVAILABLE: x');
    const invalid = formatExportFailure({ message: '3 INVALID_ARGUMENT: bad data', outcome: 'failed', at: 0 });
    assert.equal(invalid, 'otlp export failed, not retried (counted as dropped): 3 INVALID_ARGUMENT: bad data');
    const partial = formatExportFailure({ message: 'log records too old', outcome: 'rejected', at: 0 });
    assert.equal(partial, 'otlp export partly rejected by the collector (counted as dropped): log records too old');
    for (const line of [invalid, partial]) assert.doesNotMatch(line, /retrying/);
  });

  it('are written once per failure (grpc-js timestamps aside), a changing one at most once per interval', () => {
    const lines: string[] = [];
    const reporter = new ExportFailureReporter((line) => lines.push(line), 5000);
    reporter.check(undefined, 0);
    assert.equal(lines.length, 0);
    // a down collector: the same failure with a new timestamp at each attempt, for a minute
    for (let t = 1000; t <= 60_000; t += 1000) reporter.check(unavailable(`2026-12-04T16:40:${String(t / 1000 % 60).padStart(2, '0')}.893Z`), t);
    assert.deepEqual(lines, [formatExportFailure(unavailable('2026-12-04T16:40:01.893Z'))]);
    // a message that changes every second: at most one line per 5 s
    for (let t = 61_000; t < 91_000; t += 1000) reporter.check({ message: `error #${t}`, outcome: 'retrying', at: t }, t);
    assert.equal(lines.length, 1 + 6);
    // a failure that stops being retried is said (once the interval allows)
    reporter.check({ message: 'error #90000', outcome: 'failed', at: 91_000 }, 96_000);
    assert.equal(lines.at(-1), 'otlp export failed, not retried (counted as dropped): error #90000');
  });
});
