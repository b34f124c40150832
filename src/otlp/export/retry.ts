/**
 * An exporter wrapper that retries transient failures, generic over what is
 * exported (log records, spans): it wraps anything with the
 * `export(items, resultCallback)` / `forceFlush` / `shutdown` shape that
 * LogRecordExporter and SpanExporter share.
 *
 * The stock OTLP/gRPC exporters (src/otlp/export/grpc.ts) make one attempt per
 * export: a collector that is down, restarting or overloaded makes the batch
 * fail at once. {@link RetryingExporter} retries the failures the OTLP
 * specification calls retryable, with capped, jittered exponential backoff,
 * and gives up on a batch after a bounded time so that the caller's queue
 * keeps moving (the caller counts what was given up).
 *
 * It also replaces the wrapped exporter after a long stretch of UNAVAILABLE:
 * grpc-js backs off reconnecting up to 120 s, so after a long collector outage
 * a channel could sit idle for two minutes after the collector is back. A new
 * exporter opens a new channel, whose first connection attempt is immediate.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { CountedExportResult, ItemExporter } from './processor.ts';

/**
 * gRPC status codes the OTLP specification lists as retryable: CANCELLED,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
 * DATA_LOSS. (Numbers, so that this module needs no gRPC import.)
 */
const RETRYABLE_GRPC_CODES: ReadonlySet<number> = new Set([1, 4, 8, 10, 11, 14, 15]);
const GRPC_UNAVAILABLE = 14;

/** True when `error` is a gRPC status error whose code is worth retrying. */
export function isRetryable(error: unknown): boolean {
  const code = grpcCode(error);
  return code !== undefined && RETRYABLE_GRPC_CODES.has(code);
}

function grpcCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'number' ? error.code : undefined;
}

/** One line describing an export failure, e.g. `14 UNAVAILABLE: No connection established`. */
export function describeExportError(error: unknown): string {
  const text = error instanceof Error ? error.message : typeof error === 'string' ? error : 'export failed';
  return text.split('\n', 1)[0] ?? text;
}

/**
 * The latest failure of an export attempt, and what became of its batch:
 * `retrying` it will be tried again; `failed` it was given up (not
 * retryable, retries exhausted or stopped) and counted as dropped;
 * `rejected` the collector took it but refused some items (partial
 * success), counted as dropped.
 */
export interface ExportFailure {
  /** One line, e.g. `14 UNAVAILABLE: No connection established`. */
  readonly message: string;
  readonly outcome: 'retrying' | 'failed' | 'rejected';
  /** When it happened (performance.now()). */
  readonly at: number;
}

/** How failed exports are retried. */
export interface RetryPolicy {
  /** Wait before the first retry, ms. Default 500. */
  readonly initialBackoffMs: number;
  /** Longest wait between two attempts, ms. Default 5000. */
  readonly maxBackoffMs: number;
  /** Factor applied to the wait after each retry. Default 2. */
  readonly multiplier: number;
  /** Each wait is randomised by +/- this fraction. Default 0.2. */
  readonly jitter: number;
  /** A batch is given up once this long has passed since its first attempt, ms. Default 60000. */
  readonly maxElapsedMs: number;
  /** After this long with nothing but UNAVAILABLE, the wrapped exporter is replaced by a new one, ms. Default 15000. */
  readonly reconnectAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  initialBackoffMs: 500,
  maxBackoffMs: 5000,
  multiplier: 2,
  jitter: 0.2,
  maxElapsedMs: 60_000,
  reconnectAfterMs: 15_000,
};

/** The wait before retry number `retry` (0-based), jittered. */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** retry);
  return Math.max(0, base * (1 + policy.jitter * (2 * random() - 1)));
}

/**
 * An exporter that retries retryable failures of the exporters `create` makes.
 * A success whose result names `rejected` items (partial success) is not
 * retried (the collector refused those for good); its message becomes
 * {@link lastError}.
 */
