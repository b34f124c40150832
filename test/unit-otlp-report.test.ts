import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDropReport, startDropReporter } from '../src/otlp/report.ts';
import type { OtlpSinkStats } from '../src/otlp/service.ts';

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
  openConnections: 0,
  openOverflow: 0,
  resourceOverflow: 0,
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

describe('formatDropReport with spans and partial success', () => {
  it('counts rejected records in the total, inside the parentheses, and splits by signal', () => {
    const logs = { ...clean, droppedQueueFull: 4, droppedRejected: 2 };
    const traces = { ...clean, emitted: 5, exported: 4, droppedExportFailed: 1 };
    const line = formatDropReport({ ...clean, droppedQueueFull: 4, droppedExportFailed: 1, droppedRejected: 2, logs, traces, lastError: 'too old' });
    assert.equal(line, 'otlp: 7 records dropped (queue full 4, export failed 1, rejected 2); exported 10, pending 0, retries 2; logs 6, spans 1 dropped; last error: too old');
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
