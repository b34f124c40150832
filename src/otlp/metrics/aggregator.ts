/**
 * The metrics side of the OTLP sink: every event the tracer read is counted
 * (none is refused: aggregation holds a bounded number of series, not
 * events), under the resource its process's spans are exported under
 * (src/otlp/resources.ts: one per traced process, at most MAX_SPAN_RESOURCES,
 * then the fallback; or the tracer's own), so that a backend groups the
 * metrics by the traced service. Each resource has its own meters
 * (./meters.ts); a collection reads them all and returns their data points.
 */
import type { Resource } from '@opentelemetry/resources';
import type { TcpEvent } from '../../types.ts';
import type { MetricExportConfig } from '../config.ts';
import type { SpanResources } from '../resources.ts';
import { ResourceMeters } from './meters.ts';
import type { MetricsScope } from './meters.ts';
import { pointsOf } from './points.ts';
import type { MetricPoint } from './points.ts';

export class MetricsAggregator {
  private readonly resources: SpanResources;
  private readonly cfg: MetricExportConfig;
  private readonly scope: MetricsScope;
  private readonly meters = new Map<Resource, ResourceMeters>();
  private recorded = 0;

  constructor(resources: SpanResources, cfg: MetricExportConfig, scope: MetricsScope) {
    this.resources = resources;
    this.cfg = cfg;
    this.scope = scope;
  }

  /** Events counted so far. */
  get events(): number {
    return this.recorded;
  }

  /** Resources with meters. */
  get size(): number {
    return this.meters.size;
  }

  /** Counts every event. */
  record(events: readonly TcpEvent[]): void {
    let lastComm: string | undefined;
    let last: ResourceMeters | undefined;
    for (const event of events) {
      if (event.comm !== lastComm || last === undefined) {
        lastComm = event.comm;
        const resource = this.resources.resourceFor(event.comm);
        last = this.meters.get(resource);
        if (last === undefined) {
          last = new ResourceMeters(resource, this.cfg, this.scope);
          this.meters.set(resource, last);
        }
      }
      last.record(event);
    }
    this.recorded += events.length;
  }

  /** One collection of every resource's meters: its data points, resource by resource. */
  async collect(): Promise<MetricPoint[]> {
    const collections = await Promise.all([...this.meters.values()].map((m) => m.collect()));
    return collections.flatMap((c) => (c === undefined ? [] : pointsOf(c)));
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.meters.values()].map((m) => m.shutdown()));
  }
}
