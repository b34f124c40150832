/**
 * The one-line drop report the CLI prints to stderr, and a timer that prints
 * it at most once per interval, only when more records were dropped.
 */
import type { OtlpSinkStats } from './service.ts';

/**
 * `otlp: 1234 records dropped (queue full 1000, export failed 234); exported 5000,
 * pending 120, retries 7; last error: 14 UNAVAILABLE: ...`, or undefined when
 * nothing was dropped.
 */
export function formatDropReport(stats: OtlpSinkStats): string | undefined {
  const dropped = stats.droppedQueueFull + stats.droppedExportFailed;
  if (dropped === 0) return undefined;
  const last = stats.lastError === undefined ? '' : `; last error: ${stats.lastError}`;
  return (
    `otlp: ${dropped} records dropped (queue full ${stats.droppedQueueFull}, export failed ${stats.droppedExportFailed}); ` +
    `exported ${stats.exported}, pending ${stats.pending}, retries ${stats.retries}${last}`
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
    const dropped = stats.droppedQueueFull + stats.droppedExportFailed;
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
