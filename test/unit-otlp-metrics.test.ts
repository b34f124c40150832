/**
 * The metrics aggregation (src/otlp/metrics/): what each event counts, per
 * process resource, the cardinality limit and its overflow series, and the
 * three temporality preferences, read back from real SDK collections.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregationTemporality, DataPointType } from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import type { MetricTemporality } from '../src/otlp/config.ts';
import { MetricsAggregator } from '../src/otlp/metrics/aggregator.ts';
import { HistogramTally } from '../src/otlp/metrics/histograms.ts';
import { groupMetricPoints } from '../src/otlp/metrics/points.ts';
import { SpanResources } from '../src/otlp/resources.ts';
import type { TcpEvent } from '../src/types.ts';
import { connection, tcpEvent } from './fixtures/tcp-events.ts';

function aggregator(env: Record<string, string> = {}, flags: { cardinalityLimit?: number } = {}): MetricsAggregator {
  const cfg = resolveOtlpConfig({ signals: 'metrics', ...flags }, env);
  return new MetricsAggregator(new SpanResources(cfg, '1.0.0'), cfg.metricExport, { name: 'tcptracer-otel', version: '1.0.0' });
}

/** One collection: service.name -> metric name -> the metric. */
async function collect(agg: MetricsAggregator): Promise<Map<string, Map<string, MetricData>>> {
  const out = new Map<string, Map<string, MetricData>>();
  for (const rm of groupMetricPoints(await agg.collect())) {
    const service = String(rm.resource.attributes['service.name']);
    const metrics = out.get(service) ?? new Map<string, MetricData>();
    for (const m of rm.scopeMetrics.flatMap((s) => s.metrics)) metrics.set(m.descriptor.name, m);
    out.set(service, metrics);
  }
  return out;
}

function metric(all: Map<string, Map<string, MetricData>>, service: string, name: string): MetricData {
  const m = all.get(service)?.get(name);
  assert.ok(m, `${service}: ${name} collected`);
  return m;
}

/** The value of each data point, by its attributes (JSON, keys sorted). */
function values(m: MetricData): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of m.dataPoints as DataPoint<unknown>[]) {
    const key = JSON.stringify(Object.fromEntries(Object.entries(p.attributes).sort(([a], [b]) => a.localeCompare(b))));
    out[key] = typeof p.value === 'number' ? p.value : (p.value as Histogram).count;
  }
  return out;
}

const attrs = (o: Record<string, string | number | boolean>): string => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
const client = { 'network.type': 'ipv4', 'tcptracer.connection.role': 'client', 'server.address': '10.0.0.2', 'server.port': 5432 };
const server = { ...client, 'tcptracer.connection.role': 'server' };

/** Three connections psql -> postgres (each: connect, accept, client close by FIN, server close by reset), and two failed connects. */
function workload(): TcpEvent[] {
  const events: TcpEvent[] = [];
  for (let i = 0; i < 3; i++) {
    const c = connection(i);
    events.push(
      { ...c.connect, handshakeNs: 250_000 },
      c.accept,
      { ...c.clientClose, rttUs: 120, retransmits: 2, bytesReceived: 30 },
      c.serverClose,
    );
  }
  events.push(tcpEvent({ type: 'failed', errno: 111, localIsn: 0, peerIsn: 0 }), tcpEvent({ type: 'failed', errno: 0, dport: 6543 }));
  return events;
}

