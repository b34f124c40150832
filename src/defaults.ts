/**
 * The default of every tunable setting, in one place: the CLI, the tracer
 * and the OTLP layers import them from here (the native loader and the probe
 * take whatever the tracer passes).
 */

/** Ring buffer for the table and JSON, read as fast as it fills: 8 MiB, about 61k events. */
export const DEFAULT_RINGBUF_BYTES = 8 << 20;

/**
 * Ring buffer with --otlp exporting logs or traces, where it is the queue in
 * front of the exporter: 16 MiB, about 110k events (152 bytes each with its
 * header): a burst of 20000 connections (80000 events) with room to spare, or
 * about half a second of the full connection rate of a 2-core machine; past
 * that, events are lost there and counted. Locked kernel memory, mapped
 * read-only into the tracer once (bpf/loader/ring.c): RSS counts it once.
 * 64 MiB (the default before) held four times the burst for 48 MB more RSS.
 */
export const DEFAULT_OTLP_RINGBUF_BYTES = 16 << 20;

/**
 * The ring buffer's default for the signals exported: the OTLP queue when an
 * event becomes a log record or a span (one exported item per event, read at
 * the exporter's pace), the plain 8 MiB otherwise (no OTLP, or signals that
 * aggregate events as they are read, such as metrics).
 */
export function defaultRingbufBytes(signals: readonly string[] | undefined): number {
  return signals?.some((s) => s === 'logs' || s === 'traces') ? DEFAULT_OTLP_RINGBUF_BYTES : DEFAULT_RINGBUF_BYTES;
}

/** The drain thread wakes at least this often, ms: the longest an event waits below the wake-up threshold. */
export const DEFAULT_POLL_MS = 100;

/** Records (or spans) held in memory per OTLP signal, queued plus being exported. */
export const DEFAULT_OTLP_QUEUE_SIZE = 4096;

/** Most records (or spans) in one OTLP export request. */
export const DEFAULT_EXPORT_BATCH_SIZE = 512;

/** Longest a record waits for its batch to fill before it is sent anyway, ms (OTEL_BLRP_SCHEDULE_DELAY's default). */
export const DEFAULT_SCHEDULED_DELAY_MS = 1000;

/** OTLP export calls in flight at once, per signal. */
export const DEFAULT_MAX_CONCURRENT_EXPORTS = 2;
