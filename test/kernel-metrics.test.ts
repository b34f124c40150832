/**
 * The metrics signal end to end: the real probe, a known workload in a network
 * namespace the test creates (N connections over IPv4 and over IPv6, M refused
 * connects), the real CLI with `--otlp-signals metrics` exporting to the test
 * collector, and exact counts read back: connections per role and server
 * address, open connections back to 0, histogram counts, failures by
 * error.type (the probe reports failed connects for the metrics without
 * --failed), under each process's resource, in both temporalities.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestCollector, type ReceivedMetricPoint } from './fixtures/otlp-collector.ts';
import { kernelSuite, NetNs, startPeer, startTracer, within } from './helpers/kernel.ts';

const suite = kernelSuite();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const V4 = 5;
const V6 = 3;
const REFUSED = 2;

/** A series: service.name, metric name and the point's attributes (sorted). */
function seriesOf(p: ReceivedMetricPoint): string {
  const attrs = Object.entries(p.attributes).sort(([a], [b]) => a.localeCompare(b));
  return `${String(p.resource['service.name'])} ${p.name} ${JSON.stringify(attrs)}`;
}

/** Each series' total: the last point (cumulative) or the sum of its points (delta). */
function totals(points: readonly ReceivedMetricPoint[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of points) {
    const key = seriesOf(p);
    out.set(key, p.temporality === 1 ? (out.get(key) ?? 0) + p.value : p.value);
  }
  return out;
}

function series(service: string, name: string, attrs: Record<string, string | number>): string {
  return `${service} ${name} ${JSON.stringify(Object.entries(attrs).sort(([a], [b]) => a.localeCompare(b)))}`;
}

describe('kernel: connection metrics', suite, () => {
  let ns: NetNs;
  let collector: TestCollector;
  before(async () => {
    ns = new NetNs();
    collector = new TestCollector();
    await collector.start();
  });
  after(() => {
    collector.stop();
    ns.delete();
  });

  for (const temporality of ['cumulative', 'delta'] as const) {
    test(`${temporality}: exact counts for ${V4} IPv4 + ${V6} IPv6 connections and ${REFUSED} refused connects`, async () => {
      collector.metricPoints.length = 0;
      const port = temporality === 'cumulative' ? 7610 : 7620;
      const env = { ...process.env, OTEL_METRIC_EXPORT_INTERVAL: '1000', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: temporality };
      const tracer = await startTracer(['--otlp', '-q', '--otlp-signals', 'metrics', '-N', String(ns.inode), '--otlp-endpoint', collector.endpoint], { json: false, env });
      for (const [addr, p, count] of [['127.0.0.1', port, V4], ['::1', port + 1, V6]] as const) {
        const server = await startPeer(ns, ['server', addr, String(p), String(count), 'tt-msrv']);
        const client = await startPeer(ns, ['client', addr, String(p), String(count), 'tt-mcli']);
        assert.equal(await within(client.exited, 60_000, "the client's exit"), 0);
        assert.equal(await within(server.exited, 60_000, "the server's exit"), 0);
      }
      for (let i = 0; i < REFUSED; i++) {
        const refused = await startPeer(ns, ['client', '127.0.0.1', String(port + 9), '1', 'tt-mref']);
        assert.notEqual(await within(refused.exited, 60_000, "the refused client's exit"), 0, 'the connect was refused');
      }
      // at least one periodic collection, then the last one at exit
      await sleep(1500);
      const periodic = collector.metricsCalls;
      assert.ok(periodic >= 1, 'a collection was exported while running');
      const { stderr, code } = await tracer.stop();
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /dropped|could not be delivered/, stderr);
      assert.ok(collector.metricsCalls > periodic, 'the last collection was exported at exit');

      const points = collector.metricPoints.filter((p) => ['tt-mcli', 'tt-msrv', 'tt-mref'].includes(String(p.resource['service.name'])));
      const expectedTemporality = temporality === 'delta' ? 1 : 2;
      for (const p of points) {
        const want = p.name === 'tcptracer.connections.open' ? 2 : expectedTemporality;
        assert.equal(p.temporality, want, `${p.name} temporality`);
      }
      const t = totals(points);
      const v4 = { 'network.type': 'ipv4', 'server.address': '127.0.0.1' };
      const v6 = { 'network.type': 'ipv6', 'server.address': '::1' };
      for (const [net, p, count] of [[v4, port, V4], [v6, port + 1, V6]] as const) {
        const client = { ...net, 'server.port': p, 'tcptracer.connection.role': 'client' };
        const server = { ...net, 'server.port': p, 'tcptracer.connection.role': 'server' };
        assert.equal(t.get(series('tt-mcli', 'tcptracer.connections', client)), count, `client connections IPv${net['network.type']}`);
        assert.equal(t.get(series('tt-msrv', 'tcptracer.connections', server)), count, `server connections ${net['network.type']}`);
        assert.equal(t.get(series('tt-mcli', 'tcptracer.connections.open', client)), 0);
        assert.equal(t.get(series('tt-msrv', 'tcptracer.connections.open', server)), 0);
        assert.equal(t.get(series('tt-mcli', 'tcptracer.connection.duration', client)), count, 'client duration histogram count');
        assert.equal(t.get(series('tt-msrv', 'tcptracer.connection.duration', server)), count, 'server duration histogram count');
        assert.equal(t.get(series('tt-mcli', 'tcptracer.connection.handshake.duration', client)), count, 'handshake histogram count');
        assert.equal(t.get(series('tt-msrv', 'tcptracer.connection.handshake.duration', server)), undefined, 'no handshake on the server side');
        // each client sent one byte, acknowledged by the server, which received it (the kernel's counters of
        // sequence space: the FIN counts too, on both ends)
        const sent = t.get(series('tt-mcli', 'tcptracer.connection.io', { ...client, 'network.io.direction': 'transmit' })) ?? 0;
        const received = t.get(series('tt-msrv', 'tcptracer.connection.io', { ...server, 'network.io.direction': 'receive' })) ?? 0;
        assert.ok(sent >= count && sent <= 2 * count, `bytes sent ${sent}: one byte (and its FIN) per connection`);
        assert.equal(received, sent, 'what the clients sent is what the server received');
      }
      const refused = { ...v4, 'server.port': port + 9, 'tcptracer.connection.role': 'client', 'error.type': 'connection_refused' };
      assert.equal(t.get(series('tt-mref', 'tcptracer.connection.failures', refused)), REFUSED, [...t.keys()].filter((k) => k.includes('failures')).join('\n'));
      assert.equal([...t.keys()].filter((k) => k.includes('tcptracer.connection.failures')).length, 1, 'no other failure');
      // never a client port
      assert.ok(points.every((p) => p.attributes['server.port'] === undefined || [port, port + 1, port + 9].includes(Number(p.attributes['server.port']))));
    });
  }
});
