import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { BoundedBatchProcessor } from '../src/otlp/export/processor.ts';
import type { BoundedBatchOptions, DeferredItems, ItemExporter, ProcessorCounts } from '../src/otlp/export/processor.ts';

/** What these tests send: a numbered record. */
interface Item {
  readonly resource: Resource;
  readonly body: string;
}

const RESOURCE = emptyResource();

/** Makes items into the processor, as the sink's queues do. */
interface Logger {
  emit(record: { body: string }): void;
}

/** Holds every export until the test settles it. */
class ManualExporter implements ItemExporter<Item> {
  readonly calls: { records: Item[]; done: (result: ExportResult) => void }[] = [];
  shutdowns = 0;
  export(records: Item[], done: (result: ExportResult) => void): void {
    this.calls.push({ records, done });
  }
  settle(index: number, ok: boolean): void {
    this.calls[index]?.done(ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error('no') });
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    this.shutdowns++;
    return Promise.resolve();
  }
}

function setup(options: BoundedBatchOptions): { exporter: ManualExporter; processor: BoundedBatchProcessor<Item>; logger: Logger } {
  const exporter = new ManualExporter();
  const processor = new BoundedBatchProcessor<Item>(exporter, options);
  const logger: Logger = {
    emit: (record) => {
      processor.add({ resource: RESOURCE, body: record.body });
    },
  };
  return { exporter, processor, logger };
}

function emit(logger: Logger, count: number, from = 0): void {
  for (let i = from; i < from + count; i++) logger.emit({ body: `r${i}` });
}

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Deferred records `d0`, `d1`, ...: emitted through the logger only when the processor asks. */
class NumberedSource implements DeferredItems {
  size = 0;
  /** Records made so far. */
  made = 0;
  private readonly logger: Logger;
  constructor(logger: Logger) {
    this.logger = logger;
  }
  add(count: number): void {
    this.size += count;
  }
  emit(max: number): void {
    const n = Math.min(max, this.size);
    this.size -= n;
    for (let i = 0; i < n; i++) this.logger.emit({ body: `d${this.made++}` });
  }
  clear(): void {
    this.size = 0;
  }
}

/** A processor with a NumberedSource attached; offer() adds what fits, as OtlpSink.emit does. */
function setupDeferred(options: BoundedBatchOptions): ReturnType<typeof setup> & { source: NumberedSource; offer: (count: number) => void } {
  const parts = setup(options);
  const source = new NumberedSource(parts.logger);
  parts.processor.attach(source);
  const offer = (count: number): void => {
    const accepted = Math.min(count, parts.processor.room());
    parts.processor.countRefused(count - accepted);
    if (accepted === 0) return;
    source.add(accepted);
    parts.processor.offered();
  };
  return { ...parts, source, offer };
}

function assertInvariant(counts: ProcessorCounts, offered: number): void {
  assert.equal(counts.exported + counts.droppedQueueFull + counts.droppedExportFailed + counts.droppedRejected + counts.pending, offered);
}

