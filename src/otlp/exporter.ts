/**
 * The OTLP/gRPC log exporter, wrapped so that transient failures are retried.
 *
 * `@opentelemetry/exporter-logs-otlp-grpc` makes one attempt per export: a
 * collector that is down, restarting or overloaded makes the batch fail at
 * once. {@link RetryingLogRecordExporter} retries the failures the OTLP
 * specification calls retryable, with capped, jittered exponential backoff,
 * and gives up on a batch after a bounded time so that the caller's queue
 * keeps moving (the caller counts what was given up).
 *
 * It also replaces the wrapped exporter after a long stretch of UNAVAILABLE:
 * grpc-js backs off reconnecting up to 120 s, so after a long collector outage
 * a channel could sit idle for two minutes after the collector is back. A new
 * exporter opens a new channel, whose first connection attempt is immediate.
 */
import { readFileSync } from 'node:fs';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { createEmptyMetadata, createInsecureCredentials, createSslCredentials } from '@opentelemetry/otlp-grpc-exporter-base';
import type { OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { UsageError } from '../errors.ts';
import type { OtlpConfig } from './config.ts';

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

/** A LogRecordExporter that retries retryable failures of the exporters `create` makes. */
export class RetryingLogRecordExporter implements LogRecordExporter {
  private readonly create: () => LogRecordExporter;
  private readonly policy: RetryPolicy;
  private readonly sleepers = new Set<(retry: boolean) => void>();
  private inner: LogRecordExporter;
  private retryCount = 0;
  private lastFailure: string | undefined;
  private unavailableSince: number | undefined;
  private stopped = false;

  /** @param create makes the exporter to wrap; called again to replace it after a long UNAVAILABLE stretch. */
  constructor(create: () => LogRecordExporter, policy: Partial<RetryPolicy> = {}) {
    this.create = create;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
    this.inner = create();
  }

  /** Retries made so far, over all batches. */
  get retries(): number {
    return this.retryCount;
  }

  /** The most recent failure (retried or not), for reports; undefined if none yet. */
  get lastError(): string | undefined {
    return this.lastFailure;
  }

  export(records: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    void this.exportWithRetries(records).then(resultCallback);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  /** Stops retrying (pending batches fail at once), then shuts the wrapped exporter down. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const wake of this.sleepers) wake(false);
    await this.inner.shutdown();
  }

  private async exportWithRetries(records: ReadableLogRecord[]): Promise<ExportResult> {
    const started = performance.now();
    for (let retry = 0; ; retry++) {
      const result = await this.attempt(records);
      this.track(result);
      if (result.code === ExportResultCode.SUCCESS) return result;
      this.lastFailure = describeExportError(result.error);
      if (this.stopped || !isRetryable(result.error)) return result;
      const delay = backoffDelay(this.policy, retry);
      if (performance.now() - started + delay > this.policy.maxElapsedMs) return result;
      if (!(await this.sleep(delay))) return result;
      this.retryCount++;
    }
  }

  /** Replaces the wrapped exporter once UNAVAILABLE has lasted reconnectAfterMs. */
  private track(result: ExportResult): void {
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

  private attempt(records: ReadableLogRecord[]): Promise<ExportResult> {
    return new Promise((resolve) => {
      try {
        this.inner.export(records, resolve);
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

/**
 * The stock OTLP/gRPC log exporter configured from `cfg` alone (endpoint,
 * TLS material, headers, compression, per-attempt deadline).
 *
 * @param userAgent prefix of the gRPC user-agent. grpc-js shares a connection
 *   (subchannel, with its reconnect backoff) between channels whose options are
 *   equal, so a replacement exporter must use a user-agent of its own.
 * @throws UsageError if a certificate or key file named in `cfg` cannot be read.
 */
export function createOtlpGrpcLogExporter(cfg: OtlpConfig, userAgent: string): OTLPLogExporter {
  const metadata = createEmptyMetadata();
  for (const [key, value] of Object.entries(cfg.headers)) metadata.set(key, value);
  const credentials = cfg.insecure
    ? createInsecureCredentials()
    : createSslCredentials(
        readPem(cfg.certificatePath, 'OTEL_EXPORTER_OTLP_CERTIFICATE'),
        readPem(cfg.clientKeyPath, 'OTEL_EXPORTER_OTLP_CLIENT_KEY'),
        readPem(cfg.clientCertificatePath, 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE'),
      );
  return new OTLPLogExporter({
    url: cfg.endpoint,
    credentials,
    metadata,
    // The SDK types this as a string enum whose values are exactly 'gzip' | 'none'.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
    compression: cfg.compression as OTLPGRPCExporterConfigNode['compression'],
    timeoutMillis: cfg.timeoutMs,
    userAgent,
  });
}

function readPem(path: string | undefined, variable: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${variable}: cannot read '${path}': ${describeExportError(error)}`);
  }
}
