/**
 * The one-line drop report the CLI prints to stderr, and a timer that prints
 * it at most once per interval, only when more records were dropped; and the
 * export-failure line, printed when the failure changes, at most once per
 * interval.
 */
import type { ExportFailure } from './export/retry.ts';
import type { OtlpSignalStats, OtlpSinkStats } from './sink.ts';

/** Everything dropped, whatever the cause. */
export function droppedTotal(stats: OtlpSignalStats): number {
  return stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected;
}

/**
 * `otlp: 1234 records dropped (queue full 1000, export failed 234); exported 5000,
 * pending 120, retries 7; last error: 14 UNAVAILABLE: ...`, or undefined when
 * nothing was dropped. Totals over log records and spans ("records"); the
 * collector's partial-success rejections appear as `, rejected N` inside the
 * parentheses when there were any, and with more than one signal exported
 * the split follows (`; logs 1200, spans 34, metric points 0 dropped`).
 */
export function formatDropReport(stats: OtlpSinkStats): string | undefined {
  const dropped = droppedTotal(stats);
  if (dropped === 0) return undefined;
  const rejected = stats.droppedRejected > 0 ? `, rejected ${stats.droppedRejected}` : '';
  const signals = [
    stats.logs && `logs ${droppedTotal(stats.logs)}`,
    stats.traces && `spans ${droppedTotal(stats.traces)}`,
    stats.metrics && `metric points ${droppedTotal(stats.metrics)}`,
  ].filter((part) => part !== undefined);
  const split = signals.length > 1 ? `; ${signals.join(', ')} dropped` : '';
  const last = stats.lastError === undefined ? '' : `; last error: ${stats.lastError}`;
  return (
    `otlp: ${dropped} records dropped (queue full ${stats.droppedQueueFull}, export failed ${stats.droppedExportFailed}${rejected}); ` +
    `exported ${stats.exported}, pending ${stats.pending}, retries ${stats.retries}${split}${last}`
  );
}

/**
 * `otlp: sampled out (not exported, not lost): 120 records, 30 spans`, or
 * undefined when nothing was sampled out (no sampler, or it kept everything).
 * Only the exported signals are named.
 */
export function formatSampledReport(stats: OtlpSinkStats): string | undefined {
  if (stats.sampledOut === 0) return undefined;
  const parts = [];
  if (stats.logs !== undefined) parts.push(`${stats.logs.sampledOut} records`);
  if (stats.traces !== undefined) parts.push(`${stats.traces.sampledOut} spans`);
  return `otlp: sampled out (not exported, not lost): ${parts.join(', ')}`;
}

/**
 * Every `intervalMs` (default 5000), writes {@link formatDropReport}'s line if
 * the dropped total grew since the last line written. The timer does not keep
 * the process alive. Returns a function that stops it.
 */
export function startDropReporter(
  source: { stats(): OtlpSinkStats },
  write: (line: string) => void,
  intervalMs = 5000,
): () => void {
  let reported = 0;
  const timer = setInterval(() => {
    const stats = source.stats();
    const dropped = droppedTotal(stats);
    const line = formatDropReport(stats);
    if (dropped > reported && line !== undefined) {
      reported = dropped;
      write(line);
    }
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}

/** One line saying what failed and what became of the batch: retried, or given up / rejected and counted. */
export function formatExportFailure(failure: ExportFailure): string {
  switch (failure.outcome) {
    case 'retrying':
      return `otlp export failed, retrying: ${failure.message}`;
    case 'failed':
      return `otlp export failed, not retried (counted as dropped): ${failure.message}`;
    case 'rejected':
      return `otlp export partly rejected by the collector (counted as dropped): ${failure.message}`;
  }
}

/** grpc-js puts the time of the last connection error in its messages: ` (2026-12-04T16:35:22.578Z)`. */
const TIMESTAMP = / ?\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\)/g;

/**
 * Which export failures to write: one whose line differs from the last one
 * written (timestamps aside: the same failure is written once) is written
 * when nothing was written for `intervalMs`, else left for a later check; so
 * a message that keeps changing appears at most once per interval, and the
 * first failure at once.
 */
export class ExportFailureReporter {
  private readonly write: (line: string) => void;
  private readonly intervalMs: number;
  private lastKey: string | undefined;
  private lastWrittenAt = -Infinity;

  constructor(write: (line: string) => void, intervalMs: number) {
    this.write = write;
    this.intervalMs = intervalMs;
  }

  /** Writes `failure`'s line if it is due at `now` (ms, any monotonic clock). */
  check(failure: ExportFailure | undefined, now: number): void {
    if (failure === undefined) return;
    const line = formatExportFailure(failure);
    const key = line.replace(TIMESTAMP, '');
    if (key === this.lastKey || now - this.lastWrittenAt < this.intervalMs) return;
    this.lastKey = key;
    this.lastWrittenAt = now;
    this.write(line);
  }
}

/**
 * Every `pollMs` (default 1000: a failure is said promptly), passes the
 * source's latest failure to an {@link ExportFailureReporter} of `intervalMs`
 * (default 5000). The timer does not keep the process alive. Returns a
 * function that stops it.
 */
export function startExportFailureReporter(
  source: { exportFailure(): ExportFailure | undefined },
  write: (line: string) => void,
  intervalMs = 5000,
  pollMs = 1000,
): () => void {
  const reporter = new ExportFailureReporter(write, intervalMs);
  const timer = setInterval(() => {
    reporter.check(source.exportFailure(), performance.now());
  }, pollMs);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}
