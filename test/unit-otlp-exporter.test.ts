import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { ItemExporter } from '../src/otlp/export/processor.ts';
import { backoffDelay, DEFAULT_RETRY_POLICY, describeExportError, isRetryable, RetryingExporter } from '../src/otlp/export/retry.ts';
import type { RetryPolicy } from '../src/otlp/export/retry.ts';

function grpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** An exporter that answers each call with the next scripted result (SUCCESS once the script is used up). */
class ScriptedExporter implements LogRecordExporter {
  calls = 0;
  shutdowns = 0;
  private readonly script: ExportResult[];
  constructor(script: ExportResult[]) {
    this.script = script;
  }
  export(_records: ReadableLogRecord[], done: (result: ExportResult) => void): void {
    this.calls++;
    const result = this.script.shift() ?? { code: ExportResultCode.SUCCESS };
    setImmediate(done, result);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    this.shutdowns++;
    return Promise.resolve();
  }
}

const failed = (code: number): ExportResult => ({ code: ExportResultCode.FAILED, error: grpcError(code, `${code} SOMETHING: detail`) });
const fast = { initialBackoffMs: 5, maxBackoffMs: 20, jitter: 0 };

function exportOnce(exporter: ItemExporter<ReadableLogRecord>): Promise<ExportResult> {
  return new Promise((resolve) => {
    exporter.export([], resolve);
  });
}

describe('isRetryable', () => {
  it('retries exactly the OTLP retryable gRPC codes', () => {
    const retryable = [1, 4, 8, 10, 11, 14, 15];
    for (let code = 0; code <= 16; code++) assert.equal(isRetryable(grpcError(code, 'x')), retryable.includes(code), `code ${code}`);
    assert.equal(isRetryable(new Error('Nothing to send')), false);
    assert.equal(isRetryable(undefined), false);
    assert.equal(isRetryable({ code: '14' }), false);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially to the cap, within the jitter band', () => {
    const p = DEFAULT_RETRY_POLICY;
    assert.equal(backoffDelay(p, 0, () => 0.5), 500);
    assert.equal(backoffDelay(p, 2, () => 0.5), 2000);
    assert.equal(backoffDelay(p, 10, () => 0.5), 5000);
    assert.equal(backoffDelay(p, 0, () => 0), 400);
    assert.equal(backoffDelay(p, 0, () => 1), 600);
    assert.equal(backoffDelay(p, 30, () => 1), 6000);
  });
});

describe('describeExportError', () => {
  it('keeps the first line of the message', () => {
    assert.equal(describeExportError(new Error('14 UNAVAILABLE: down\nstack')), '14 UNAVAILABLE: down');
    assert.equal(describeExportError('plain'), 'plain');
    assert.equal(describeExportError(undefined), 'export failed');
  });
});

