/**
 * A batching processor that is bounded and counts every item it does not
 * deliver, generic over what it carries: log records or spans (LogItem,
 * SpanItem of src/otlp/wire/requests.ts). One mechanism, one set of counts, for both
 * signals.
 *
 * The SDK's batch processors drop items silently when their queue is full
 * and forget a batch whose export failed. This one holds at most
 * `maxQueueSize` items (queued and being exported together), counts each item
 * refused because that bound was reached, each item of a batch whose export
 * finally failed, and each item the collector acknowledged but rejected
 * (OTLP partial success, reported by the exporter as `rejected` on its
 * result). Invariant, at any time:
 *
 *     accepted + droppedQueueFull = offered
 *     accepted = exported + droppedExportFailed + droppedRejected + pending
 *
 * Items may also be deferred: a {@link DeferredItems} source attached with
 * {@link BoundedBatchProcessor.attach} holds the data of items not made yet
 * (counted as pending, within maxQueueSize), and the processor asks it to make
 * them (each reaches {@link BoundedBatchProcessor.add}) only when it is about
 * to export them. An item then lives for one export instead of
 * waiting in the queue: that keeps the queue small in memory and spares the
 * garbage collector from promoting every queued item to the old generation.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_MAX_CONCURRENT_EXPORTS, DEFAULT_OTLP_QUEUE_SIZE, DEFAULT_SCHEDULED_DELAY_MS } from '../../defaults.ts';

export interface BoundedBatchOptions {
  /** Most items held, queued plus being exported. Default 4096 (see OtlpConfig.maxQueueSize). */
  readonly maxQueueSize?: number;
  /** Most items in one export call. Default 512 (capped at maxQueueSize). */
  readonly maxExportBatchSize?: number;
  /** Longest an item waits for its batch to fill before it is sent anyway, ms. Default 1000. */
  readonly scheduledDelayMs?: number;
  /** Export calls in flight at once. Default 2. */
  readonly maxConcurrentExports?: number;
}

/**
 * An export result; `rejected`: how many of the batch's items the collector
 * acknowledged but did not accept (OTLP partial success), counted as dropped.
 */
export type CountedExportResult = ExportResult & { readonly rejected?: number };

/**
 * What the processor sends batches to: the shape LogRecordExporter and
 * SpanExporter share.
 */
export interface ItemExporter<T> {
  export(items: T[], resultCallback: (result: CountedExportResult) => void): void;
  forceFlush?(): Promise<void>;
  /** Failed attempts are not retried any more: an export in flight ends with its current attempt. */
  stopRetrying?(): void;
  shutdown(): Promise<void>;
}

/** Items not made yet, made on demand (see {@link BoundedBatchProcessor.attach}). */
export interface DeferredItems {
  /** How many items it holds. */
  readonly size: number;
  /**
   * Makes up to `max` of its items now, oldest first, each passed to
   * {@link BoundedBatchProcessor.add}, and forgets them. What it took but did not make is counted as an export failure.
   */
  emit(max: number): void;
  /** Forgets every item it holds. */
  clear(): void;
}

const NO_DEFERRED: DeferredItems = {
  size: 0,
  emit: () => undefined,
  clear: () => undefined,
};

/** Item counts; see the invariant in this module's doc. */
export interface ProcessorCounts {
  readonly exported: number;
  readonly droppedQueueFull: number;
  readonly droppedExportFailed: number;
  /** Acknowledged by the collector as rejected (partial success). */
  readonly droppedRejected: number;
  /** Queued or being exported. */
  readonly pending: number;
}

/** What every item carries: the resource it is exported under. */
interface HasResource {
  readonly resource: Resource;
}

export class BoundedBatchProcessor<T extends HasResource> {
  private readonly exporter: ItemExporter<T>;
  private readonly maxQueueSize: number;
  private readonly batchSize: number;
  private readonly delayMs: number;
  private readonly maxConcurrent: number;
  /** FIFO of batches; every batch but the last is full. */
  private readonly batches: T[][] = [];
  private queued = 0;
  private exporting = 0;
  private running = 0;
  private exported = 0;
  private droppedQueueFull = 0;
  private droppedExportFailed = 0;
  private droppedRejected = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The oldest partial batch has waited scheduledDelayMs: send it when an export slot is free. */
  private due = false;
  private flushing = 0;
  private closed = false;
  private sealed = false;
  /** Exports in flight were given up (see abandon): their outcome is ignored. */
  private abandoned = false;
  private shutdownDone: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly roomListeners = new Set<() => void>();
  private deferred: DeferredItems = NO_DEFERRED;
  /** True while {@link deferred} emits: its items are already accepted and counted. */
  private pulling = false;

  constructor(exporter: ItemExporter<T>, options: BoundedBatchOptions = {}) {
    this.exporter = exporter;
    this.maxQueueSize = options.maxQueueSize ?? DEFAULT_OTLP_QUEUE_SIZE;
    this.batchSize = Math.min(options.maxExportBatchSize ?? DEFAULT_EXPORT_BATCH_SIZE, this.maxQueueSize);
    this.delayMs = options.scheduledDelayMs ?? DEFAULT_SCHEDULED_DELAY_MS;
    this.maxConcurrent = options.maxConcurrentExports ?? DEFAULT_MAX_CONCURRENT_EXPORTS;
  }

