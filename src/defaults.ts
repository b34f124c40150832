/**
 * The default of every tunable setting, in one place: the CLI, the tracer
 * and the OTLP layers import them from here (the native loader and the probe
 * take whatever the tracer passes).
 */

/** Ring buffer for the table and JSON, read as fast as it fills: 8 MiB, about 61k events. */
export const DEFAULT_RINGBUF_BYTES = 8 << 20;

/**
 * Ring buffer with --otlp, where it is the queue in front of the exporter: 64 MiB,
 * about 440k events (152 bytes each with its header), several seconds of the
 * full connection rate of a 2-core machine. Locked kernel memory, mapped
 * read-only into the tracer.
 */
export const DEFAULT_OTLP_RINGBUF_BYTES = 64 << 20;

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
