import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDropReport, startDropReporter } from '../src/otlp/report.ts';
import type { OtlpSinkStats } from '../src/otlp/service.ts';

const clean: OtlpSinkStats = {
  emitted: 10,
  exported: 10,
  droppedQueueFull: 0,
  droppedExportFailed: 0,
  pending: 0,
  retries: 2,
  lastError: '14 UNAVAILABLE: No connection established',
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
    stop();
    stats = { ...clean, droppedQueueFull: 50 };
    await wait();
    assert.equal(lines.length, 2);
  });
});
