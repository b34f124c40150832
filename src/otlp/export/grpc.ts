/**
 * The OTLP/gRPC exporters, one per signal, configured from one
 * {@link OtlpTarget}: the SDK's own export machinery
 * (createOtlpGrpcExportDelegate of otlp-grpc-exporter-base: grpc-js channel,
 * TLS (src/otlp/export/tls.ts: also to an IP address), headers, compression,
 * deadline, concurrency limit), which the stock
 * OTLPLogExporter and OTLPTraceExporter are thin classes over, with the
 * requests encoded by src/otlp/wire/requests.ts from the tracer's items instead of
 * the SDK's serializer from LogRecordImpl / Span objects (same bytes; a test
 * compares them), and OTLP partial success reported.
 *
 * Partial success: a collector may acknowledge an export and still say, in
 * ExportLogsServiceResponse / ExportTraceServiceResponse.partial_success, that
 * it rejected some of the items (rejected_log_records / rejected_spans, with
 * an error_message). The delegate decodes the response with the serializer's
 * deserializeResponse() (the SDK's decoder, here) and only logs it through
 * `diag`; its result says SUCCESS. deserializeResponse() runs synchronously
 * just before the delegate calls the export's result callback
 * (otlp-exporter-base, OTLPExportDelegate.export), so the response it decoded
 * belongs to the result that follows, and {@link OtlpGrpcExporter} adds
 * `rejected` and the collector's message to that result.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyOtlpGrpcOptions,
  createEmptyMetadata,
  createInsecureCredentials,
  createOtlpGrpcExportDelegate,
} from '@opentelemetry/otlp-grpc-exporter-base';
import type { OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import { PACKAGE_NAME, packageVersion } from '../../version.ts';
import type { OtlpSignal, OtlpTarget } from '../config.ts';
import { LogsEncoder, SpansEncoder } from '../wire/requests.ts';
import type { LogItem, SpanItem } from '../wire/requests.ts';
import type { CountedExportResult, ItemExporter } from './processor.ts';
import { readTlsFile, tlsVariable } from './tls-files.ts';
import { tlsCredentials } from './tls.ts';

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

/** The partial success in a decoded response, or undefined when nothing was rejected. */
export function partialSuccessOf(response: unknown): PartialSuccess | undefined {
  const partial = (response as DecodedResponse | null | undefined)?.partialSuccess;
  if (partial === undefined) return undefined;
  const rejected = Number(partial.rejectedLogRecords ?? partial.rejectedSpans ?? 0);
  const message = partial.errorMessage ?? '';
  if (!(rejected > 0) && message === '') return undefined;
  return { rejected: rejected > 0 ? rejected : 0, message };
}

/** What differs between the two signals' exporters. */
interface SignalExport<T> {
  /** convertLegacyOtlpGrpcOptions's signal identifier (which OTEL_EXPORTER_OTLP_<X>_* variables apply). */
  readonly envName: 'LOGS' | 'TRACES';
  /** otel.component.type of the SDK's own exporter for this signal (its self-observability metrics). */
  readonly componentType: string;
  readonly itemName: 'log' | 'span';
  readonly grpcName: string;
  readonly grpcPath: string;
  readonly encode: (items: T[]) => Uint8Array;
  readonly decodeResponse: (data: Uint8Array) => unknown;
}

/**
 * An OTLP/gRPC exporter of `T` items (see the module doc) whose successful
 * results carry the collector's partial success.
 */
export class OtlpGrpcExporter<T> implements ItemExporter<T> {
  private readonly delegate: IOtlpExportDelegate<T[]>;
  private last: PartialSuccess | undefined;

  constructor(config: OTLPGRPCExporterConfigNode, kind: SignalExport<T>) {
    const serializer: ISerializer<T[], unknown> = {
      serializeRequest: kind.encode,
      deserializeResponse: (data) => {
        const response = kind.decodeResponse(data);
        this.last = partialSuccessOf(response);
        return response;
      },
    };
    this.delegate = createOtlpGrpcExportDelegate(
      // what OTLPLogExporter / OTLPTraceExporter 0.301 call (config + OTEL_EXPORTER_OTLP_* + defaults);
      // the package exports no other way to resolve a gRPC configuration
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      convertLegacyOtlpGrpcOptions(config, kind.envName),
      serializer,
      kind.componentType,
      { name: kind.itemName, countItems: (items) => items.length },
      undefined,
      kind.grpcName,
      kind.grpcPath,
    );
  }

  export(items: T[], resultCallback: (result: CountedExportResult) => void): void {
    this.delegate.export(items, (result) => {
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

  forceFlush(): Promise<void> {
    return this.delegate.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.delegate.shutdown();
  }
}

const scope = (): { name: string; version: string } => ({ name: PACKAGE_NAME, version: packageVersion() });

/**
 * The OTLP/gRPC log exporter, configured from `target` alone (endpoint, TLS
 * material, headers, compression, per-attempt deadline), with partial
 * successes counted.
 *
 * @param userAgent prefix of the gRPC user-agent. grpc-js shares a connection
 *   (subchannel, with its reconnect backoff) between channels whose options are
 *   equal, so a replacement exporter must use a user-agent of its own.
 * @throws UsageError if a certificate or key file named in `target` cannot be read.
 */
export function createOtlpGrpcLogExporter(target: OtlpTarget, userAgent: string): OtlpGrpcExporter<LogItem> {
  const encoder = new LogsEncoder(scope());
  return new OtlpGrpcExporter(grpcOptions(target, 'logs', userAgent), {
    envName: 'LOGS',
    componentType: 'otlp_grpc_log_exporter',
    itemName: 'log',
    grpcName: 'LogsExportService',
    grpcPath: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
    encode: (items) => encoder.encode(items),
    decodeResponse: (data) => ProtobufLogsSerializer.deserializeResponse(data),
  });
}

/** As {@link createOtlpGrpcLogExporter}, for spans. */
export function createOtlpGrpcTraceExporter(target: OtlpTarget, userAgent: string): OtlpGrpcExporter<SpanItem> {
  const encoder = new SpansEncoder(scope());
  return new OtlpGrpcExporter(grpcOptions(target, 'traces', userAgent), {
    envName: 'TRACES',
    componentType: 'otlp_grpc_span_exporter',
    itemName: 'span',
    grpcName: 'TraceExportService',
    grpcPath: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    encode: (items) => encoder.encode(items),
    decodeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
  });
}

function grpcOptions(target: OtlpTarget, signal: OtlpSignal, userAgent: string): OTLPGRPCExporterConfigNode {
  const metadata = createEmptyMetadata();
  for (const [key, value] of Object.entries(target.headers)) metadata.set(key, value);
  const credentials = target.insecure
    ? createInsecureCredentials()
    : tlsCredentials(
        target.endpoint,
        readTlsFile(target.certificatePath, tlsVariable(signal, 'CERTIFICATE')),
        readTlsFile(target.clientKeyPath, tlsVariable(signal, 'CLIENT_KEY')),
        readTlsFile(target.clientCertificatePath, tlsVariable(signal, 'CLIENT_CERTIFICATE')),
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
