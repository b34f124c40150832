/**
 * The README's "Metrics and sampling" and "Fleet profile" say what the code
 * and the DaemonSet do: the metrics table against what the aggregation
 * really exports (names, units, instrument kinds, attributes), the defaults
 * it quotes against the code's, and the fleet profile's settings and
 * resources against otel-config/k8s/daemonset.yaml. A rename on either side
 * fails here instead of leaving the README behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import type { MetricData } from '@opentelemetry/sdk-metrics';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_METRIC_EXPORT_INTERVAL_MS, DEFAULT_METRICS_CARDINALITY_LIMIT, resolveOtlpConfig } from '../src/otlp/config.ts';
import { MetricsAggregator } from '../src/otlp/metrics/aggregator.ts';
import { groupMetricPoints } from '../src/otlp/metrics/points.ts';
import { MAX_SPAN_RESOURCES, SpanResources } from '../src/otlp/resources.ts';
import { connection, tcpEvent } from './fixtures/tcp-events.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(`${ROOT}README.md`, 'utf8');

/** The text of the README section that starts with `heading` (up to the next heading of the same or a higher level). */
function section(heading: string): string {
  const start = README.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has "${heading}"`);
  const level = /^#+/.exec(heading)?.[0].length ?? 2;
  const rest = README.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level}} `, 'm'));
  return end < 0 ? rest : rest.slice(0, end);
}

/** Every metric the aggregation exports for one connection of each kind (handshake, RTT, a reset, a failed connect), in a container. */
async function exportedMetrics(): Promise<Map<string, MetricData>> {
  const cfg = resolveOtlpConfig({ signals: 'metrics' }, {});
  const agg = new MetricsAggregator(new SpanResources(cfg, '1.0.0'), cfg.metricExport, { name: 't', version: '1' });
  const c = connection(0);
  // in a container: its identity is on every series (the README lists it with the common attributes)
  const pod = { containerId: 'a'.repeat(64), podUid: '11111111-2222-3333-4444-555555555555' };
  const events = [{ ...c.connect, handshakeNs: 250_000 }, c.accept, { ...c.clientClose, rttUs: 120, retransmits: 1 }, c.serverClose, tcpEvent({ type: 'failed', errno: 111 })];
  agg.record(events.map((e) => ({ ...e, ...pod })));
  const out = new Map<string, MetricData>();
  for (const rm of groupMetricPoints(await agg.collect())) {
    for (const m of rm.scopeMetrics.flatMap((s) => s.metrics)) out.set(m.descriptor.name, m);
  }
  return out;
}

describe('README: Metrics and sampling', () => {
  const text = section('## Metrics and sampling');
  const rows = [...text.matchAll(/^\| `(tcptracer\.[\w.]+)` \| ([^|]+) \| `([^`]+)` \| [^|]+ \|$/gm)].map((m) => ({ name: m[1] ?? '', instrument: m[2] ?? '', unit: m[3] ?? '' }));

  it('lists exactly the metrics exported, with their unit and instrument kind', async () => {
    const metrics = await exportedMetrics();
    assert.deepEqual(rows.map((r) => r.name).sort(), [...metrics.keys()].sort());
    for (const row of rows) {
      const m = metrics.get(row.name);
      assert.ok(m);
      assert.equal(row.unit, m.descriptor.unit, `${row.name}: unit`);
      const kind = m.dataPointType === DataPointType.HISTOGRAM ? 'Histogram' : m.dataPointType === DataPointType.SUM && !m.isMonotonic ? 'UpDownCounter' : 'Counter';
      assert.match(row.instrument, new RegExp(`(^|\\s)${kind}\\b`), `${row.name}: a ${kind}`);
      if (kind === 'Counter') assert.doesNotMatch(row.instrument, /UpDownCounter/);
    }
  });

  it("names every series attribute, each metric's own ones on its row, and never a client port", async () => {
    const metrics = await exportedMetrics();
    const attributes = /\*\*Attributes\*\* of every series: ([^]*?)Never a client port/.exec(text)?.[1] ?? '';
    const common = new Set([...attributes.matchAll(/`([a-z][\w.]+)`/g)].map((m) => m[1] ?? '').filter((a) => a.includes('.')));
    for (const row of rows) {
      const own = new Set([...row.instrument.matchAll(/with `([\w.]+)`/g)].map((m) => m[1] ?? ''));
      const points = metrics.get(row.name)?.dataPoints ?? [];
      assert.ok(points.length > 0);
      for (const p of points) {
        const keys = Object.keys(p.attributes).sort();
        assert.deepEqual(keys, [...common, ...own].sort(), `${row.name}: the common attributes and its own`);
        assert.ok(!keys.some((k) => k.startsWith('client.')), `${row.name}: no client attribute`);
      }
    }
  });

  it('quotes the defaults the code has', () => {
    assert.match(text, new RegExp(`\`OTEL_METRIC_EXPORT_INTERVAL\` ms \\(default ${DEFAULT_METRIC_EXPORT_INTERVAL_MS}\\)`));
    assert.match(text, new RegExp(`\`TCPTRACER_METRICS_CARDINALITY_LIMIT\`, default ${DEFAULT_METRICS_CARDINALITY_LIMIT}\\b`));
    assert.match(text, new RegExp(`the first ${DEFAULT_METRICS_CARDINALITY_LIMIT - 1} seen`));
    assert.match(text, new RegExp(`at most\\s+${MAX_SPAN_RESOURCES} processes`));
  });
});

describe('README: Fleet profile', () => {
  const text = section('### Fleet profile');
  const docs = parseAllDocuments(readFileSync(`${ROOT}otel-config/k8s/daemonset.yaml`, 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  const ds = docs.find((d) => d['kind'] === 'DaemonSet') as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } } | undefined;
  const tracer = ds?.spec.template.spec.containers.find((c) => /tcptracer-otel/.test(String(c['image']))) ?? {};

  it("states the DaemonSet's tracer settings, args and resources as they are", () => {
    const env = (tracer['env'] as { name: string; value?: string }[] | undefined) ?? [];
    for (const name of ['TCPTRACER_OTLP_SIGNALS', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'OTEL_METRIC_EXPORT_INTERVAL']) {
      const value = env.find((e) => e.name === name)?.value;
      assert.ok(value, `the DaemonSet sets ${name}`);
      assert.ok(text.replace(/\s+/g, ' ').includes(`\`${name}=${value}\``), `the README says ${name}=${value}`);
    }
    for (const arg of (tracer['args'] as string[] | undefined) ?? []) assert.ok(text.includes(`\`${arg}\``), `the README names ${arg}`);
    const resources = tracer['resources'] as { requests: { memory: string }; limits: { memory: string } };
    assert.match(text, new RegExp(`request \\(${resources.requests.memory}\\) and limit \\(${resources.limits.memory}\\)`));
    const ratio = Number(env.find((e) => e.name === 'OTEL_TRACES_SAMPLER_ARG')?.value);
    assert.match(text, new RegExp(`one connection in ${Math.round(1 / ratio)}\\b`));
  });
});