describe('BoundedBatchProcessor', () => {
  it('sends full batches at once, in order, at most maxConcurrentExports at a time', async () => {
    const { exporter, processor, logger } = setup({ maxQueueSize: 100, maxExportBatchSize: 4, maxConcurrentExports: 2, scheduledDelayMs: 60_000 });
    emit(logger, 12);
    await tick();
    assert.equal(exporter.calls.length, 2);
    assert.deepEqual(exporter.calls[0]?.records.map((r) => r.body), ['r0', 'r1', 'r2', 'r3']);
    exporter.settle(0, true);
    await tick();
    assert.equal(exporter.calls.length, 3);
    assert.deepEqual(exporter.calls[2]?.records.map((r) => r.body), ['r8', 'r9', 'r10', 'r11']);
    assert.deepEqual(processor.counts(), { exported: 4, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 0, pending: 8 });
  });

  it('bounds queued plus in-flight records and counts each refused one', async () => {
    const { exporter, processor, logger } = setup({ maxQueueSize: 10, maxExportBatchSize: 4, maxConcurrentExports: 1, scheduledDelayMs: 60_000 });
    emit(logger, 25);
    await tick();
    assert.equal(exporter.calls.length, 1);
    assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 15, droppedExportFailed: 0, droppedRejected: 0, pending: 10 });
    exporter.settle(0, false);
    await tick();
    assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 15, droppedExportFailed: 4, droppedRejected: 0, pending: 6 });
    emit(logger, 5, 25);
    assertInvariant(processor.counts(), 30);
    assert.equal(processor.counts().droppedQueueFull, 16);
  });

  it('sends a partial batch after scheduledDelayMs', async () => {
    const { exporter, logger } = setup({ maxExportBatchSize: 100, scheduledDelayMs: 30 });
    emit(logger, 3);
    await tick(5);
    assert.equal(exporter.calls.length, 0);
    await tick(80);
    assert.equal(exporter.calls.length, 1);
    assert.equal(exporter.calls[0]?.records.length, 3);
  });

  it('forceFlush sends partial batches and resolves when all exports completed', async () => {
    const { exporter, processor, logger } = setup({ maxExportBatchSize: 100, scheduledDelayMs: 60_000 });
    emit(logger, 3);
    let flushed = false;
    const flush = processor.forceFlush().then(() => (flushed = true));
    await tick();
    assert.equal(exporter.calls.length, 1);
    assert.equal(flushed, false);
    exporter.settle(0, true);
    await flush;
    assert.deepEqual(processor.counts(), { exported: 3, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 0, pending: 0 });
  });

  it('seal gives up what was not sent; an export in flight is counted by its outcome', async () => {
    const { exporter, processor, logger } = setup({ maxExportBatchSize: 2, maxConcurrentExports: 1, scheduledDelayMs: 60_000 });
    emit(logger, 5);
    await tick();
    processor.close();
    emit(logger, 1, 5);
    // one batch of 2 is in flight, 3 were never sent
    assert.equal(processor.seal(), 3);
    assert.equal(processor.seal(), 0);
    assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 1, droppedExportFailed: 3, droppedRejected: 0, pending: 2 });
    const settled = processor.settled();
    exporter.settle(0, true);
    await settled;
    assert.deepEqual(processor.counts(), { exported: 2, droppedQueueFull: 1, droppedExportFailed: 3, droppedRejected: 0, pending: 0 });
    assert.equal(exporter.calls.length, 1, 'nothing is sent after seal');
    await processor.shutdown();
    assert.equal(exporter.shutdowns, 1);
  });

  it('abandon counts the exports still in flight as failed and ignores their late outcome', async () => {
    const { exporter, processor, logger } = setup({ maxExportBatchSize: 2, maxConcurrentExports: 1, scheduledDelayMs: 60_000 });
    emit(logger, 3);
    await tick();
    assert.equal(processor.seal(), 1);
    assert.equal(processor.abandon(), 2);
    assert.equal(processor.abandon(), 0);
    exporter.settle(0, true);
    await tick();
    assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 0, droppedExportFailed: 3, droppedRejected: 0, pending: 0 });
  });

  describe('with deferred records', () => {
    it('makes records only for the batch being sent, and counts what does not fit without making it', async () => {
      const { exporter, processor, source, offer } = setupDeferred({ maxQueueSize: 10, maxExportBatchSize: 4, maxConcurrentExports: 1, scheduledDelayMs: 60_000 });
      offer(3);
      assert.equal(source.made, 0);
      assert.equal(exporter.calls.length, 0);
      offer(22);
      // one full batch went out; the rest waits unmade, up to the queue size
      assert.equal(exporter.calls.length, 1);
      assert.deepEqual(exporter.calls[0]?.records.map((r) => r.body), ['d0', 'd1', 'd2', 'd3']);
      assert.equal(source.made, 4);
      assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 15, droppedExportFailed: 0, droppedRejected: 0, pending: 10 });
      assert.equal(processor.room(), 0);
      exporter.settle(0, true);
      await tick();
      assert.equal(exporter.calls.length, 2);
      assert.equal(source.made, 8);
      assert.deepEqual(processor.counts(), { exported: 4, droppedQueueFull: 15, droppedExportFailed: 0, droppedRejected: 0, pending: 6 });
      offer(5);
      assertInvariant(processor.counts(), 30);
      assert.equal(processor.counts().droppedQueueFull, 16);
    });

    it('sends a partial batch after scheduledDelayMs, and forceFlush sends the rest', async () => {
      const { exporter, processor, source, offer } = setupDeferred({ maxExportBatchSize: 100, maxConcurrentExports: 1, scheduledDelayMs: 30 });
      offer(3);
      await tick(5);
      assert.equal(source.made, 0);
      await tick(80);
      assert.equal(exporter.calls.length, 1);
      assert.deepEqual(exporter.calls[0]?.records.map((r) => r.body), ['d0', 'd1', 'd2']);
      offer(2);
      const flushed = processor.forceFlush();
      exporter.settle(0, true);
      await tick();
      assert.equal(exporter.calls.length, 2);
      assert.deepEqual(exporter.calls[1]?.records.map((r) => r.body), ['d3', 'd4']);
      exporter.settle(1, true);
      await flushed;
      assert.deepEqual(processor.counts(), { exported: 5, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 0, pending: 0 });
    });

    it('fills a partial batch of records emitted directly with deferred ones', async () => {
      const { exporter, logger, source, offer } = setupDeferred({ maxExportBatchSize: 4, scheduledDelayMs: 60_000 });
      emit(logger, 2);
      offer(3);
      await tick();
      assert.equal(exporter.calls.length, 1);
      assert.deepEqual(exporter.calls[0]?.records.map((r) => r.body), ['r0', 'r1', 'd0', 'd1']);
      assert.equal(source.size, 1);
    });

    it('counts records the source takes but does not emit as export failures', async () => {
      const { exporter, processor, source, offer } = setupDeferred({ maxExportBatchSize: 4, scheduledDelayMs: 60_000 });
      source.emit = (max: number): void => {
        source.size -= Math.min(max, source.size);
        throw new Error('cannot make records');
      };
      offer(4);
      await tick();
      assert.equal(exporter.calls.length, 0);
      assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 0, droppedExportFailed: 4, droppedRejected: 0, pending: 0 });
    });

    it('seal gives up deferred records too', async () => {
      const { exporter, processor, source, offer } = setupDeferred({ maxExportBatchSize: 2, maxConcurrentExports: 1, scheduledDelayMs: 60_000 });
      offer(5);
      await tick();
      assert.equal(exporter.calls.length, 1);
      assert.equal(processor.seal(), 3, 'the 3 deferred; the 2 in flight are counted by their outcome');
      assert.equal(source.size, 0);
      assert.equal(source.made, 2);
      offer(1);
      assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 1, droppedExportFailed: 3, droppedRejected: 0, pending: 2 });
      exporter.settle(0, false);
      await processor.settled();
      assert.deepEqual(processor.counts(), { exported: 0, droppedQueueFull: 1, droppedExportFailed: 5, droppedRejected: 0, pending: 0 });
    });
  });

  it('counts items a partial success rejected as droppedRejected, not exported', async () => {
    const { exporter, processor, logger } = setup({ maxExportBatchSize: 4, scheduledDelayMs: 60_000 });
    emit(logger, 4);
    await tick();
    exporter.calls[0]?.done({ code: ExportResultCode.SUCCESS, rejected: 3 } as ExportResult);
    await tick();
    assert.deepEqual(processor.counts(), { exported: 1, droppedQueueFull: 0, droppedExportFailed: 0, droppedRejected: 3, pending: 0 });
    assertInvariant(processor.counts(), 4);
  });

  it('calls onRoom listeners after an export completes, never from inside add', async () => {
    const { exporter, processor, logger } = setup({ maxQueueSize: 4, maxExportBatchSize: 4, scheduledDelayMs: 60_000 });
    const rooms: number[] = [];
    const off = processor.onRoom(() => rooms.push(processor.room()));
    emit(logger, 4);
    assert.deepEqual(rooms, []);
    await tick();
    exporter.settle(0, true);
    await tick();
    assert.deepEqual(rooms, [4]);
    off();
    emit(logger, 4);
    await tick();
    exporter.settle(1, true);
    await tick();
    assert.deepEqual(rooms, [4]);
  });

  it('shutdown is idempotent: the exporter is shut down once', async () => {
    const { exporter, processor } = setup({});
    await Promise.all([processor.shutdown(), processor.shutdown()]);
    await processor.shutdown();
    assert.equal(exporter.shutdowns, 1);
  });
});