  counts(): ProcessorCounts {
    return {
      exported: this.exported,
      droppedQueueFull: this.droppedQueueFull,
      droppedExportFailed: this.droppedExportFailed,
      droppedRejected: this.droppedRejected,
      pending: this.pending(),
    };
  }

  /**
   * Takes its items from `source` from now on, when it is about to export
   * them; the source's size counts as pending. Call {@link offered} whenever
   * it grows, after checking {@link room}.
   */
  attach(source: DeferredItems): void {
    this.deferred = source;
  }

  /** How many more items may be accepted now (0 once closed). */
  room(): number {
    return this.closed ? 0 : Math.max(0, this.maxQueueSize - this.pending());
  }

  /**
   * Calls `listener` whenever room may have grown (an export finished and
   * the next batches were taken), always from an export's completion, never
   * from inside {@link add} or {@link offered}: a listener may add items.
   * Returns a function that removes it.
   */
  onRoom(listener: () => void): () => void {
    this.roomListeners.add(listener);
    return () => this.roomListeners.delete(listener);
  }

  /** The attached source grew: sends a batch if one is full, else makes sure the delay timer runs. */
  offered(): void {
    this.pump();
  }

  /** Counts items refused before they reached this processor (as droppedQueueFull). */
  countRefused(count: number): void {
    this.droppedQueueFull += count;
  }

  /** One item in: queued, or refused and counted when the queue is full or closed. */
  add(item: T): void {
    if (this.pulling) {
      // a deferred item, accepted and counted when it was offered
      this.append(item);
      return;
    }
    if (this.closed || this.pending() >= this.maxQueueSize) {
      this.droppedQueueFull++;
      return;
    }
    const tail = this.append(item);
    if (tail.length >= this.batchSize || this.due) this.pump();
    else this.armTimer();
  }

  private append(item: T): T[] {
    let tail = this.batches.at(-1);
    if (tail === undefined || tail.length >= this.batchSize) {
      tail = [];
      this.batches.push(tail);
    }
    tail.push(item);
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

  /** Refuses (and counts) items from now on; queued ones are still sent. */
  close(): void {
    this.closed = true;
  }

  /**
   * Gives up on everything not sent yet: it is counted as droppedExportFailed,
   * and no export starts any more (nor is retried). Exports already in flight
   * end with their current attempt and are counted by its outcome, as they
   * come back: the collector may well have taken them (see {@link settled},
   * {@link abandon}). Returns how many items were given up.
   */
  seal(): number {
    this.closed = true;
    if (this.sealed) return 0;
    this.sealed = true;
    const undelivered = this.queued + this.deferred.size;
    this.droppedExportFailed += undelivered;
    this.deferred.clear();
    this.batches.length = 0;
    this.queued = 0;
    this.clearTimer();
    this.exporter.stopRetrying?.();
    if (this.pending() === 0) this.wakeIdle();
    return undelivered;
  }

  /** Resolves when no export is in flight any more (after {@link seal}: when every outcome is known). */
  settled(): Promise<void> {
    return this.idle();
  }

  /**
   * Counts the exports still in flight as failed and ignores their outcome
   * (the process is about to exit without it). Returns how many items that was.
   */
  abandon(): number {
    this.seal();
    if (this.abandoned) return 0;
    this.abandoned = true;
    const undelivered = this.exporting;
    this.droppedExportFailed += undelivered;
    this.exporting = 0;
    this.wakeIdle();
    return undelivered;
  }

  /** Flushes (unless sealed already), then shuts the exporter down. Idempotent. */
  shutdown(): Promise<void> {
    this.shutdownDone ??= this.shutdownOnce();
    return this.shutdownDone;
  }

  private async shutdownOnce(): Promise<void> {
    this.close();
    if (!this.sealed) await this.forceFlush();
    this.clearTimer();
    await this.exporter.shutdown();
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && !this.sealed) {
      const sendPartial = this.due || this.flushing > 0;
      // Every batch but the last is full; deferred items fill the last one,
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

  /** Has the deferred source make up to `max` items into the last batch; what it loses is counted. */
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

  private startExport(batch: T[]): void {
    this.running++;
    this.exporting += batch.length;
    void this.exportBatch(batch).then((result) => {
      this.running--;
      if (this.abandoned) return;
      this.exporting -= batch.length;
      if (result.code === ExportResultCode.SUCCESS) {
        const rejected = Math.min(batch.length, Math.max(0, Math.floor(result.rejected ?? 0)));
        this.droppedRejected += rejected;
        this.exported += batch.length - rejected;
      } else {
        this.droppedExportFailed += batch.length;
      }
      if (!this.sealed) this.pump();
      if (this.pending() === 0) this.wakeIdle();
      this.notifyRoom();
    });
  }

  private async exportBatch(batch: T[]): Promise<CountedExportResult> {
    // Wait once per resource for its async attributes (e.g. host.id) so that
    // the first request carries them. Items of one resource come together.
    let last: Resource | undefined;
    for (const item of batch) {
      const resource = item.resource;
      if (resource === last) continue;
      last = resource;
      if (resource.asyncAttributesPending) await resource.waitForAsyncAttributes?.();
    }
    return new Promise((resolve) => {
      try {
        this.exporter.export(batch, resolve);
      } catch (error) {
        resolve({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
      }
    });
  }

  private notifyRoom(): void {
    for (const listener of this.roomListeners) {
      try {
        listener();
      } catch {
        // a listener's failure is its own; the pipeline keeps going
      }
    }
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
