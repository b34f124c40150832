/**
 * OtlpSink: TcpEvents in; OTLP/gRPC log records (one per event), spans
 * (one per connection) and metrics (aggregated: src/otlp/metrics/, counted
 * by {@link OtlpSink.measure}, collected every OTEL_METRIC_EXPORT_INTERVAL
 * and at shutdown, one item per data point) out.
 *
 * Each signal has one pipeline of the same parts: a queue of what is not made
 * yet -> {@link BoundedBatchProcessor} (bounded, counts drops) ->
 * {@link RetryingExporter} (backoff on retryable gRPC errors) -> the OTLP/gRPC
 * exporter (src/otlp/export/grpc.ts: the SDK's export delegate, requests encoded
 * from the items by src/otlp/wire/requests.ts, partial successes counted). Whatever
 * the collector does (absent, restarting, refusing, slow), emit() never
 * blocks or throws, memory stays bounded by the queue sizes and
 * the open-connection map, and every record and span not delivered is counted.
 *
 * The queues hold the events, not log records or spans: the processor has
 * them made into items (a LogItem per event, a SpanItem per connection) only
 * when it is about to export them. An item lives for one export instead of
 * the whole wait in the queue (less for the garbage collector to promote and
 * mark), and an event refused because a queue is full costs nothing but a
 * count.
 *
 * Sampling (src/otlp/sampling.ts): {@link OtlpSink.emit} asks the one
 * {@link ConnectionSampler} which events' connections are exported; the
 * records and spans of the others are counted as sampled out (`sampledOut`),
 * apart from the losses. A consumer that must see every connection (metrics)
 * takes the events before that.
 *
 * Backpressure: {@link OtlpSink.room} says how many events emit() takes now
 * (what both pipelines can take: an event may need a log slot and a span
 * slot), and {@link OtlpSink.onRoom} calls back when that may have grown, so
 * the caller can leave events in the kernel's ring buffer meanwhile.
 */
