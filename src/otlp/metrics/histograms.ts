/**
 * A bounded explicit-bucket histogram of one metric, kept by the tracer and
 * collected as the SDK's HistogramMetricData (what ProtobufMetricsSerializer
 * writes).
 *
 * Why not the SDK's synchronous Histogram: each of its measurements hashes
 * the attribute object (sorted keys, JSON), about 0.25 µs; with three
 * histograms that was two thirds of the aggregation's cost per event
 * (bench/otlp-metrics-cost.ts). Here a measurement is a Map lookup by the
 * series' short key and a binary search over the bounds.
 *
 * Same semantics as the SDK's explicit-bucket aggregation: bounds are
 * inclusive upper bounds, n bounds make n + 1 buckets, count, sum, min and
 * max per point. Cumulative: every series since the start; delta: the series
 * measured since the previous collection, which are then forgotten (so the
 * limit applies per interval, as the SDK's delta storage does). Bounded as
 * the specification bounds a metric's streams: at most `limit - 1` series,
 * then the overflow series (`otel.metric.overflow=true`).
 */
import type { Attributes, HrTime } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType } from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { OVERFLOW_ATTRIBUTES } from './instruments.ts';

interface Series {
  readonly attributes: Attributes;
  readonly counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

export class HistogramTally {
  private readonly descriptor: HistogramMetricData['descriptor'];
  private readonly bounds: number[];
  private readonly limit: number;
  private readonly temporality: AggregationTemporality;
  private series = new Map<string, Series>();
  private overflow: Series | undefined;
  private start: HrTime;

  constructor(name: string, description: string, bounds: readonly number[], limit: number, temporality: AggregationTemporality, start: HrTime) {
    this.descriptor = { name, description, unit: 's', valueType: ValueType.DOUBLE };
    this.bounds = [...bounds];
    this.limit = Math.max(1, limit);
    this.temporality = temporality;
    this.start = start;
  }

  /** One measurement of the series `key` (attributes used the first time). */
  record(key: string, value: number, attributes: Attributes): void {
    let s = this.series.get(key);
    if (s === undefined) {
      if (this.series.size >= this.limit - 1) s = this.overflow ??= this.newSeries(OVERFLOW_ATTRIBUTES);
      else {
        s = this.newSeries(attributes);
        this.series.set(key, s);
      }
    }
    // first bound >= value; past the last one, the last bucket
    let lo = 0;
    let hi = this.bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.bounds[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    (s.counts[lo] as number)++;
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
  }

  /** The metric as of `now`; undefined when it has no point. Delta: what was measured since the last collection. */
  collect(now: HrTime): HistogramMetricData | undefined {
    const all = [...this.series.values()];
    if (this.overflow !== undefined) all.push(this.overflow);
    const dataPoints: DataPoint<Histogram>[] = all.map((s) => ({
      startTime: this.start,
      endTime: now,
      attributes: s.attributes,
      value: { buckets: { boundaries: this.bounds, counts: [...s.counts] }, sum: s.sum, count: s.count, min: s.min, max: s.max },
    }));
    if (this.temporality === AggregationTemporality.DELTA) {
      this.series = new Map();
      this.overflow = undefined;
      this.start = now;
    }
    if (dataPoints.length === 0) return undefined;
    return { descriptor: this.descriptor, aggregationTemporality: this.temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints };
  }

  private newSeries(attributes: Attributes): Series {
    return { attributes, counts: new Array<number>(this.bounds.length + 1).fill(0), count: 0, sum: 0, min: Infinity, max: -Infinity };
  }
}