export class RetryingExporter<T> implements ItemExporter<T> {
  private readonly create: () => ItemExporter<T>;
  private readonly policy: RetryPolicy;
  private readonly sleepers = new Set<(retry: boolean) => void>();
  private inner: ItemExporter<T>;
  private retryCount = 0;
  private lastFailure: ExportFailure | undefined;
  private unavailableSince: number | undefined;
  private stopped = false;

  /** @param create makes the exporter to wrap; called again to replace it after a long UNAVAILABLE stretch. */
  constructor(create: () => ItemExporter<T>, policy: Partial<RetryPolicy> = {}) {
    this.create = create;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
    this.inner = create();
  }

  /** Retries made so far, over all batches. */
  get retries(): number {
    return this.retryCount;
  }

  /** The most recent failure (retried or not) or partial success, for reports; undefined if none yet. */
  get lastError(): string | undefined {
    return this.lastFailure?.message;
  }

  /** When {@link lastError} happened (performance.now()); -Infinity if never. */
  get lastErrorAt(): number {
    return this.lastFailure?.at ?? -Infinity;
  }

  /** The most recent failure and whether its batch is being retried; undefined if none yet. */
  get latestFailure(): ExportFailure | undefined {
    return this.lastFailure;
  }

  export(items: T[], resultCallback: (result: CountedExportResult) => void): void {
    void this.exportWithRetries(items).then(resultCallback);
  }

  async forceFlush(): Promise<void> {
    await this.inner.forceFlush?.();
  }

  /** From now on a failed attempt is final: batches waiting to retry fail at once. */
  stopRetrying(): void {
    this.stopped = true;
    for (const wake of this.sleepers) wake(false);
  }

  /** Stops retrying, then shuts the wrapped exporter down. */
  async shutdown(): Promise<void> {
    this.stopRetrying();
    await this.inner.shutdown();
  }

  private async exportWithRetries(items: T[]): Promise<CountedExportResult> {
    const started = performance.now();
    for (let retry = 0; ; retry++) {
      const result = await this.attempt(items);
      this.track(result);
      if (result.code === ExportResultCode.SUCCESS) {
        if ((result.rejected ?? 0) > 0) this.fail(result.error ?? `collector rejected ${result.rejected} items (partial success)`, 'rejected');
        return result;
      }
      const delay = backoffDelay(this.policy, retry);
      const again = !this.stopped && isRetryable(result.error) && performance.now() - started + delay <= this.policy.maxElapsedMs;
      this.fail(result.error, again ? 'retrying' : 'failed');
      if (!again) return result;
      if (!(await this.sleep(delay))) {
        this.fail(result.error, 'failed');
        return result;
      }
      this.retryCount++;
    }
  }

  private fail(error: unknown, outcome: ExportFailure['outcome']): void {
    this.lastFailure = { message: describeExportError(error), outcome, at: performance.now() };
  }

  /** Replaces the wrapped exporter once UNAVAILABLE has lasted reconnectAfterMs. */
  private track(result: CountedExportResult): void {
    if (grpcCode(result.error) !== GRPC_UNAVAILABLE) {
      this.unavailableSince = undefined;
      return;
    }
    const now = performance.now();
    this.unavailableSince ??= now;
    if (this.stopped || now - this.unavailableSince < this.policy.reconnectAfterMs) return;
    this.unavailableSince = now;
    const old = this.inner;
    this.inner = this.create();
    void old.shutdown().catch(() => undefined);
  }

  private attempt(items: T[]): Promise<CountedExportResult> {
    return new Promise((resolve) => {
      try {
        this.inner.export(items, resolve);
      } catch (error) {
        resolve({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
      }
    });
  }

  /** Resolves true after `ms`, or false at once if shutdown() interrupts it. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (retry: boolean): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve(retry);
      };
      const timer = setTimeout(wake, ms, true);
      this.sleepers.add(wake);
    });
  }
}