describe('RetryingExporter', () => {
  it('retries retryable failures until success', async () => {
    const inner = new ScriptedExporter([failed(14), failed(4), failed(8)]);
    const exporter = new RetryingExporter(() => inner, fast);
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.SUCCESS);
    assert.equal(inner.calls, 4);
    assert.equal(exporter.retries, 3);
    assert.equal(exporter.lastError, '8 SOMETHING: detail');
  });

  it('does not retry a non-retryable failure', async () => {
    const inner = new ScriptedExporter([failed(3)]);
    const exporter = new RetryingExporter(() => inner, fast);
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.equal(inner.calls, 1);
    assert.equal(exporter.retries, 0);
  });

  it('gives up once the next wait would pass maxElapsedMs', async () => {
    const inner = new ScriptedExporter(Array.from({ length: 100 }, () => failed(14)));
    const exporter = new RetryingExporter(() => inner, { ...fast, maxElapsedMs: 60 });
    const started = performance.now();
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(performance.now() - started < 1000);
    assert.ok(inner.calls >= 3 && inner.calls < 100, `calls ${inner.calls}`);
    assert.equal(exporter.retries, inner.calls - 1);
  });

  it('turns an exception thrown by the wrapped exporter into a failure', async () => {
    const inner = new ScriptedExporter([]);
    inner.export = () => {
      throw new Error('boom');
    };
    const result = await exportOnce(new RetryingExporter(() => inner, fast));
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.equal(result.error?.message, 'boom');
  });

  it('shutdown ends a pending backoff at once and shuts the wrapped exporter down', async () => {
    const inner = new ScriptedExporter([failed(14), failed(14)]);
    const exporter = new RetryingExporter(() => inner, { initialBackoffMs: 60_000, maxBackoffMs: 60_000, maxElapsedMs: 600_000 });
    const pending = exportOnce(exporter);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    await exporter.shutdown();
    const result = await pending;
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(performance.now() - started < 1000);
    assert.equal(inner.calls, 1);
    assert.equal(inner.shutdowns, 1);
  });

  it('replaces the wrapped exporter after reconnectAfterMs of UNAVAILABLE only', async () => {
    const made: ScriptedExporter[] = [];
    const create = (): ScriptedExporter => {
      const next = new ScriptedExporter(made.length === 0 ? Array.from({ length: 8 }, () => failed(14)) : []);
      made.push(next);
      return next;
    };
    const exporter = new RetryingExporter(create, { ...fast, reconnectAfterMs: 30 });
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.SUCCESS);
    assert.equal(made.length, 2);
    assert.equal(made[0]?.shutdowns, 1);
    assert.equal(made[1]?.calls, 1);

    const other = new ScriptedExporter(Array.from({ length: 8 }, () => failed(4)));
    let creations = 0;
    const deadlines = new RetryingExporter(() => {
      creations++;
      return other;
    }, { ...fast, reconnectAfterMs: 1 });
    assert.equal((await exportOnce(deadlines)).code, ExportResultCode.SUCCESS);
    assert.equal(creations, 1);
  });

  it('passes a partial success through without retrying, its message as lastError', async () => {
    const inner = new ScriptedExporter([{ code: ExportResultCode.SUCCESS, rejected: 3, error: new Error('3 records too old') } as ExportResult]);
    const exporter = new RetryingExporter(() => inner, fast);
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.SUCCESS);
    assert.equal((result as { rejected?: number }).rejected, 3);
    assert.equal(inner.calls, 1);
    assert.equal(exporter.lastError, '3 records too old');
    assert.ok(exporter.lastErrorAt > 0);
  });

  it('says of each failure whether its batch is retried: only retryable ones with time left, never a partial success', async () => {
    const outcome = async (script: ExportResult[], policy: Partial<RetryPolicy> = fast): Promise<unknown> => {
      const exporter = new RetryingExporter(() => new ScriptedExporter(script), policy);
      await exportOnce(exporter);
      return [exporter.latestFailure?.outcome, exporter.latestFailure?.message];
    };
    assert.deepEqual(await outcome([failed(3)]), ['failed', '3 SOMETHING: detail']);
    assert.deepEqual(await outcome([{ code: ExportResultCode.SUCCESS, rejected: 2, error: new Error('too old') } as ExportResult]), ['rejected', 'too old']);
    assert.deepEqual(await outcome(Array.from({ length: 100 }, () => failed(14)), { ...fast, maxElapsedMs: 30 }), ['failed', '14 SOMETHING: detail']);
    // while a retryable failure waits for its retry it is 'retrying'; stopped retries end as 'failed'
    const exporter = new RetryingExporter(() => new ScriptedExporter([failed(14)]), { ...fast, initialBackoffMs: 10_000 });
    const result = exportOnce(exporter);
    const deadline = Date.now() + 5000;
    const state = (): string | undefined => exporter.latestFailure?.outcome;
    while (state() === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(state(), 'retrying');
    exporter.stopRetrying();
    assert.equal((await result).code, ExportResultCode.FAILED);
    assert.equal(state(), 'failed');
  });

  it('wraps any exporter of the shared shape, e.g. a SpanExporter without forceFlush', async () => {
    const spans: SpanExporter = {
      export: (_items, done) => {
        setImmediate(done, { code: ExportResultCode.SUCCESS });
      },
      shutdown: () => Promise.resolve(),
    };
    const exporter = new RetryingExporter<ReadableSpan>(() => spans, fast);
    const result = await new Promise<ExportResult>((resolve) => {
      exporter.export([], resolve);
    });
    assert.equal(result.code, ExportResultCode.SUCCESS);
    await exporter.forceFlush();
    await exporter.shutdown();
  });
});
