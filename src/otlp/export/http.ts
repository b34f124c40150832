/**
 * The OTLP/HTTP (protobuf) exporters, one per signal, for a target whose
 * protocol is `http/protobuf`: the SDK's own HTTP export machinery
 * (createOtlpHttpExportDelegate of otlp-exporter-base: node http/https agent,
 * headers, gzip, deadline, its retries of 429/502/503/504 and network errors),
 * with the requests written by the same encoder as over gRPC
 * (src/otlp/wire/requests.ts) and partial success counted as there (src/otlp/export/grpc.ts).
 *
 * Failures are reported with the gRPC status the OTLP specification pairs
 * with them, so that {@link RetryingExporter} (src/otlp/export/retry.ts), which
 * decides on gRPC codes, retries the same failures over either protocol:
 * HTTP 429/502/503/504 and a collector that cannot be reached become
 * UNAVAILABLE (14), a request that timed out DEADLINE_EXCEEDED (4); any other
 * status (400, 413...) stays a permanent failure.
 */
import { ExportResultCode } from '@opentelemetry/core';
import { getSharedConfigurationDefaults, type IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { createOtlpHttpExportDelegate, httpAgentFactoryFromOptions } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import { PACKAGE_NAME, packageVersion } from '../../version.ts';
import type { OtlpTarget } from '../config.ts';
import { LogsEncoder, SpansEncoder } from '../wire/requests.ts';
import type { LogItem, SpanItem } from '../wire/requests.ts';
import { partialSuccessOf, type PartialSuccess } from './grpc.ts';
import type { CountedExportResult, ItemExporter } from './processor.ts';
import { readTlsFile, tlsVariable } from './tls-files.ts';

const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** An export failure as the gRPC-coded error the retry logic reads (see the module doc). */
export function asGrpcCodedError(error: unknown): Error {
  const text = error instanceof Error ? error.message : String(error);
  const message = text.split('\n', 1)[0] ?? text;
  const code = (error as { code?: unknown } | null | undefined)?.code;
  let grpc: number | undefined;
  if (typeof code === 'number' && RETRYABLE_STATUSES.has(code)) grpc = UNAVAILABLE;
  else if (typeof code === 'string') grpc = UNAVAILABLE; // a Node network error: ECONNREFUSED, ECONNRESET...
  else if (/timed out/i.test(message)) grpc = DEADLINE_EXCEEDED;
  else if (/retryable status/i.test(message)) grpc = UNAVAILABLE;
  const status = typeof code === 'number' ? `HTTP ${code}: ` : '';
  return Object.assign(new Error(`${status}${message}`), { code: grpc ?? (typeof code === 'number' ? code : undefined) });
}

interface SignalExport<T> {
  readonly componentType: string;
  readonly itemName: 'log' | 'span';
  readonly encode: (items: T[]) => Uint8Array;
  readonly decodeResponse: (data: Uint8Array) => unknown;
}

/** An OTLP/HTTP exporter of `T` items whose results carry gRPC-coded errors and the partial success. */
export class OtlpHttpExporter<T> implements ItemExporter<T> {
  private readonly delegate: IOtlpExportDelegate<T[]>;
  private last: PartialSuccess | undefined;

  constructor(target: OtlpTarget, userAgent: string, kind: SignalExport<T>) {
    const signal = kind.itemName === 'log' ? 'logs' : 'traces';
    const serializer: ISerializer<T[], unknown> = {
      serializeRequest: kind.encode,
      deserializeResponse: (data) => {
        const response = kind.decodeResponse(data);
        this.last = partialSuccessOf(response);
        return response;
      },
    };
    const tls = target.insecure
      ? {}
      : {
          ca: readTlsFile(target.certificatePath, tlsVariable(signal, 'CERTIFICATE')),
          cert: readTlsFile(target.clientCertificatePath, tlsVariable(signal, 'CLIENT_CERTIFICATE')),
          key: readTlsFile(target.clientKeyPath, tlsVariable(signal, 'CLIENT_KEY')),
        };
    // Everything from the target (src/otlp/config.ts resolved the OTEL_* variables): the SDK's
    // defaults only for what the tracer does not set (its concurrency limit).
    const headers = { ...target.headers, 'content-type': 'application/x-protobuf' };
    this.delegate = createOtlpHttpExportDelegate(
      {
        ...getSharedConfigurationDefaults(),
        url: target.endpoint,
        headers: () => Promise.resolve(headers),
        compression: target.compression,
        timeoutMillis: target.timeoutMs,
        agentFactory: httpAgentFactoryFromOptions({ keepAlive: true, ...tls }),
        userAgent,
      },
      serializer,
      kind.componentType,
      { name: kind.itemName, countItems: (items) => items.length },
      undefined,
    );
  }

  export(items: T[], resultCallback: (result: CountedExportResult) => void): void {
    this.delegate.export(items, (result) => {
      const partial = this.last;
      this.last = undefined;
      if (result.code !== ExportResultCode.SUCCESS) {
        resultCallback({ code: result.code, error: asGrpcCodedError(result.error) });
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

const scope = (): { name: string; version: string } => ({ name: PACKAGE_NAME, version: packageVersion() });

/** The OTLP/HTTP log exporter for `target` (its endpoint is the full URL, e.g. `http://c:4318/v1/logs`). */
export function createOtlpHttpLogExporter(target: OtlpTarget, userAgent: string): OtlpHttpExporter<LogItem> {
  const encoder = new LogsEncoder(scope());
  return new OtlpHttpExporter(target, userAgent, {
    componentType: 'otlp_http_log_exporter',
    itemName: 'log',
    encode: (items) => encoder.encode(items),
    decodeResponse: (data) => ProtobufLogsSerializer.deserializeResponse(data),
  });
}

/** As {@link createOtlpHttpLogExporter}, for spans. */
export function createOtlpHttpTraceExporter(target: OtlpTarget, userAgent: string): OtlpHttpExporter<SpanItem> {
  const encoder = new SpansEncoder(scope());
  return new OtlpHttpExporter(target, userAgent, {
    componentType: 'otlp_http_span_exporter',
    itemName: 'span',
    encode: (items) => encoder.encode(items),
    decodeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
  });
}
