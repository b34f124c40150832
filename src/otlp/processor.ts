/**
 * A batching LogRecordProcessor that is bounded and counts every record it
 * does not deliver.
 *
 * The SDK's BatchLogRecordProcessor drops records silently when its queue is
 * full and forgets a batch whose export failed. This one holds at most
 * `maxQueueSize` records (queued and being exported together), counts each
 * record refused because that bound was reached, and counts each record of a
 * batch whose export finally failed. Invariant, at any time:
 *
 *     accepted + droppedQueueFull = offered
 *     accepted = exported + droppedExportFailed + pending
 *
 * Records may also be deferred: a {@link DeferredRecords} source attached with
 * {@link BoundedBatchLogRecordProcessor.attach} holds the data of records not
 * made yet (counted as pending, within maxQueueSize), and the processor asks it
 * to emit them, through the Logger, only when it is about to export them. A
 * record then lives for one export instead of waiting in the queue: that keeps
 * the queue small in memory and spares the garbage collector from promoting
 * every queued record to the old generation.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { LogRecordExporter, LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_QUEUE_SIZE } from './config.ts';

export interface BoundedBatchOptions {
  /** Most records held, queued plus being exported. Default 16384 (see OtlpConfig.maxQueueSize). */
  readonly maxQueueSize?: number;
  /** Most records in one export call. Default 512 (capped at maxQueueSize). */
  readonly maxExportBatchSize?: number;
  /** Longest a record waits for its batch to fill before it is sent anyway, ms. Default 1000. */
  readonly scheduledDelayMs?: number;
  /** Export calls in flight at once. Default 2. */
  readonly maxConcurrentExports?: number;
}

/** Records not made yet, emitted on demand (see {@link BoundedBatchLogRecordProcessor.attach}). */
export interface DeferredRecords {
  /** How many records it holds. */
  readonly size: number;
  /**
   * Emits up to `max` of its records now, oldest first, through a Logger of
   * the provider this processor belongs to (each reaches {@link BoundedBatchLogRecordProcessor.onEmit}),
   * and forgets them. What it took but did not emit is counted as an export failure.
   */
  emit(max: number): void;
  /** Forgets every record it holds. */
  clear(): void;
}

const NO_DEFERRED: DeferredRecords = {
  size: 0,
  emit: () => undefined,
  clear: () => undefined,
};

/** Record counts; see the invariant in this module's doc. */
export interface ProcessorCounts {
  readonly exported: number;
  readonly droppedQueueFull: number;
  readonly droppedExportFailed: number;
  /** Queued or being exported. */
  readonly pending: number;
}

export class BoundedBatchLogRecordProcessor implements LogRecordProcessor {
  private readonly exporter: LogRecordExporter;
  private readonly maxQueueSize: number;
  private readonly batchSize: number;
  private readonly delayMs: number;
  private readonly maxConcurrent: number;
  /** FIFO of batches; every batch but the last is full. */
  private readonly batches: ReadableLogRecord[][] = [];
  private queued = 0;
  private exporting = 0;
  private running = 0;
  private exported = 0;
  private droppedQueueFull = 0;
  private droppedExportFailed = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The oldest partial batch has waited scheduledDelayMs: send it when an export slot is free. */
  private due = false;
  private flushing = 0;
  private closed = false;
  private sealed = false;
  private idleWaiters: (() => void)[] = [];
  private deferred: DeferredRecords = NO_DEFERRED;
  /** True while {@link deferred} emits: its records are already accepted and counted. */
  private pulling = false;

  constructor(exporter: LogRecordExporter, options: BoundedBatchOptions = {}) {
    this.exporter = exporter;
    this.maxQueueSize = options.maxQueueSize ?? DEFAULT_QUEUE_SIZE;
    this.batchSize = Math.min(options.maxExportBatchSize ?? DEFAULT_EXPORT_BATCH_SIZE, this.maxQueueSize);
    this.delayMs = options.scheduledDelayMs ?? 1000;
    this.maxConcurrent = options.maxConcurrentExports ?? 2;
  }

  counts(): ProcessorCounts {
    return {
      exported: this.exported,
      droppedQueueFull: this.droppedQueueFull,
      droppedExportFailed: this.droppedExportFailed,
      pending: this.pending(),
    };
  }

  /**
   * Takes its records from `source` from now on, when it is about to export
   * them; the source's size counts as pending. Call {@link offered} whenever
   * it grows, after checking {@link room}.
   */
  attach(source: DeferredRecords): void {
    this.deferred = source;
  }

  /** How many more records may be accepted now (0 once closed). */
  room(): number {
    return this.closed ? 0 : Math.max(0, this.maxQueueSize - this.pending());
  }

