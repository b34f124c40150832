/**
 * The OTLP/gRPC exporters, one per signal, configured from one
 * {@link OtlpTarget}: the SDK's gRPC export delegate
 * (createOtlpGrpcExportDelegate of otlp-grpc-exporter-base: grpc-js channel,
 * TLS (./tls.ts: also to an IP address), headers, compression, deadline,
 * concurrency limit) with the tracer's encoder (./delegate.ts).
 */
import { createEmptyMetadata, createInsecureCredentials, convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import type { OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import type { ISerializer } from '@opentelemetry/otlp-transformer';
import type { OtlpSignal, OtlpTarget } from '../config.ts';
import type { MetricPoint } from '../metrics/points.ts';
import type { LogItem, SpanItem } from '../wire/requests.ts';
import { DelegateExporter, logsCodec, metricsCodec, spansCodec } from './delegate.ts';
import { readTlsFile, tlsVariable } from './tls-files.ts';
import { tlsCredentials } from './tls.ts';

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

/** What the SDK's exporter of each signal passes its gRPC delegate: names, service and method. */
const GRPC_SIGNAL = {
  logs: { env: 'LOGS', component: 'otlp_grpc_log_exporter', item: 'log', service: 'LogsExportService', path: '/opentelemetry.proto.collector.logs.v1.LogsService/Export' },
  traces: { env: 'TRACES', component: 'otlp_grpc_span_exporter', item: 'span', service: 'TraceExportService', path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export' },
  metrics: {
    env: 'METRICS',
    component: 'otlp_grpc_metric_exporter',
    item: 'metric_data_point',
    service: 'MetricsExportService',
    path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  },
} as const;

/** The gRPC delegate of one signal, for `target`, around the serializer it is given. */
function delegate<T>(target: OtlpTarget, signal: OtlpSignal, userAgent: string): (serializer: ISerializer<T[], unknown>) => IOtlpExportDelegate<T[]> {
  const s = GRPC_SIGNAL[signal];
  return (serializer) =>
    createOtlpGrpcExportDelegate(
      // what OTLPLogExporter / OTLPTraceExporter 0.301 call (config + OTEL_EXPORTER_OTLP_* + defaults);
      // the package exports no other way to resolve a gRPC configuration
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      convertLegacyOtlpGrpcOptions(grpcOptions(target, signal, userAgent), s.env),
      serializer,
      s.component,
      { name: s.item, countItems: (items) => items.length },
      undefined,
      s.service,
      s.path,
    );
}

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
export function createOtlpGrpcLogExporter(target: OtlpTarget, userAgent: string): DelegateExporter<LogItem> {
  return new DelegateExporter(logsCodec(), delegate<LogItem>(target, 'logs', userAgent));
}

/** As {@link createOtlpGrpcLogExporter}, for spans. */
export function createOtlpGrpcTraceExporter(target: OtlpTarget, userAgent: string): DelegateExporter<SpanItem> {
  return new DelegateExporter(spansCodec(), delegate<SpanItem>(target, 'traces', userAgent));
}

/** As {@link createOtlpGrpcLogExporter}, for metrics (one item per data point). */
export function createOtlpGrpcMetricExporter(target: OtlpTarget, userAgent: string): DelegateExporter<MetricPoint> {
  return new DelegateExporter(metricsCodec(), delegate<MetricPoint>(target, 'metrics', userAgent));
}
