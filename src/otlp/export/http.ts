/**
 * The OTLP/HTTP (protobuf) exporters, one per signal, for a target whose
 * protocol is `http/protobuf`: the SDK's own HTTP export machinery
 * (createOtlpHttpExportDelegate of otlp-exporter-base: node http/https agent,
 * headers, gzip, deadline, its retries of 429/502/503/504 and network errors),
 * with the same encoder and partial-success counting as over gRPC (./delegate.ts).
 *
 * Failures are reported with the gRPC status the OTLP specification pairs
 * with them, so that {@link RetryingExporter} (src/otlp/export/retry.ts), which
 * decides on gRPC codes, retries the same failures over either protocol:
 * HTTP 429/502/503/504 and a collector that cannot be reached become
 * UNAVAILABLE (14), a request that timed out DEADLINE_EXCEEDED (4); any other
 * status (400, 413...) stays a permanent failure.
 */
import { getSharedConfigurationDefaults, type IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { createOtlpHttpExportDelegate, httpAgentFactoryFromOptions } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import type { OtlpSignal, OtlpTarget } from '../config.ts';
import type { MetricPoint } from '../metrics/points.ts';
import type { LogItem, SpanItem } from '../wire/requests.ts';
import { DelegateExporter, logsCodec, metricsCodec, spansCodec } from './delegate.ts';
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

/** The HTTP delegate of one signal, for `target`, around the serializer it is given. */
function delegate<T>(target: OtlpTarget, signal: OtlpSignal, userAgent: string): (serializer: ISerializer<T[], unknown>) => IOtlpExportDelegate<T[]> {
  const names = { logs: ['otlp_http_log_exporter', 'log'], traces: ['otlp_http_span_exporter', 'span'], metrics: ['otlp_http_metric_exporter', 'metric_data_point'] } as const;
  const [component, item] = names[signal];
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
  return (serializer) =>
    createOtlpHttpExportDelegate(
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
      component,
      { name: item, countItems: (items) => items.length },
      undefined,
    );
}

/** The OTLP/HTTP log exporter for `target` (its endpoint is the full URL, e.g. `http://c:4318/v1/logs`). */
export function createOtlpHttpLogExporter(target: OtlpTarget, userAgent: string): DelegateExporter<LogItem> {
  return new DelegateExporter(logsCodec(), delegate<LogItem>(target, 'logs', userAgent), asGrpcCodedError);
}

/** As {@link createOtlpHttpLogExporter}, for spans. */
export function createOtlpHttpTraceExporter(target: OtlpTarget, userAgent: string): DelegateExporter<SpanItem> {
  return new DelegateExporter(spansCodec(), delegate<SpanItem>(target, 'traces', userAgent), asGrpcCodedError);
}

/** As {@link createOtlpHttpLogExporter}, for metrics (one item per data point; `/v1/metrics`). */
export function createOtlpHttpMetricExporter(target: OtlpTarget, userAgent: string): DelegateExporter<MetricPoint> {
  return new DelegateExporter(metricsCodec(), delegate<MetricPoint>(target, 'metrics', userAgent), asGrpcCodedError);
}
