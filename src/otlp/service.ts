/**
 * OtlpSink: TcpEvents in, OTLP/gRPC log records out.
 *
 * Pipeline: events queue ({@link EventQueue}) -> {@link toLogRecord} -> SDK
 * Logger (LoggerProvider) -> {@link BoundedBatchLogRecordProcessor} (bounded,
 * counts drops) -> {@link RetryingLogRecordExporter} (backoff on retryable
 * gRPC errors) -> OTLPLogExporter. Whatever the collector does (absent,
 * restarting, refusing, slow), emit() never blocks or throws, memory stays
 * bounded by the queue size, and every record not delivered is counted.
 *
 * The queue holds the events, not log records: the processor has them made
 * into records (Logger.emit) only when it is about to export them. A queued
 * event costs about a quarter of the heap of a queued LogRecordImpl (310
 * bytes against 1300: the record holds its own attribute object and body), a
 * record lives for one export instead of the whole wait in the queue (less for
 * the garbage collector to promote and mark), and an event refused because
 * the queue is full costs nothing but a count.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HrTime, Logger } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { defaultResource, detectResources, hostDetector, osDetector, resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { TcpEvent } from '../types.ts';
import type { OtlpConfig } from './config.ts';
import { createOtlpGrpcLogExporter, RetryingLogRecordExporter } from './exporter.ts';
import type { RetryPolicy } from './exporter.ts';
import { toLogRecord } from './mapping.ts';
import { BoundedBatchLogRecordProcessor } from './processor.ts';
import type { DeferredRecords } from './processor.ts';

const PACKAGE_NAME = 'tcptracer-otel';

export interface OtlpSinkOptions {
  /** Retry policy for failed exports. Default: DEFAULT_RETRY_POLICY (500 ms doubling to 5 s, give up after 60 s, new channel after 15 s unavailable). */
  readonly retry?: Partial<RetryPolicy>;
  /** Export requests in flight at once. Default 2. */
  readonly maxConcurrentExports?: number;
}

/**
 * Totals since start. At any time:
 * `emitted = exported + droppedQueueFull + droppedExportFailed + pending`.
 */
export interface OtlpSinkStats {
  /** Records offered to emit(). */
  readonly emitted: number;
  /** Records the collector acknowledged. */
  readonly exported: number;
  /** Records refused because the queue was full (or the sink was shutting down). */
  readonly droppedQueueFull: number;
  /** Records given up: non-retryable error, retries exhausted, or undelivered at shutdown. */
  readonly droppedExportFailed: number;
  /** Records queued or being exported. */
  readonly pending: number;
  /** Export retries made. */
  readonly retries: number;
  /** Latest export failure, one line; undefined if none happened. */
  readonly lastError: string | undefined;
}

export class OtlpSink {
  private readonly cfg: OtlpConfig;
  private readonly provider: LoggerProvider;
  private readonly logger: Logger;
  private readonly processor: BoundedBatchLogRecordProcessor;
  private readonly exporter: RetryingLogRecordExporter;
  private readonly queue: EventQueue;
  private emitted = 0;
  private closing = false;
  private shutdownResult: Promise<{ undelivered: number }> | undefined;

  /** @throws UsageError if a TLS file named in `cfg` cannot be read. */
  constructor(cfg: OtlpConfig, options: OtlpSinkOptions = {}) {
    this.cfg = cfg;
    const version = packageVersion();
    let channels = 0;
    this.exporter = new RetryingLogRecordExporter(() => {
      channels++;
      return createOtlpGrpcLogExporter(cfg, `${PACKAGE_NAME}/${version}${channels > 1 ? ` (channel ${channels})` : ''}`);
    }, options.retry);
    this.processor = new BoundedBatchLogRecordProcessor(this.exporter, {
      maxQueueSize: cfg.maxQueueSize,
      maxExportBatchSize: cfg.maxExportBatchSize,
      scheduledDelayMs: cfg.scheduledDelayMs,
      maxConcurrentExports: options.maxConcurrentExports,
    });
    this.provider = new LoggerProvider({ resource: buildResource(cfg, version), processors: [this.processor] });
    this.logger = this.provider.getLogger(PACKAGE_NAME, version);
    this.queue = new EventQueue(this.logger);
    this.processor.attach(this.queue);
  }

