/**
 * CPU per event of the metrics aggregation, without the network, side by side
 * in one process: the tracer's path (src/otlp/metrics/aggregator.ts: its own
 * tallies observed by asynchronous instruments, its own histograms) and,
 * as the reference, the same metrics with only the SDK's synchronous
 * instruments (Counter / UpDownCounter / Histogram, attributes per call),
 * from the tests' connections (test/fixtures/tcp-events.ts: C, A, X, X each)
 * spread over `series` server ports. Each round records every event, then one
 * collection (cumulative) and its encoding; medians of `passes` rounds, the
 * two paths interleaved.
 *
 *   node bench/otlp-metrics-cost.ts [events] [passes] [series]
 */
import { ValueType } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { MetricsAggregator } from '../src/otlp/metrics/aggregator.ts';
import { DURATION_BUCKETS, failureAttributes, LATENCY_BUCKETS, seriesAttributes } from '../src/otlp/metrics/instruments.ts';
import { encodeMetricPoints } from '../src/otlp/metrics/points.ts';
import { SpanResources } from '../src/otlp/resources.ts';
import type { TcpEvent } from '../src/types.ts';
import { connection } from '../test/fixtures/tcp-events.ts';

class Reader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }

  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function workload(events: number, series: number): TcpEvent[] {
  const out: TcpEvent[] = [];
  for (let i = 0; out.length < events; i++) {
    const c = connection(i);
    const port = 5000 + (i % series);
    out.push(
      { ...c.connect, dport: port, handshakeNs: 200_000 },
      { ...c.accept, sport: port },
      { ...c.clientClose, dport: port, rttUs: 90, retransmits: i % 3 },
      { ...c.serverClose, sport: port },
    );
  }
  return out.slice(0, events);
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function ours(events: readonly TcpEvent[]): Promise<number> {
  const cfg = resolveOtlpConfig({ signals: 'metrics' }, {});
  const agg = new MetricsAggregator(new SpanResources(cfg, '0'), cfg.metricExport, { name: 'tcptracer-otel', version: '0' });
  const start = cpuUs();
  for (let i = 0; i < events.length; i += 512) agg.record(events.slice(i, i + 512));
  encodeMetricPoints(await agg.collect());
  return (cpuUs() - start) / events.length;
}

/** The SDK's synchronous instruments, one provider per process resource as ours. */
async function sdk(events: readonly TcpEvent[]): Promise<number> {
  const providers = new Map<string, { reader: Reader; record: (e: TcpEvent) => void }>();
  const make = (comm: string): { reader: Reader; record: (e: TcpEvent) => void } => {
    const reader = new Reader();
    const meter = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': comm }), readers: [reader] }).getMeter('tcptracer-otel');
    const int = { valueType: ValueType.INT };
    const connections = meter.createCounter('tcptracer.connections', int);
    const open = meter.createUpDownCounter('tcptracer.connections.open', int);
    const failures = meter.createCounter('tcptracer.connection.failures', int);
    const retransmits = meter.createCounter('tcptracer.connection.retransmits', int);
    const io = meter.createCounter('tcptracer.connection.io', int);
    const duration = meter.createHistogram('tcptracer.connection.duration', { advice: { explicitBucketBoundaries: [...DURATION_BUCKETS] } });
    const handshake = meter.createHistogram('tcptracer.connection.handshake.duration', { advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS] } });
    const rtt = meter.createHistogram('tcptracer.connection.rtt', { advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS] } });
    const record = (e: TcpEvent): void => {
      const a = seriesAttributes(e);
      if (e.type === 'connect' || e.type === 'accept') {
        connections.add(1, a);
        open.add(1, a);
        if (e.handshakeNs > 0) handshake.record(e.handshakeNs / 1e9, a);
      } else if (e.type === 'close') {
        open.add(-1, a);
        duration.record(e.durationNs / 1e9, a);
        if (e.rttUs > 0) rtt.record(e.rttUs / 1e6, a);
        retransmits.add(e.retransmits, a);
        io.add(e.bytesAcked, { ...a, 'network.io.direction': 'transmit' });
        io.add(e.bytesReceived, { ...a, 'network.io.direction': 'receive' });
        if (e.end === 'reset') failures.add(1, failureAttributes(e));
      } else failures.add(1, failureAttributes(e));
    };
    return { reader, record };
  };
  const start = cpuUs();
  for (const e of events) {
    let p = providers.get(e.comm);
    if (p === undefined) providers.set(e.comm, (p = make(e.comm)));
    p.record(e);
  }
  for (const p of providers.values()) await p.reader.collect();
  return (cpuUs() - start) / events.length;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const [eventsArg = '200000', passesArg = '5', seriesArg = '100'] = process.argv.slice(2);
const events = workload(Number(eventsArg), Number(seriesArg));
await ours(events.slice(0, 20_000));
await sdk(events.slice(0, 20_000));
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < Number(passesArg); i++) {
  a.push(await ours(events));
  b.push(await sdk(events));
}
process.stdout.write(
  `metrics aggregation, ${events.length} events over ${seriesArg} server ports, median of ${passesArg}:\n` +
    `  tracer (tallies, own histograms):  ${median(a).toFixed(3)} µs/event [${a.map((x) => x.toFixed(3)).join(' ')}]\n` +
    `  SDK synchronous instruments:      ${median(b).toFixed(3)} µs/event [${b.map((x) => x.toFixed(3)).join(' ')}]\n`,
);
