/**
 * Memory of the metrics aggregation per series, in one process: what the
 * DaemonSet's tracer limit must leave room for. `resources` traced processes
 * (each its own resource, as the tracer exports them), each with `series`
 * server ports, every one of the eight metrics fed (a connection with a
 * handshake and an RTT sample, closed by the client with a FIN and by the
 * server with a reset, and a failed connect per port). After the events and
 * one collection (the SDK keeps its own state for the asynchronous counters
 * from then on), the JS heap and external memory after a full GC, against
 * the same before: bytes per series of one metric and per resource at the
 * cardinality limit. Needs --expose-gc.
 *
 *   node --expose-gc bench/otlp-metrics-memory.ts [resources] [series] [temporality]
 */
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { MetricsAggregator } from '../src/otlp/metrics/aggregator.ts';
import { SpanResources } from '../src/otlp/resources.ts';
import type { TcpEvent } from '../src/types.ts';
import { connection, tcpEvent } from '../test/fixtures/tcp-events.ts';

const resources = Number(process.argv[2] ?? 10);
const series = Number(process.argv[3] ?? 1999);
const temporality = process.argv[4] ?? 'cumulative';
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function used(): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

/** The events of one process pair (client `c<r>`, server `s<r>`) over `series` ports. */
function events(r: number): TcpEvent[] {
  const out: TcpEvent[] = [];
  for (let i = 0; i < series; i++) {
    const c = connection(i);
    const port = 1024 + i;
    const client = { comm: `c${r}`, dport: port };
    const server = { comm: `s${r}`, sport: port };
    out.push(
      { ...c.connect, ...client, handshakeNs: 200_000 },
      { ...c.accept, ...server },
      { ...c.clientClose, ...client, rttUs: 150, retransmits: 1, bytesReceived: 10 },
      { ...c.serverClose, ...server },
      tcpEvent({ type: 'failed', errno: 111, comm: `c${r}`, dport: port }),
    );
  }
  return out;
}

const cfg = resolveOtlpConfig({ signals: 'metrics' }, { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: temporality });
const agg = new MetricsAggregator(new SpanResources(cfg, '1.0.0'), cfg.metricExport, { name: 'tcptracer-otel', version: '1.0.0' });
const batches = Array.from({ length: resources / 2 }, (_, r) => events(r));
const before = used();
for (const batch of batches) agg.record(batch);
const points = (await agg.collect()).length; // the collection itself is sent and dropped: not counted
const after = used();
const mb = (after - before) / 1e6;
const perResource = (after - before) / agg.size;
console.log(
  `${agg.size} resources x ${series} series (limit ${cfg.metricExport.cardinalityLimit}), ${temporality}: ` +
    `${points} data points in a collection; ${mb.toFixed(1)} MB retained (heap + external), ` +
    `${(perResource / 1e6).toFixed(2)} MB per resource, ${(perResource / series).toFixed(0)} bytes per series of the eight metrics`,
);
