/**
 * The metrics of one resource (one traced process, as its spans are
 * exported under): an SDK MeterProvider of that resource with one reader the
 * tracer collects when it exports, the counters as asynchronous instruments
 * over the tracer's own tallies (./tally.ts): the SDK makes their temporality
 * and applies the cardinality limit (the reader's cardinality selector; the
 * overflow series `otel.metric.overflow=true`). The histograms are the
 * tracer's own (./histograms.ts: the SDK's synchronous histograms cost twice
 * the rest of the aggregation), collected as the SDK's HistogramMetricData
 * into the same scope. See ./instruments.ts for what each event counts.
 */
import { ValueType } from '@opentelemetry/api';
import type { Attributes, ObservableResult } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { InstrumentType, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { TcpEvent } from '../../types.ts';
import type { MetricExportConfig } from '../config.ts';
import {
  ATTR_NETWORK_IO_DIRECTION,
  DURATION_BUCKETS,
  failureAttributes,
  failureType,
  LATENCY_BUCKETS,
  METRIC_CONNECTIONS,
  METRIC_CONNECTIONS_OPEN,
  METRIC_DURATION,
  METRIC_FAILURES,
  METRIC_HANDSHAKE,
  METRIC_IO,
  METRIC_RETRANSMITS,
  METRIC_RTT,
  seriesAttributes,
  seriesKey,
  temporalitySelector,
} from './instruments.ts';
import { HistogramTally } from './histograms.ts';
import { Tally } from './tally.ts';

/** A reader that only collects when asked (the sink's timer and its shutdown). */
class CollectingReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }

  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const transmit = (event: TcpEvent): Attributes => ({ ...seriesAttributes(event), [ATTR_NETWORK_IO_DIRECTION]: 'transmit' });
const receive = (event: TcpEvent): Attributes => ({ ...seriesAttributes(event), [ATTR_NETWORK_IO_DIRECTION]: 'receive' });

/** The instrumentation scope of the metrics. */
export interface MetricsScope {
  readonly name: string;
  readonly version: string;
}

export class ResourceMeters {
  private readonly provider: MeterProvider;
  private readonly reader: CollectingReader;
  private readonly scope: MetricsScope;
  private readonly connections: Tally;
  private readonly open: Tally;
  private readonly failures: Tally;
  private readonly retransmits: Tally;
  private readonly io: Tally;
  private readonly duration: HistogramTally;
  private readonly handshake: HistogramTally;
  private readonly rtt: HistogramTally;

  constructor(resource: Resource, cfg: MetricExportConfig, scope: MetricsScope) {
    this.reader = new CollectingReader({
      aggregationTemporalitySelector: temporalitySelector(cfg.temporality),
      cardinalitySelector: () => cfg.cardinalityLimit,
    });
    this.provider = new MeterProvider({ resource, readers: [this.reader] });
    this.scope = scope;
    const meter = this.provider.getMeter(scope.name, scope.version);
    const limit = cfg.cardinalityLimit;
    this.connections = new Tally(limit);
    this.open = new Tally(limit);
    this.failures = new Tally(limit);
    this.retransmits = new Tally(limit);
    this.io = new Tally(limit);
    const observe = (tally: Tally) => (result: ObservableResult): void => {
      tally.forEach((value, attributes) => {
        result.observe(value, attributes);
      });
    };
    const int = { valueType: ValueType.INT };
    meter.createObservableCounter(METRIC_CONNECTIONS, { ...int, unit: '{connection}', description: 'TCP connections established (connect or accept)' }).addCallback(observe(this.connections));
    meter.createObservableUpDownCounter(METRIC_CONNECTIONS_OPEN, { ...int, unit: '{connection}', description: 'TCP connections open now' }).addCallback(observe(this.open));
    meter
      .createObservableCounter(METRIC_FAILURES, { ...int, unit: '{connection}', description: 'TCP connects that failed and connections reset, by error.type' })
      .addCallback(observe(this.failures));
    meter
      .createObservableCounter(METRIC_RETRANSMITS, { ...int, unit: '{segment}', description: 'TCP segments retransmitted by this host, counted when the connection closes' })
      .addCallback(observe(this.retransmits));
    meter
      .createObservableCounter(METRIC_IO, { ...int, unit: 'By', description: 'Bytes sent (acknowledged by the peer) and received, counted when the connection closes' })
      .addCallback(observe(this.io));
    const temporality = temporalitySelector(cfg.temporality)(InstrumentType.HISTOGRAM);
    const start = hrTime();
    const histogram = (name: string, description: string, buckets: readonly number[]): HistogramTally => new HistogramTally(name, description, buckets, limit, temporality, start);
    this.duration = histogram(METRIC_DURATION, 'TCP connection lifetime, from established to close', DURATION_BUCKETS);
    this.handshake = histogram(METRIC_HANDSHAKE, 'TCP handshake time of outgoing connections, SYN sent to established', LATENCY_BUCKETS);
    this.rtt = histogram(METRIC_RTT, 'Smoothed round-trip time of a TCP connection at its close', LATENCY_BUCKETS);
  }

  /** Counts one event (see ./instruments.ts). */
  record(event: TcpEvent): void {
    const key = seriesKey(event);
    switch (event.type) {
      case 'connect':
      case 'accept': {
        this.connections.add(key, 1, event, seriesAttributes);
        const series = this.open.add(key, 1, event, seriesAttributes);
        if (event.type === 'connect' && event.handshakeNs > 0) this.handshake.record(key, event.handshakeNs / 1e9, series.attributes);
        return;
      }
      case 'close': {
        const series = this.open.add(key, -1, event, seriesAttributes);
        this.duration.record(key, event.durationNs / 1e9, series.attributes);
        if (event.rttUs > 0) this.rtt.record(key, event.rttUs / 1e6, series.attributes);
        this.retransmits.add(key, event.retransmits, event, seriesAttributes);
        this.io.add(`${key} t`, event.bytesAcked, event, transmit);
        this.io.add(`${key} r`, event.bytesReceived, event, receive);
        if (event.end === 'reset') this.failures.add(`${key} ${failureType(event)}`, 1, event, failureAttributes);
        return;
      }
      case 'failed':
        this.failures.add(`${key} ${failureType(event)}`, 1, event, failureAttributes);
        return;
    }
  }

  /** Everything measured so far, as the reader's temporality makes it; undefined when there is no data point. */
  async collect(): Promise<ResourceMetrics | undefined> {
    const { resourceMetrics } = await this.reader.collect();
    const now = hrTime();
    const histograms = [this.duration, this.handshake, this.rtt].map((h) => h.collect(now)).filter((m) => m !== undefined);
    const [first, ...rest] = resourceMetrics.scopeMetrics;
    const scopes = [{ scope: first?.scope ?? this.scope, metrics: [...(first?.metrics ?? []), ...histograms] }, ...rest];
    const scopeMetrics = scopes
      .map((s) => ({ scope: s.scope, metrics: s.metrics.filter((m) => m.dataPoints.length > 0) }))
      .filter((s) => s.metrics.length > 0);
    return scopeMetrics.length === 0 ? undefined : { resource: resourceMetrics.resource, scopeMetrics };
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