  /** The attached source grew: sends a batch if one is full, else makes sure the delay timer runs. */
  offered(): void {
    this.pump();
  }

  /** Counts records refused before they reached this processor (as droppedQueueFull). */
  countRefused(count: number): void {
    this.droppedQueueFull += count;
  }

  onEmit(record: ReadableLogRecord): void {
    if (this.pulling) {
      // a deferred record, accepted and counted when it was offered
      this.append(record);
      return;
    }
    if (this.closed || this.pending() >= this.maxQueueSize) {
      this.droppedQueueFull++;
      return;
    }
    const tail = this.append(record);
    if (tail.length >= this.batchSize || this.due) this.pump();
    else this.armTimer();
  }

  private append(record: ReadableLogRecord): ReadableLogRecord[] {
    let tail = this.batches.at(-1);
    if (tail === undefined || tail.length >= this.batchSize) {
      tail = [];
      this.batches.push(tail);
    }
    tail.push(record);
    this.queued++;
    return tail;
  }

  private pending(): number {
    return this.queued + this.exporting + this.deferred.size;
  }

  /** Sends everything queued now; resolves when nothing is pending (however long retries take). */
  async forceFlush(): Promise<void> {
    this.flushing++;
    try {
      this.pump();
      await this.idle();
    } finally {
      this.flushing--;
    }
  }

  /** Refuses (and counts) records from now on; queued ones are still sent. */
  close(): void {
    this.closed = true;
  }

  /**
   * Gives up on everything still pending: it is counted as droppedExportFailed
   * and exports that complete later are ignored. Returns how many records that was.
   */
  seal(): number {
    this.closed = true;
    if (this.sealed) return 0;
    this.sealed = true;
    const undelivered = this.pending();
    this.droppedExportFailed += undelivered;
    this.deferred.clear();
    this.batches.length = 0;
    this.queued = 0;
    this.exporting = 0;
    this.clearTimer();
    this.wakeIdle();
    return undelivered;
  }

  /** Flushes (unless sealed already), then shuts the exporter down. */
  async shutdown(): Promise<void> {
    this.close();
    if (!this.sealed) await this.forceFlush();
    this.clearTimer();
    await this.exporter.shutdown();
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && !this.sealed) {
      const sendPartial = this.due || this.flushing > 0;
      // Every batch but the last is full; deferred records fill the last one,
      // made only now that it is about to be sent.
      const have = this.batches[0]?.length ?? 0;
      if (this.batches.length <= 1 && have < this.batchSize && this.deferred.size > 0) {
        if (have + this.deferred.size >= this.batchSize || sendPartial) this.pull(this.batchSize - have);
      }
      const head = this.batches[0];
      if (head === undefined) break;
      const partial = head.length < this.batchSize;
      if (partial && !sendPartial) break;
      this.batches.shift();
      if (partial) this.due = false;
      this.queued -= head.length;
      this.startExport(head);
    }
    if (this.batches.length === 0 && this.deferred.size === 0) this.due = false;
    this.armTimer();
  }

  /** Has the deferred source emit up to `max` records into the last batch; what it loses is counted. */
  private pull(max: number): void {
    const sizeBefore = this.deferred.size;
    const queuedBefore = this.queued;
    this.pulling = true;
    try {
      this.deferred.emit(max);
    } catch {
      // counted below
    } finally {
      this.pulling = false;
    }
    const lost = sizeBefore - this.deferred.size - (this.queued - queuedBefore);
    if (lost > 0) this.droppedExportFailed += lost;
  }

  private startExport(batch: ReadableLogRecord[]): void {
    this.running++;
    this.exporting += batch.length;
    void this.exportBatch(batch).then((ok) => {
      this.running--;
      if (this.sealed) return;
      this.exporting -= batch.length;
      if (ok) this.exported += batch.length;
      else this.droppedExportFailed += batch.length;
      this.pump();
      if (this.pending() === 0) this.wakeIdle();
    });
  }

  private async exportBatch(batch: ReadableLogRecord[]): Promise<boolean> {
    // Every record shares the provider's resource: wait once for its async
    // attributes (e.g. host.id) so the first request carries them.
    const resource = batch[0]?.resource;
    if (resource?.asyncAttributesPending) await resource.waitForAsyncAttributes?.();
    return new Promise((resolve) => {
      try {
        this.exporter.export(batch, (result) => {
          resolve(result.code === ExportResultCode.SUCCESS);
        });
      } catch {
        resolve(false);
      }
    });
  }

  private armTimer(): void {
    if (this.timer !== undefined || this.due || this.sealed || (this.batches.length === 0 && this.deferred.size === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      this.pump();
    }, this.delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private idle(): Promise<void> {
    if (this.pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
