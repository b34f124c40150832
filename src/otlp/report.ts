/**
 * The one-line drop report the CLI prints to stderr, and a timer that prints
 * it at most once per interval, only when more records were dropped.
 */
import type { OtlpSignalStats, OtlpSinkStats } from './service.ts';

/** Everything dropped, whatever the cause. */
export function droppedTotal(stats: OtlpSignalStats): number {
  return stats.droppedQueueFull + stats.droppedExportFailed + stats.droppedRejected;
}

/**
 * `otlp: 1234 records dropped (queue full 1000, export failed 234); exported 5000,
 * pending 120, retries 7; last error: 14 UNAVAILABLE: ...`, or undefined when
 * nothing was dropped. Totals over log records and spans ("records"); the
 * collector's partial-success rejections appear as `, rejected N` inside the
 * parentheses when there were any, and with both signals exported the split
 * follows (`; logs 1200, spans 34 dropped`).
 */
export function formatDropReport(stats: OtlpSinkStats): string | undefined {
  const dropped = droppedTotal(stats);
  if (dropped === 0) return undefined;
  const rejected = stats.droppedRejected > 0 ? `, rejected ${stats.droppedRejected}` : '';
  const split = stats.logs !== undefined && stats.traces !== undefined ? `; logs ${droppedTotal(stats.logs)}, spans ${droppedTotal(stats.traces)} dropped` : '';
  const last = stats.lastError === undefined ? '' : `; last error: ${stats.lastError}`;
  return (
    `otlp: ${dropped} records dropped (queue full ${stats.droppedQueueFull}, export failed ${stats.droppedExportFailed}${rejected}); ` +
    `exported ${stats.exported}, pending ${stats.pending}, retries ${stats.retries}${split}${last}`
  );
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
