/**
 * What the metrics signal exports, one item per data point, and its export
 * requests.
 *
 * A collection (./aggregator.ts) becomes one {@link MetricPoint} per data
 * point, so that the export path (src/otlp/export/processor.ts: bounded,
 * batching, retrying) counts what it delivers, drops or the collector
 * rejects (`rejected_data_points`) in data points, the unit OTLP counts in.
 * {@link encodeMetricPoints} puts a batch back together as the SDK's
 * ResourceMetrics (consecutive points of one resource and one metric share
 * them) and writes each with the SDK's own ProtobufMetricsSerializer; the
 * request is their concatenation, which protobuf reads as one
 * ExportMetricsServiceRequest with those resource_metrics in order.
 */
import type { Resource } from '@opentelemetry/resources';
import type { DataPoint, MetricData, ResourceMetrics, ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';

/** One data point of one collection, with what it belongs to. */
export interface MetricPoint {
  readonly resource: Resource;
  readonly scope: ScopeMetrics['scope'];
  /** The collected metric (descriptor, temporality, type); its own dataPoints are not read. */
  readonly metric: MetricData;
  readonly point: DataPoint<unknown>;
}

/** The points of a collection, in its order. */
export function pointsOf(collection: ResourceMetrics): MetricPoint[] {
  const points: MetricPoint[] = [];
  for (const { scope, metrics } of collection.scopeMetrics) {
    for (const metric of metrics) {
      for (const point of metric.dataPoints as DataPoint<unknown>[]) points.push({ resource: collection.resource, scope, metric, point });
    }
  }
  return points;
}

/** The ResourceMetrics of `points`, one per run of points of the same resource, in order. */
export function groupMetricPoints(points: readonly MetricPoint[]): ResourceMetrics[] {
  const out: ResourceMetrics[] = [];
  let resource: ResourceMetrics | undefined;
  let scope: ScopeMetrics | undefined;
  let source: MetricData | undefined;
  let metric: { dataPoints: DataPoint<unknown>[] } | undefined;
  for (const p of points) {
    if (resource === undefined || resource.resource !== p.resource) {
      resource = { resource: p.resource, scopeMetrics: [] };
      out.push(resource);
      scope = undefined;
    }
    if (scope === undefined || scope.scope !== p.scope) {
      scope = { scope: p.scope, metrics: [] };
      resource.scopeMetrics.push(scope);
      source = undefined;
    }
    if (source !== p.metric || metric === undefined) {
      source = p.metric;
      metric = { ...p.metric, dataPoints: [] };
      scope.metrics.push(metric as MetricData);
    }
    metric.dataPoints.push(p.point);
  }
  return out;
}

/** The ExportMetricsServiceRequest of `points` (see the module doc). */
export function encodeMetricPoints(points: readonly MetricPoint[]): Uint8Array {
  const parts = groupMetricPoints(points).map((rm) => ProtobufMetricsSerializer.serializeRequest(rm) ?? new Uint8Array(0));
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