describe('metrics aggregation', () => {
  it('counts each event into its metrics, under its process resource', async () => {
    const agg = aggregator();
    agg.record(workload());
    assert.equal(agg.events, 14);
    const all = await collect(agg);
    assert.deepEqual([...all.keys()].sort(), ['postgres', 'psql']);
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connections')), { [attrs(client)]: 3 });
    assert.deepEqual(values(metric(all, 'postgres', 'tcptracer.connections')), { [attrs(server)]: 3 });
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connections.open')), { [attrs(client)]: 0 });
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.failures')), {
      [attrs({ ...client, 'error.type': 'connection_refused' })]: 1,
      [attrs({ ...client, 'server.port': 6543, 'error.type': 'aborted' })]: 1,
    });
    assert.deepEqual(values(metric(all, 'postgres', 'tcptracer.connection.failures')), { [attrs({ ...server, 'error.type': 'connection_reset' })]: 3 });
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.retransmits')), { [attrs(client)]: 6 });
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.io')), {
      [attrs({ ...client, 'network.io.direction': 'transmit' })]: 300,
      [attrs({ ...client, 'network.io.direction': 'receive' })]: 90,
    });
    const duration = metric(all, 'psql', 'tcptracer.connection.duration');
    assert.equal(duration.dataPointType, DataPointType.HISTOGRAM);
    assert.equal(duration.descriptor.unit, 's');
    const h = (duration.dataPoints[0] as DataPoint<Histogram>).value;
    assert.equal(h.count, 3);
    assert.ok(Math.abs((h.sum ?? 0) - 0.0015) < 1e-12, `sum ${h.sum}`);
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.handshake.duration')), { [attrs(client)]: 3 });
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.rtt')), { [attrs(client)]: 3 });
    const rtt = (metric(all, 'psql', 'tcptracer.connection.rtt').dataPoints[0] as DataPoint<Histogram>).value;
    assert.ok(Math.abs((rtt.max ?? 0) - 0.00012) < 1e-12);
    // the server side had no handshake or RTT sample: no such series
    assert.equal(all.get('postgres')?.has('tcptracer.connection.handshake.duration'), false);
    assert.equal(all.get('postgres')?.has('tcptracer.connection.rtt'), false);
    // units and kinds as issue 19 names them
    assert.equal(metric(all, 'psql', 'tcptracer.connections').descriptor.unit, '{connection}');
    assert.equal(metric(all, 'psql', 'tcptracer.connection.retransmits').descriptor.unit, '{segment}');
    assert.equal(metric(all, 'psql', 'tcptracer.connection.io').descriptor.unit, 'By');
    const open = metric(all, 'psql', 'tcptracer.connections.open');
    assert.equal(open.dataPointType, DataPointType.SUM);
    assert.equal((open as { isMonotonic?: boolean }).isMonotonic, false);
  });

  it('never puts a client port in an attribute', async () => {
    const agg = aggregator();
    agg.record(workload());
    for (const rm of groupMetricPoints(await agg.collect())) {
      for (const m of rm.scopeMetrics.flatMap((s) => s.metrics)) {
        for (const p of m.dataPoints as DataPoint<unknown>[]) {
          assert.ok(!Object.values(p.attributes).some((v) => typeof v === 'number' && v >= 40_000), `${m.descriptor.name}: ${JSON.stringify(p.attributes)}`);
        }
      }
    }
  });

  it('keeps the series of two containers running the same program apart, by container.id and k8s.pod.uid', async () => {
    const agg = aggregator();
    const pods = [
      { containerId: 'a'.repeat(64), podUid: '11111111-2222-3333-4444-555555555555' },
      { containerId: 'b'.repeat(64), podUid: '66666666-7777-8888-9999-000000000000' },
    ];
    const events: TcpEvent[] = [];
    for (const [i, pod] of [pods[0], pods[1], pods[1], undefined].entries()) {
      const c = connection(i);
      events.push({ ...c.connect, ...pod }, { ...c.clientClose, ...pod });
    }
    agg.record(events);
    const all = await collect(agg);
    const id = (pod: (typeof pods)[number] | undefined): Record<string, string> => (pod ? { 'container.id': pod.containerId, 'k8s.pod.uid': pod.podUid } : {});
    const expected = { [attrs({ ...client, ...id(pods[0]) })]: 1, [attrs({ ...client, ...id(pods[1]) })]: 2, [attrs(client)]: 1 };
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connections')), expected);
    assert.deepEqual(values(metric(all, 'psql', 'tcptracer.connection.duration')), expected);
    // each close took its own series' open connection back
    assert.deepEqual(Object.values(values(metric(all, 'psql', 'tcptracer.connections.open'))), [0, 0, 0]);
  });

  it('keeps at most the cardinality limit of series per metric, the rest in the overflow series', async () => {
    const agg = aggregator({}, { cardinalityLimit: 3 });
    const events: TcpEvent[] = [];
    for (let port = 1; port <= 5; port++) {
      const connect = tcpEvent({ dport: port, handshakeNs: 1000 });
      events.push(connect, { ...connect, type: 'close', durationNs: 1000, end: 'reset', errno: 104 });
    }
    agg.record(events);
    const all = await collect(agg);
    const overflow = attrs({ 'otel.metric.overflow': true });
    for (const name of ['tcptracer.connections', 'tcptracer.connection.duration', 'tcptracer.connection.handshake.duration', 'tcptracer.connection.failures']) {
      const v = values(metric(all, 'psql', name));
      assert.equal(Object.keys(v).length, 3, `${name}: ${JSON.stringify(v)}`);
      assert.equal(v[overflow], 3, `${name}: 3 of 5 series in the overflow`);
      assert.equal(Object.values(v).reduce((a, b) => a + b, 0), 5, `${name}: nothing lost`);
    }
    // io has two series per connection series: its own limit
    const io = values(metric(all, 'psql', 'tcptracer.connection.io'));
    assert.equal(Object.keys(io).length, 3);
    assert.ok(overflow in io);
  });
});

