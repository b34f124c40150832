/**
 * The stock OTLP/gRPC exporters (logs: OTLPLogExporter, traces:
 * OTLPTraceExporter), configured from one {@link OtlpTarget}, and made to
 * report OTLP partial success.
 *
 * Partial success: a collector may acknowledge an export and still say, in
 * ExportLogsServiceResponse / ExportTraceServiceResponse.partial_success, that
 * it rejected some of the items (rejected_log_records / rejected_spans, with
 * an error_message). The 0.301 exporters decode that response with their
 * serializer's deserializeResponse() and only hand it to a response handler
 * that logs it through `diag`; their result says SUCCESS. So each exporter's
 * serializer is wrapped: deserializeResponse() runs synchronously just before
 * the SDK calls the export's result callback (otlp-exporter-base,
 * OTLPExportDelegate.export), so the response it decoded belongs to the
 * result that follows, and {@link PartialSuccessExporter} adds `rejected` and
 * the collector's message to that result. If a future SDK moves the serializer,
 * {@link hookResponses} says so (a test checks it) and partial successes go
 * back to being only logged.
 */
import { readFileSync } from 'node:fs';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { createEmptyMetadata, createInsecureCredentials, createSslCredentials } from '@opentelemetry/otlp-grpc-exporter-base';
import type { OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { UsageError } from '../errors.ts';
import type { OtlpSignal, OtlpTarget } from './config.ts';
import { describeExportError } from './exporter.ts';
import type { CountedExportResult, ItemExporter } from './processor.ts';

/** A decoded partial_success: what the collector refused, and why. */
export interface PartialSuccess {
  readonly rejected: number;
  readonly message: string;
}

/** The decoded response objects of otlp-transformer (logs and traces). */
interface DecodedResponse {
  readonly partialSuccess?: {
    readonly rejectedLogRecords?: number | bigint | string;
    readonly rejectedSpans?: number | bigint | string;
    readonly errorMessage?: string;
  };
}

interface Serializer {
  deserializeResponse(data: Uint8Array): unknown;
}

/** The partial success in a decoded response, or undefined when nothing was rejected. */
export function partialSuccessOf(response: unknown): PartialSuccess | undefined {
  const partial = (response as DecodedResponse | null | undefined)?.partialSuccess;
  if (partial === undefined) return undefined;
  const rejected = Number(partial.rejectedLogRecords ?? partial.rejectedSpans ?? 0);
  const message = partial.errorMessage ?? '';
  if (!(rejected > 0) && message === '') return undefined;
  return { rejected: rejected > 0 ? rejected : 0, message };
}

/**
 * Makes `onResponse` see every response `exporter` (an OTLPExporterBase)
 * decodes, by wrapping its serializer's deserializeResponse. Returns false
 * when the exporter does not have the shape of the 0.301 SDK.
 */
export function hookResponses(exporter: object, onResponse: (response: unknown) => void): boolean {
  const delegate = (exporter as { _delegate?: { _serializer?: Serializer } })._delegate;
  const serializer = delegate?._serializer;
  if (delegate === undefined || serializer === undefined || typeof serializer.deserializeResponse !== 'function') return false;
  delegate._serializer = {
    ...serializer,
    deserializeResponse(data: Uint8Array): unknown {
      const response = serializer.deserializeResponse(data);
      onResponse(response);
      return response;
    },
  };
  return true;
}

/** An exporter whose successful results carry the collector's partial success (see the module doc). */
export class PartialSuccessExporter<T> implements ItemExporter<T> {
  private readonly inner: ItemExporter<T>;
  private last: PartialSuccess | undefined;
  /** False if the SDK's shape was not recognised: partial successes are then only logged by the SDK. */
  readonly hooked: boolean;

  constructor(inner: ItemExporter<T> & object) {
    this.inner = inner;
    this.hooked = hookResponses(inner, (response) => {
      this.last = partialSuccessOf(response);
    });
  }

  export(items: T[], resultCallback: (result: CountedExportResult) => void): void {
    this.inner.export(items, (result) => {
      const partial = this.last;
      this.last = undefined;
      if (result.code !== ExportResultCode.SUCCESS || partial === undefined) {
        resultCallback(result);
        return;
      }
      const message = partial.message || `collector rejected ${partial.rejected} of ${items.length} items (partial success)`;
      resultCallback({ code: ExportResultCode.SUCCESS, rejected: partial.rejected, error: new Error(message) });
    });
  }

  async forceFlush(): Promise<void> {
    await this.inner.forceFlush?.();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

/**
 * The stock OTLP/gRPC exporter for `signal`, configured from `target` alone
 * (endpoint, TLS material, headers, compression, per-attempt deadline), with
 * partial successes counted.
 *
 * @param userAgent prefix of the gRPC user-agent. grpc-js shares a connection
 *   (subchannel, with its reconnect backoff) between channels whose options are
 *   equal, so a replacement exporter must use a user-agent of its own.
 * @throws UsageError if a certificate or key file named in `target` cannot be read.
 */
export function createOtlpGrpcLogExporter(target: OtlpTarget, userAgent: string): PartialSuccessExporter<ReadableLogRecord> {
  return new PartialSuccessExporter(new OTLPLogExporter(grpcOptions(target, 'logs', userAgent)));
}

/** As {@link createOtlpGrpcLogExporter}, for spans. */
export function createOtlpGrpcTraceExporter(target: OtlpTarget, userAgent: string): PartialSuccessExporter<ReadableSpan> {
  return new PartialSuccessExporter(new OTLPTraceExporter(grpcOptions(target, 'traces', userAgent)));
}

function grpcOptions(target: OtlpTarget, signal: OtlpSignal, userAgent: string): OTLPGRPCExporterConfigNode {
  const metadata = createEmptyMetadata();
  for (const [key, value] of Object.entries(target.headers)) metadata.set(key, value);
  const variable = (name: string): string => `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_${name} / OTEL_EXPORTER_OTLP_${name}`;
  const credentials = target.insecure
    ? createInsecureCredentials()
    : createSslCredentials(
        readPem(target.certificatePath, variable('CERTIFICATE')),
        readPem(target.clientKeyPath, variable('CLIENT_KEY')),
        readPem(target.clientCertificatePath, variable('CLIENT_CERTIFICATE')),
      );
  return {
    url: target.endpoint,
    credentials,
    metadata,
    // The SDK types this as a string enum whose values are exactly 'gzip' | 'none'.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
    compression: target.compression as OTLPGRPCExporterConfigNode['compression'],
    timeoutMillis: target.timeoutMs,
    userAgent,
  };
}

/**
 * TLS files by path, read once: a replacement exporter (after a long outage)
 * reuses what the first one read, since by then the tracer may have dropped
 * the privileges that file needed (src/privileges.ts).
 */
const pemCache = new Map<string, Buffer>();

function readPem(path: string | undefined, variable: string): Buffer | undefined {
  if (path === undefined) return undefined;
  let pem = pemCache.get(path);
  if (pem === undefined) {
    try {
      pem = readFileSync(path);
    } catch (error) {
      throw new UsageError(`${variable}: cannot read '${path}': ${describeExportError(error)}`);
    }
    pemCache.set(path, pem);
  }
  return pem;
}