import type { HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { TcpEvent } from '../types.ts';
import { PACKAGE_NAME, packageVersion } from '../version.ts';
import type { OtlpConfig, OtlpTarget } from './config.ts';
import { LogQueue } from './logs/queue.ts';
import { OpenConnections } from './traces/connections.ts';
import { SpanQueue } from './traces/queue.ts';
import type { LogItem, SpanItem } from './wire/requests.ts';
import { RetryingExporter } from './export/retry.ts';
import type { ExportFailure, RetryPolicy } from './export/retry.ts';
import { createOtlpGrpcLogExporter, createOtlpGrpcMetricExporter, createOtlpGrpcTraceExporter } from './export/grpc.ts';
import { createOtlpHttpLogExporter, createOtlpHttpMetricExporter, createOtlpHttpTraceExporter } from './export/http.ts';
import { MetricsAggregator } from './metrics/aggregator.ts';
import type { MetricPoint } from './metrics/points.ts';
import { BoundedBatchProcessor } from './export/processor.ts';
import type { ItemExporter } from './export/processor.ts';
import { detectHost, SpanResources, tracerResource } from './resources.ts';
import { ConnectionSampler } from './sampling.ts';
import type { ConnectionEnding } from './traces/span.ts';

export interface OtlpSinkOptions {
  /** Retry policy for failed exports. Default: DEFAULT_RETRY_POLICY (500 ms doubling to 5 s, give up after 60 s, new channel after 15 s unavailable). */
  readonly retry?: Partial<RetryPolicy>;
  /** Export requests in flight at once, per signal. Default 2. */
  readonly maxConcurrentExports?: number;
  /** Most open connections remembered for `tracer_stopped` spans. Default 65536 (MAX_OPEN_CONNECTIONS). */
  readonly maxOpenConnections?: number;
}

/**
 * Counts of one signal since start (log records, or spans). At any time:
 * `emitted = exported + droppedQueueFull + droppedExportFailed + droppedRejected + pending`.
 */
export interface OtlpSignalStats {
  /** Items offered: log records (one per event), spans (one per ended connection), metric data points (per collection). */
  readonly emitted: number;
  /** Items the collector acknowledged and accepted. */
  readonly exported: number;
  /** Items refused because the queue was full (or the sink was shutting down). */
  readonly droppedQueueFull: number;
  /** Items given up: non-retryable error, retries exhausted, or undelivered at shutdown. */
  readonly droppedExportFailed: number;
  /** Items the collector acknowledged but rejected (OTLP partial success). */
  readonly droppedRejected: number;
  /** Items queued or being exported. */
  readonly pending: number;
  /** Export retries made. */
  readonly retries: number;
  /** Latest export failure or partial success message, one line; undefined if none happened. */
  readonly lastError: string | undefined;
  /** Items not offered because their connection was sampled out (src/otlp/sampling.ts): not losses, not in `emitted`. */
  readonly sampledOut: number;
}

/**
 * Totals over the exported signals (the same invariant holds for them), the
 * per-signal detail, and the span side's own bounds.
 */
export interface OtlpSinkStats extends OtlpSignalStats {
  /** Log records; undefined when logs are not exported. */
  readonly logs: OtlpSignalStats | undefined;
  /** Spans; undefined when traces are not exported. */
  readonly traces: OtlpSignalStats | undefined;
  /** Metric data points; undefined when metrics are not exported. */
  readonly metrics: OtlpSignalStats | undefined;
  /** Events counted in the metrics (all the tracer read, failed connects included); 0 when metrics are not exported. */
  readonly metricEvents: number;
  /** Connections open now (remembered for their span; 0 when traces are not exported). */
  readonly openConnections: number;
  /** Connections not remembered because the open-connection map was full (their span is still made at their close; none at shutdown). */
  readonly openOverflow: number;
  /** Spans exported under the fallback resource because the per-process resources were all taken. */
  readonly resourceOverflow: number;
}

/** One signal's processor, exporter and count of items offered. */
class Pipeline<T extends { readonly resource: Resource }> {
  readonly processor: BoundedBatchProcessor<T>;
  readonly exporter: RetryingExporter<T>;
  emitted = 0;
  sampledOut = 0;

  constructor(processor: BoundedBatchProcessor<T>, exporter: RetryingExporter<T>) {
    this.processor = processor;
    this.exporter = exporter;
  }

  /** Counts `offered` items, of which `accepted` were queued (the rest are counted as refused). */
  offer(offered: number, accepted: number): void {
    this.emitted += offered;
    if (accepted < offered) this.processor.countRefused(offered - accepted);
  }

  stats(): OtlpSignalStats {
    return { emitted: this.emitted, ...this.processor.counts(), retries: this.exporter.retries, lastError: this.exporter.lastError, sampledOut: this.sampledOut };
  }
}

export class OtlpSink {
  private readonly cfg: OtlpConfig;
  private readonly logs: Pipeline<LogItem> | undefined;
  private readonly logQueue: LogQueue | undefined;
  private readonly traces: Pipeline<SpanItem> | undefined;
  private readonly spanQueue: SpanQueue | undefined;
  private readonly spanResources: SpanResources | undefined;
  private readonly connections: OpenConnections;
  private readonly sampler: ConnectionSampler;
  private readonly metrics: Pipeline<MetricPoint> | undefined;
  private readonly aggregator: MetricsAggregator | undefined;
  private readonly metricsTimer: NodeJS.Timeout | undefined;
  private collecting: Promise<void> | undefined;
  private closing = false;
  private shutdownResult: Promise<{ undelivered: number }> | undefined;

  /** @throws UsageError if a TLS file named in `cfg` cannot be read. */
  constructor(cfg: OtlpConfig, options: OtlpSinkOptions = {}) {
    this.cfg = cfg;
    const version = packageVersion();
    this.connections = new OpenConnections(options.maxOpenConnections);
    this.sampler = new ConnectionSampler(cfg.sampling);
    const exporter = <T>(target: OtlpTarget, create: (t: OtlpTarget, userAgent: string) => ItemExporter<T>): RetryingExporter<T> => {
      let channels = 0;
      return new RetryingExporter(() => {
        channels++;
        return create(target, `${PACKAGE_NAME}/${version}${channels > 1 ? ` (channel ${channels})` : ''}`);
      }, options.retry);
    };
    const host = detectHost();
    const batching = {
      maxQueueSize: cfg.maxQueueSize,
      maxExportBatchSize: cfg.maxExportBatchSize,
      scheduledDelayMs: cfg.scheduledDelayMs,
      maxConcurrentExports: options.maxConcurrentExports,
    };
    if (cfg.signals.includes('logs')) {
      const retrying = exporter(cfg.logs, cfg.logs.protocol === 'grpc' ? createOtlpGrpcLogExporter : createOtlpHttpLogExporter);
      const processor = new BoundedBatchProcessor(retrying, batching);
      this.logs = new Pipeline(processor, retrying);
      this.logQueue = new LogQueue(tracerResource(cfg, version, host), (item) => {
        processor.add(item);
      });
      processor.attach(this.logQueue);
    }
    if (cfg.signals.includes('traces')) {
      const retrying = exporter(cfg.traces, cfg.traces.protocol === 'grpc' ? createOtlpGrpcTraceExporter : createOtlpHttpTraceExporter);
      const processor = new BoundedBatchProcessor(retrying, batching);
      this.traces = new Pipeline(processor, retrying);
      const resources = new SpanResources(cfg, version, host);
      this.spanResources = resources;
      this.spanQueue = new SpanQueue((comm) => resources.resourceFor(comm), (item) => {
        processor.add(item);
      });
      processor.attach(this.spanQueue);
    }
    if (cfg.signals.includes('metrics')) {
      const retrying = exporter(cfg.metrics, cfg.metrics.protocol === 'grpc' ? createOtlpGrpcMetricExporter : createOtlpHttpMetricExporter);
      // A collection is sent as soon as it is made, and whole: its points exist already (bounded by
      // the cardinality limit, see collectOnce), so an item bound here would only cut it.
      const processor = new BoundedBatchProcessor(retrying, { ...batching, maxQueueSize: Number.MAX_SAFE_INTEGER, scheduledDelayMs: 0 });
      this.metrics = new Pipeline(processor, retrying);
      this.aggregator = new MetricsAggregator(new SpanResources(cfg, version, host), cfg.metricExport, { name: PACKAGE_NAME, version });
      this.metricsTimer = setInterval(() => void this.collectMetrics(), cfg.metricExport.intervalMs);
      this.metricsTimer.unref();
    }
  }

  /**
   * Counts `events` in the metrics (when they are exported): every event the
   * tracer read, failed connects included, whatever the other signals took.
   */
  measure(events: readonly TcpEvent[]): void {
    this.aggregator?.record(events);
  }

  /**
   * One collection of the metrics into their export queue, whole. One at a
   * time: a call while one runs waits for it, and a collection waits until the
   * previous one is out of the queue (exported, or given up by the exporter's
   * retries and counted), so the queue holds one collection at most: its
   * memory is bounded by the aggregator's series (cardinality limit x metrics
   * x resources), not by an item count that would cut a large one. A slow
   * collector makes collections later and covering more, never lost.
   */
  collectMetrics(): Promise<void> {
    this.collecting ??= this.collectOnce().finally(() => (this.collecting = undefined));
    return this.collecting;
  }

  private async collectOnce(): Promise<void> {
    const pipeline = this.metrics;
    if (pipeline === undefined || this.aggregator === undefined) return;
    await pipeline.processor.settled();
    let points: MetricPoint[];
    try {
      points = await this.aggregator.collect();
    } catch {
      return; // the SDK's collection does not throw for what the tracer observes; nothing to count if it did
    }
    const fit = Math.min(points.length, pipeline.processor.room());
    pipeline.offer(points.length, fit);
    for (let i = 0; i < fit; i++) pipeline.processor.add(points[i] as MetricPoint);
  }

  /**
   * Queues the events that fit ({@link room}) of the connections the sampler
   * keeps (the others' are counted as sampledOut): each becomes a log record, and
   * each close also its connection's span, when its batch is exported. The
   * other records are counted as droppedQueueFull; every event still follows
   * its connection, so the span of a connection whose events were refused is
   * queued if the span queue has room, else counted (see {@link follow}).
   * Never blocks or throws. The events are kept until then: they must not be
   * changed afterwards (the array may be).
   *
   * @param observedAt when user space read these events; default now.
   */
  emit(events: readonly TcpEvent[], observedAt: HrTime = hrTime()): void {
    // the one sampling decision (every event counts before this line)
    const kept = this.sampler.keep(events);
    const count = kept.length;
    const accepted = Math.min(count, this.room());
    if (this.logs !== undefined && this.logQueue !== undefined) {
      this.logs.sampledOut += events.length - count;
      this.logs.offer(count, accepted);
      // the queue keeps the array: a copy unless the sampler already made one
      if (accepted > 0) this.logQueue.push(accepted < count ? kept.slice(0, accepted) : kept === events ? kept.slice() : kept, observedAt);
    }
    this.follow(events);
    if (accepted > 0) this.logs?.processor.offered();
  }
  /**
   * How many more events emit() would accept now (0 once shutting down): what
   * every exported signal's queue can take, an event needing at most one log
   * record and one span.
   */
  room(): number {
    if (this.closing) return 0;
    let room = Number.MAX_SAFE_INTEGER;
    if (this.logs !== undefined) room = Math.min(room, this.logs.processor.room());
    if (this.traces !== undefined) room = Math.min(room, this.traces.processor.room());
    return room;
  }

  /**
   * Calls `listener` whenever {@link room} may have grown (an export finished
   * and the next batches were taken), from an export's completion, never from
   * inside emit(): the listener may call emit(). Returns a function that
   * removes it.
   */
  onRoom(listener: () => void): () => void {
    const off = [this.logs?.processor.onRoom(listener), this.traces?.processor.onRoom(listener)];
    return () => {
      for (const remove of off) remove?.();
    };
  }

  /**
   * Follows each event's connection: a span due is queued while the span queue has room and it can be made,
   * else counted as dropped (droppedQueueFull), so that every connection
   * that had a connect, accept or close ends as a span delivered or counted
   * (as dropped, or as sampled out: every connection is followed, the sampler
   * decides when its span is due).
   */
  private follow(events: readonly TcpEvent[]): void {
    if (this.traces === undefined || this.spanQueue === undefined) return;
    const room = this.traces.processor.room();
    let due = 0;
    let queued = 0;
    for (const event of events) {
      const span = this.connections.observe(event);
      if (span === undefined) continue;
      // decided on the event that made the span due: the close (or a connect/accept past shutdown)
      const decision = this.sampler.decide(event);
      if (decision === null) {
        this.traces.sampledOut++;
        continue;
      }
      due++;
      if (span !== null && queued < room) {
        this.spanQueue.push(withTraceState(span, decision));
        queued++;
      }
    }
    if (due === 0) return;
    this.traces.offer(due, queued);
    if (queued > 0) this.traces.processor.offered();
  }

  stats(): OtlpSinkStats {
    const logs = this.logs?.stats();
    const traces = this.traces?.stats();
    const metrics = this.metrics?.stats();
    const parts = [logs, traces, metrics].filter((s) => s !== undefined);
    const sum = (pick: (s: OtlpSignalStats) => number): number => parts.reduce((n, s) => n + pick(s), 0);
    return {
      emitted: sum((s) => s.emitted),
      exported: sum((s) => s.exported),
      droppedQueueFull: sum((s) => s.droppedQueueFull),
      droppedExportFailed: sum((s) => s.droppedExportFailed),
      droppedRejected: sum((s) => s.droppedRejected),
      pending: sum((s) => s.pending),
      retries: sum((s) => s.retries),
      lastError: this.exportFailure()?.message,
      sampledOut: sum((s) => s.sampledOut),
      logs,
      traces,
      metrics,
      metricEvents: this.aggregator?.events ?? 0,
      openConnections: this.connections.size,
      openOverflow: this.connections.overflow,
      resourceOverflow: this.spanResources?.overflow ?? 0,
    };
  }

  /** The latest export failure over the signals, and what became of its batch (see ExportFailure); undefined if none yet. */
  exportFailure(): ExportFailure | undefined {
    let latest: ExportFailure | undefined;
    for (const f of [this.logs?.exporter.latestFailure, this.traces?.exporter.latestFailure, this.metrics?.exporter.latestFailure]) {
      if (f !== undefined && (latest === undefined || f.at > latest.at)) latest = f;
    }
    return latest;
  }

  /**
   * Stops accepting events, ends the connections still open as spans marked
   * `tracer_stopped`, tries to deliver what is queued within `deadlineMs`,
   * then shuts the exporters down. What was not sent by the deadline is given
   * up; exports in flight then get up to one attempt's timeout (plus a second)
   * to report their outcome, so that a batch the collector took is not counted
   * as lost. Resolves with the number of records and spans that could not be
   * delivered; those are also counted in droppedExportFailed. Idempotent.
   */
  shutdown(deadlineMs: number = this.cfg.shutdownTimeoutMs): Promise<{ undelivered: number }> {
    this.shutdownResult ??= this.shutdownOnce(deadlineMs);
    return this.shutdownResult;
  }

  private async shutdownOnce(deadlineMs: number): Promise<{ undelivered: number }> {
    // the last collection: what was counted since the previous one is exported too
    clearInterval(this.metricsTimer);
    await settleWithin(this.collectMetrics(), deadlineMs);
    if (this.traces !== undefined && this.spanQueue !== undefined) {
      const endings: ConnectionEnding[] = [];
      for (const ending of this.connections.stopAll(BigInt(Date.now()) * 1_000_000n)) {
        const decision = this.sampler.decide(ending.event);
        if (decision === null) this.traces.sampledOut++;
        else endings.push(withTraceState(ending, decision));
      }
      const fit = Math.min(endings.length, this.traces.processor.room());
      for (let i = 0; i < fit; i++) this.spanQueue.push(endings[i] as (typeof endings)[number]);
      this.traces.offer(endings.length, fit);
      if (fit > 0) this.traces.processor.offered();
    }
    this.closing = true;
    const pipelines = [this.logs?.processor, this.traces?.processor, this.metrics?.processor].filter((p) => p !== undefined);
    for (const p of pipelines) p.close();
    await settleWithin(Promise.all(pipelines.map((p) => p.forceFlush())), deadlineMs);
    // what was not sent by the deadline is given up; what is in flight is counted by its outcome,
    // which comes within one attempt's timeout: the collector may have taken it
    const failed = (): number => pipelines.reduce((n, p) => n + p.counts().droppedExportFailed, 0);
    const before = failed();
    for (const p of pipelines) p.seal();
    await settleWithin(Promise.all(pipelines.map((p) => p.settled())), Math.max(this.cfg.logs.timeoutMs, this.cfg.traces.timeoutMs, this.cfg.metrics.timeoutMs) + 1000);
    for (const p of pipelines) p.abandon();
    const undelivered = failed() - before;
    await settleWithin(Promise.all([...pipelines.map((p) => p.shutdown()), this.aggregator?.shutdown()]), 1000);
    return { undelivered };
  }
}

/** `ending` carrying the sampler's trace state, if it gave one. */
function withTraceState(ending: ConnectionEnding, traceState: string | undefined): ConnectionEnding {
  return traceState === undefined ? ending : { ...ending, traceState };
}

/** Waits for `promise` (its outcome ignored) or `ms`, whichever comes first. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([promise.then(noop, noop), timeout]);
  clearTimeout(timer);
}

function noop(): void {
  // outcome deliberately ignored
}