describe('metrics temporality', () => {
  /** Two collections around more connections: [first, second] value of each metric of psql. */
  async function twice(temporality: MetricTemporality): Promise<{ temporality: (name: string) => AggregationTemporality; first: (name: string) => number; second: (name: string) => number }> {
    const agg = aggregator({ OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: temporality });
    const c0 = connection(0);
    const c1 = connection(1);
    agg.record([c0.connect, c0.clientClose, c1.connect]);
    const a = await collect(agg);
    const c2 = connection(2);
    agg.record([c1.clientClose, c2.connect]);
    const b = await collect(agg);
    const one = (all: Map<string, Map<string, MetricData>>, name: string): number => {
      const v = Object.values(values(metric(all, 'psql', name)));
      assert.equal(v.length, 1, name);
      return v[0] as number;
    };
    return {
      temporality: (name) => metric(b, 'psql', name).aggregationTemporality,
      first: (name) => one(a, name),
      second: (name) => one(b, name),
    };
  }

  it('cumulative (the default): every metric from the start', async () => {
    const t = await twice('cumulative');
    for (const name of ['tcptracer.connections', 'tcptracer.connections.open', 'tcptracer.connection.duration']) assert.equal(t.temporality(name), AggregationTemporality.CUMULATIVE, name);
    assert.deepEqual([t.first('tcptracer.connections'), t.second('tcptracer.connections')], [2, 3]);
    assert.deepEqual([t.first('tcptracer.connections.open'), t.second('tcptracer.connections.open')], [1, 1]);
    assert.deepEqual([t.first('tcptracer.connection.duration'), t.second('tcptracer.connection.duration')], [1, 2]);
  });

  it('delta: counters and histograms since the last collection, the open connections still cumulative', async () => {
    const t = await twice('delta');
    assert.equal(t.temporality('tcptracer.connections'), AggregationTemporality.DELTA);
    assert.equal(t.temporality('tcptracer.connection.duration'), AggregationTemporality.DELTA);
    assert.equal(t.temporality('tcptracer.connections.open'), AggregationTemporality.CUMULATIVE);
    assert.deepEqual([t.first('tcptracer.connections'), t.second('tcptracer.connections')], [2, 1]);
    assert.deepEqual([t.first('tcptracer.connection.duration'), t.second('tcptracer.connection.duration')], [1, 1]);
    assert.deepEqual([t.first('tcptracer.connections.open'), t.second('tcptracer.connections.open')], [1, 1]);
  });

  it('lowmemory: histograms delta, the (asynchronous) counters cumulative', async () => {
    const t = await twice('lowmemory');
    assert.equal(t.temporality('tcptracer.connection.duration'), AggregationTemporality.DELTA);
    assert.equal(t.temporality('tcptracer.connections'), AggregationTemporality.CUMULATIVE);
    assert.deepEqual([t.first('tcptracer.connections'), t.second('tcptracer.connections')], [2, 3]);
    assert.deepEqual([t.first('tcptracer.connection.duration'), t.second('tcptracer.connection.duration')], [1, 1]);
  });
});

describe('HistogramTally', () => {
  it('counts as the SDK\'s explicit buckets do: inclusive upper bounds, one bucket past the last', () => {
    const h = new HistogramTally('h', 'd', [1, 2, 5], 10, AggregationTemporality.CUMULATIVE, [1, 0]);
    for (const v of [0.5, 1, 1.5, 2, 5, 7, 100]) h.record('k', v, { a: 1 });
    const m = h.collect([2, 0]);
    assert.ok(m);
    const p = m.dataPoints[0] as DataPoint<Histogram>;
    assert.deepEqual(p.value.buckets, { boundaries: [1, 2, 5], counts: [2, 2, 1, 2] });
    assert.deepEqual([p.value.count, p.value.sum, p.value.min, p.value.max], [7, 117, 0.5, 100]);
    assert.deepEqual([p.startTime, p.endTime], [[1, 0], [2, 0]]);
    // cumulative: the next collection has it all again, from the same start
    h.record('k', 3, { a: 1 });
    const again = h.collect([3, 0])?.dataPoints[0] as DataPoint<Histogram>;
    assert.deepEqual([again.value.count, again.startTime], [8, [1, 0]]);
  });

  it('delta: what was measured since the last collection, starting there; nothing: no metric', () => {
    const h = new HistogramTally('h', 'd', [1], 10, AggregationTemporality.DELTA, [1, 0]);
    h.record('k', 0.5, { a: 1 });
    assert.equal((h.collect([2, 0])?.dataPoints[0] as DataPoint<Histogram>).value.count, 1);
    assert.equal(h.collect([3, 0]), undefined);
    h.record('k', 2, { a: 1 });
    const p = h.collect([4, 0])?.dataPoints[0] as DataPoint<Histogram>;
    assert.deepEqual([p.value.count, p.value.buckets.counts, p.startTime], [1, [0, 1], [3, 0]]);
  });
});
