/**
 * What the two transports share: one of the SDK's own OTLP export delegates
 * (gRPC, ./grpc.ts, or HTTP, ./http.ts), which the stock OTLPLogExporter and
 * OTLPTraceExporter are thin classes over, with the requests written by the
 * tracer's encoder (../wire/requests.ts: the SDK's bytes, a test compares
 * them) instead of the SDK's serializer, and the collector's partial success
 * counted.
 *
 * Partial success: a collector may acknowledge an export and still say, in
 * ExportLogsServiceResponse / ExportTraceServiceResponse.partial_success, that
 * it rejected some of the items (rejected_log_records / rejected_spans, with
 * an error_message). The delegate decodes the response with the serializer's
 * deserializeResponse() (the SDK's decoder, here) and only logs it through
 * `diag`; its result says SUCCESS. deserializeResponse() runs synchronously
 * just before the delegate calls the export's result callback
 * (otlp-exporter-base, OTLPExportDelegate.export), so the response it decoded
 * belongs to the result that follows, and {@link DelegateExporter} adds
 * `rejected` and the collector's message to that result.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { ProtobufLogsSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import { PACKAGE_NAME, packageVersion } from '../../version.ts';
import { encodeMetricPoints } from '../metrics/points.ts';
import type { MetricPoint } from '../metrics/points.ts';
import { LogsEncoder, SpansEncoder } from '../wire/requests.ts';
import type { LogItem, SpanItem } from '../wire/requests.ts';
import type { CountedExportResult, ItemExporter } from './processor.ts';

/** A decoded partial_success: what the collector refused, and why. */
export interface PartialSuccess {
  readonly rejected: number;
  readonly message: string;
}

/** The decoded response objects of otlp-transformer (logs, traces and metrics). */
interface DecodedResponse {
  readonly partialSuccess?: {
    readonly rejectedLogRecords?: number | bigint | string;
    readonly rejectedSpans?: number | bigint | string;
    readonly rejectedDataPoints?: number | bigint | string;
    readonly errorMessage?: string;
  };
}

/** The partial success in a decoded response, or undefined when nothing was rejected. */
export function partialSuccessOf(response: unknown): PartialSuccess | undefined {
  const partial = (response as DecodedResponse | null | undefined)?.partialSuccess;
  if (partial === undefined) return undefined;
  const rejected = Number(partial.rejectedLogRecords ?? partial.rejectedSpans ?? partial.rejectedDataPoints ?? 0);
  const message = partial.errorMessage ?? '';
  if (!(rejected > 0) && message === '') return undefined;
  return { rejected: rejected > 0 ? rejected : 0, message };
}

/** How one signal's export requests are written and its responses read. */
export interface SignalCodec<T> {
  readonly encode: (items: T[]) => Uint8Array;
  readonly decodeResponse: (data: Uint8Array) => unknown;
}

const scope = (): { name: string; version: string } => ({ name: PACKAGE_NAME, version: packageVersion() });

export function logsCodec(): SignalCodec<LogItem> {
  const encoder = new LogsEncoder(scope());
  return { encode: (items) => encoder.encode(items), decodeResponse: (data) => ProtobufLogsSerializer.deserializeResponse(data) };
}

export function spansCodec(): SignalCodec<SpanItem> {
  const encoder = new SpansEncoder(scope());
  return { encode: (items) => encoder.encode(items), decodeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data) };
}

/** Metrics: one item per data point, written by the SDK's ProtobufMetricsSerializer (../metrics/points.ts). */
export function metricsCodec(): SignalCodec<MetricPoint> {
  return { encode: encodeMetricPoints, decodeResponse: (data) => ProtobufMetricsSerializer.deserializeResponse(data) };
}

/** An exporter of `T` items over one SDK export delegate, whose successful results carry the collector's partial success. */
export class DelegateExporter<T> implements ItemExporter<T> {
  private readonly delegate: IOtlpExportDelegate<T[]>;
  private readonly failure: (error: Error | undefined) => Error | undefined;
  private last: PartialSuccess | undefined;

  /**
   * @param delegate makes the transport's delegate around the serializer given
   * @param failure what a failed result's error becomes (the retries read gRPC codes); default as it is
   */
  constructor(codec: SignalCodec<T>, delegate: (serializer: ISerializer<T[], unknown>) => IOtlpExportDelegate<T[]>, failure: (error: Error | undefined) => Error | undefined = (e) => e) {
    this.failure = failure;
    this.delegate = delegate({
      serializeRequest: codec.encode,
      deserializeResponse: (data) => {
        const response = codec.decodeResponse(data);
        this.last = partialSuccessOf(response);
        return response;
      },
    });
  }

  export(items: T[], resultCallback: (result: CountedExportResult) => void): void {
    this.delegate.export(items, (result) => {
      const partial = this.last;
      this.last = undefined;
      if (result.code !== ExportResultCode.SUCCESS) {
        resultCallback({ code: result.code, error: this.failure(result.error) });
        return;
      }
      if (partial === undefined) {
        resultCallback(result);
        return;
      }
      const message = partial.message || `collector rejected ${partial.rejected} of ${items.length} items (partial success)`;
      resultCallback({ code: ExportResultCode.SUCCESS, rejected: partial.rejected, error: new Error(message) });
    });
  }

  forceFlush(): Promise<void> {
    return this.delegate.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.delegate.shutdown();
  }
}