  /**
   * Queues the events that fit (each becomes a log record when its batch is
   * exported) and counts the others as droppedQueueFull; never blocks or throws.
   * The events are kept until then: they must not be changed afterwards (the
   * array may be).
   *
   * @param observedAt when user space read these events; default now.
   */
  emit(events: readonly TcpEvent[], observedAt: HrTime = hrTime()): void {
    const count = events.length;
    this.emitted += count;
    const accepted = Math.min(count, this.room());
    if (accepted < count) this.processor.countRefused(count - accepted);
    if (accepted === 0) return;
    this.queue.push(events.slice(0, accepted), observedAt);
    this.processor.offered();
  }

  /** How many more events emit() would accept now (0 once shutting down). */
  room(): number {
    return this.closing ? 0 : this.processor.room();
  }

  /**
   * Counts `count` events refused without being offered (droppedQueueFull),
   * e.g. events the caller did not even decode because {@link room} was 0.
   */
  refuse(count: number): void {
    this.emitted += count;
    this.processor.countRefused(count);
  }

  stats(): OtlpSinkStats {
    return {
      emitted: this.emitted,
      ...this.processor.counts(),
      retries: this.exporter.retries,
      lastError: this.exporter.lastError,
    };
  }

  /**
   * Stops accepting records, tries to deliver what is queued within
   * `deadlineMs`, then shuts the exporter down. Resolves by the deadline
   * (plus timer slack) with the number of records that could not be
   * delivered; those are also counted in droppedExportFailed. Idempotent.
   */
  shutdown(deadlineMs: number = this.cfg.shutdownTimeoutMs): Promise<{ undelivered: number }> {
    this.shutdownResult ??= this.shutdownOnce(deadlineMs);
    return this.shutdownResult;
  }

  private async shutdownOnce(deadlineMs: number): Promise<{ undelivered: number }> {
    this.closing = true;
    this.processor.close();
    const deadline = performance.now() + deadlineMs;
    await settleWithin(this.processor.forceFlush(), deadlineMs);
    const undelivered = this.processor.seal();
    await settleWithin(this.provider.shutdown(), Math.max(0, deadline - performance.now()));
    return { undelivered };
  }
}

/** A FIFO of events waiting to be made into log records, in the arrays they came in. */
class EventQueue implements DeferredRecords {
  private readonly logger: Logger;
  private readonly chunks: { readonly events: readonly TcpEvent[]; readonly observedAt: HrTime }[] = [];
  /** Index in chunks[0] of its first event still queued. */
  private next = 0;
  size = 0;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  push(events: readonly TcpEvent[], observedAt: HrTime): void {
    this.chunks.push({ events, observedAt });
    this.size += events.length;
  }

  emit(max: number): void {
    let left = max;
    while (left > 0) {
      const chunk = this.chunks[0];
      if (chunk === undefined) break;
      const { events, observedAt } = chunk;
      const end = Math.min(events.length, this.next + left);
      const start = this.next;
      // taken before emitting: a record that fails to be made is lost, not retried forever
      this.size -= end - start;
      left -= end - start;
      if (end === events.length) {
        this.chunks.shift();
        this.next = 0;
      } else {
        this.next = end;
      }
      for (let i = start; i < end; i++) {
        const event = events[i];
        if (event !== undefined) this.logger.emit(toLogRecord(event, observedAt));
      }
    }
  }

  clear(): void {
    this.chunks.length = 0;
    this.next = 0;
    this.size = 0;
  }
}

/** Waits for `promise` (its outcome ignored) or `ms`, whichever comes first. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([promise.then(noop, noop), timeout]);
  clearTimeout(timer);
}

function noop(): void {
  // outcome deliberately ignored
}

/**
 * telemetry.sdk.*, then host.name/host.id/host.arch and os.type/os.version
 * (detected once; host.id resolves asynchronously and the processor waits
 * for it before the first export), service.version, OTEL_RESOURCE_ATTRIBUTES,
 * and service.name last, so that OTEL_SERVICE_NAME wins.
 */
function buildResource(cfg: OtlpConfig, version: string): Resource {
  return defaultResource()
    .merge(detectResources({ detectors: [hostDetector, osDetector] }))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_VERSION]: version }))
    .merge(resourceFromAttributes(cfg.resourceAttributes))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: cfg.serviceName }));
}

/** The version in this package's package.json, found upwards from this file (src/ or dist/src/). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here: keep looking upwards
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
