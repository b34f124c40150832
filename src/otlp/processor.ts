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
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { LogRecordExporter, LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';

export interface BoundedBatchOptions {
  /** Most records held, queued plus being exported. Default 65536. */
  readonly maxQueueSize?: number;
  /** Most records in one export call. Default 512 (capped at maxQueueSize). */
  readonly maxExportBatchSize?: number;
  /** Longest a record waits for its batch to fill before it is sent anyway, ms. Default 1000. */
  readonly scheduledDelayMs?: number;
  /** Export calls in flight at once. Default 2. */
  readonly maxConcurrentExports?: number;
}

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

  constructor(exporter: LogRecordExporter, options: BoundedBatchOptions = {}) {
    this.exporter = exporter;
    this.maxQueueSize = options.maxQueueSize ?? 65_536;
    this.batchSize = Math.min(options.maxExportBatchSize ?? 512, this.maxQueueSize);
    this.delayMs = options.scheduledDelayMs ?? 1000;
    this.maxConcurrent = options.maxConcurrentExports ?? 2;
  }

  counts(): ProcessorCounts {
    return {
      exported: this.exported,
      droppedQueueFull: this.droppedQueueFull,
      droppedExportFailed: this.droppedExportFailed,
      pending: this.queued + this.exporting,
    };
  }

  /** Counts records refused before they reached this processor (as droppedQueueFull). */
  countRefused(count: number): void {
    this.droppedQueueFull += count;
  }

  onEmit(record: ReadableLogRecord): void {
    if (this.closed || this.queued + this.exporting >= this.maxQueueSize) {
      this.droppedQueueFull++;
      return;
    }
    let tail = this.batches.at(-1);
    if (tail === undefined || tail.length >= this.batchSize) {
      tail = [];
      this.batches.push(tail);
    }
    tail.push(record);
    this.queued++;
    if (tail.length >= this.batchSize || this.due) this.pump();
    else this.armTimer();
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
    const undelivered = this.queued + this.exporting;
    this.droppedExportFailed += undelivered;
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
      const head = this.batches[0];
      if (head === undefined) break;
      const partial = head.length < this.batchSize;
      if (partial && !this.due && this.flushing === 0) break;
      this.batches.shift();
      if (partial) this.due = false;
      this.queued -= head.length;
      this.startExport(head);
    }
    if (this.batches.length === 0) this.due = false;
    this.armTimer();
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
      if (this.queued + this.exporting === 0) this.wakeIdle();
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
    if (this.timer !== undefined || this.due || this.sealed || this.batches.length === 0) return;
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
    if (this.queued + this.exporting === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
