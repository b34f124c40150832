/**
 * End to end against the real things: two hosts (network namespaces joined by
 * a veth), one tracer per host (-N), both exporting to the real Collector
 * running otel-config/collector-jaeger-loki.yaml (only its endpoints moved to
 * this test's ports), which sends traces to the real Jaeger v2 and logs to an
 * OTLP/HTTP sink standing in for Loki. Asserted through Jaeger's query API and
 * the Loki-bound requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ReceivedLogRecord } from './fixtures/otlp-collector.ts';
import { kernelSuite, NetNs, startPeer, startTracer, within, type TracerRun } from './helpers/kernel.ts';
import { collector, CONFIG_DIR, freePort, Jaeger, OtlpHttpLogsSink, otelSuite, type GoProgram } from './helpers/otel.ts';

const kernel = kernelSuite();
const otel = otelSuite();
const suite = { skip: kernel.skip || otel.skip };

interface JaegerTag { key: string; value: unknown }
interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  startTime: number;
  duration: number;
  tags: JaegerTag[];
  processID: string;
}
interface JaegerTrace { traceID: string; spans: JaegerSpan[]; processes: Record<string, { serviceName: string }> }
interface Data<T> { data: T[] | null }

const tag = (s: JaegerSpan, key: string): unknown => s.tags.find((t) => t.key === key)?.value;

describe('Collector + Jaeger + Loki stand-in: two hosts, one trace per connection', suite, () => {
  let hostA: NetNs;
  let hostB: NetNs;
  let jaeger: Jaeger;
  let loki: OtlpHttpLogsSink;
  let otelcol: GoProgram;
  let endpoint: string;
  const services = { client: 'tt-jg-cli', server: 'tt-jg-srv', resetClient: 'tt-jg-rcli', resetServer: 'tt-jg-rsrv', failed: 'tt-jg-fail' };
  const pids: Record<keyof typeof services, number> = { client: 0, server: 0, resetClient: 0, resetServer: 0, failed: 0 };
  let startUs = 0;

  before(async () => {
    hostA = new NetNs();
    hostB = new NetNs();
    hostA.link(hostB, '198.18.91.1/24', '198.18.91.2/24');
    jaeger = await Jaeger.start();
    loki = new OtlpHttpLogsSink();
    await loki.start();
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    otelcol = collector(`${CONFIG_DIR}/collector-jaeger-loki.yaml`, [
      `receivers::otlp::protocols::grpc::endpoint=127.0.0.1:${port}`,
      `exporters::otlp_grpc/jaeger::endpoint=127.0.0.1:${jaeger.otlpGrpcPort}`,
      `exporters::otlp_http/loki::endpoint=http://127.0.0.1:${loki.port}/otlp`,
    ]);
    await otelcol.start();

    // The traffic, traced on both hosts; the tracers flush on SIGTERM.
    startUs = Date.now() * 1000;
    const tracers: TracerRun[] = await Promise.all([hostA, hostB].map((h) =>
      startTracer(['--otlp', '-q', '--failed', '-N', String(h.inode), '--otlp-endpoint', endpoint], { json: false })));
    const connect = async (port: number, server: string, client: string, reset: boolean): Promise<[number, number]> => {
      const s = await startPeer(hostB, ['server', '198.18.91.2', String(port), '1', server]);
      const c = await startPeer(hostA, ['client', '198.18.91.2', String(port), '1', client, '1', ...(reset ? ['reset'] : [])]);
      assert.equal(await within(c.exited, 60_000, 'client exit'), 0);
      assert.equal(await within(s.exited, 60_000, 'server exit'), 0);
      return [c.pid, s.pid];
    };
    [pids.client, pids.server] = await connect(7701, services.server, services.client, false);
    [pids.resetClient, pids.resetServer] = await connect(7702, services.resetServer, services.resetClient, true);
    const refused = await startPeer(hostA, ['client', '198.18.91.2', '7703', '1', services.failed]);
    pids.failed = refused.pid;
    assert.notEqual(await within(refused.exited, 60_000, 'refused client exit'), 0, 'nothing listens on 7703');
    for (const t of tracers) {
      const { code, stderr } = await t.stop('SIGTERM');
      assert.equal(code, 0, stderr);
    }
  });
  after(async () => {
    await otelcol.stop();
    await jaeger.program.stop();
    await loki.stop();
    hostA.delete();
    hostB.delete();
  });

  /** The one trace whose root is `clientService`'s span. */
  async function traceOf(clientService: string): Promise<JaegerTrace> {
    const found = await jaeger.poll<Data<JaegerTrace>>(`/api/traces?service=${clientService}&lookback=1h&limit=20`, (b) => (b.data ?? []).some((t) => t.spans.length >= 2));
    const traces = found.data ?? [];
    assert.equal(traces.length, 1, `one trace for ${clientService}`);
    const id = traces[0]!.traceID;
    const full = await jaeger.poll<Data<JaegerTrace>>(`/api/traces/${id}`, (b) => (b.data?.[0]?.spans.length ?? 0) >= 2);
    return full.data![0]!;
  }

  const recordsOf = (pid: number): ReceivedLogRecord[] => loki.records.filter((r) => r.attributes['process.pid'] === pid);

  test('Jaeger lists both processes as services', async () => {
    const body = await jaeger.poll<Data<string>>('/api/services', (b) => [services.client, services.server].every((s) => b.data?.includes(s)));
    assert.ok(body.data?.includes(services.resetClient) && body.data.includes(services.resetServer));
  });

  test("the connection's trace: one CLIENT span from A, its SERVER child from B, at the kernel's times", async () => {
    await loki.waitForRecords(9);
    const trace = await traceOf(services.client);
    assert.equal(trace.spans.length, 2, JSON.stringify(trace.spans.map((s) => s.operationName)));
    const client = trace.spans.find((s) => tag(s, 'span.kind') === 'client');
    const server = trace.spans.find((s) => tag(s, 'span.kind') === 'server');
    assert.ok(client && server, 'one client and one server span');
    assert.equal(trace.processes[client.processID]?.serviceName, services.client);
    assert.equal(trace.processes[server.processID]?.serviceName, services.server);
    assert.deepEqual(client.references, [], 'the client span is the root');
    assert.deepEqual(server.references, [{ refType: 'CHILD_OF', traceID: trace.traceID, spanID: client.spanID }]);
    for (const [span, pid, opened] of [[client, pids.client, 'tcp.connect'], [server, pids.server, 'tcp.accept']] as const) {
      assert.equal(tag(span, 'error'), undefined, `${span.operationName}: no error`);
      assert.ok(span.startTime >= startUs - 1_000_000 && span.startTime <= Date.now() * 1000);
      const rs = recordsOf(pid);
      const open = rs.find((r) => r.eventName === opened);
      const close = rs.find((r) => r.eventName === 'tcp.close');
      assert.ok(open && close, `${opened} and tcp.close of pid ${pid}`);
      // Jaeger keeps microseconds: the span ends at the close's kernel time, starts at establishment.
      assert.ok(Math.abs(span.startTime + span.duration - Number(close.timeUnixNano / 1000n)) <= 1, `${span.operationName} ends at the close`);
      if (opened === 'tcp.connect') assert.ok(Math.abs(span.startTime - Number(open.timeUnixNano / 1000n)) <= 1000, 'the client span starts at establishment');
      for (const r of rs) assert.deepEqual([r.traceId, r.spanId], [trace.traceID.padStart(32, '0'), span.spanID.padStart(16, '0')], `${r.eventName} of pid ${pid} links to its span`);
    }
  });

  test('Jaeger draws the edge client -> server, once per connection', async () => {
    const path = `/api/dependencies?endTs=${Date.now() + 60_000}&lookback=3600000`;
    const edge = (b: Data<{ parent: string; child: string; callCount: number }>) => (b.data ?? []).find((d) => d.parent === services.client && d.child === services.server);
    const body = await jaeger.poll(path, (b: Data<{ parent: string; child: string; callCount: number }>) => edge(b) !== undefined);
    assert.equal(edge(body)?.callCount, 1);
  });

  test("a reset connection's spans are errors", async () => {
    const trace = await traceOf(services.resetClient);
    assert.equal(trace.spans.length, 2);
    for (const s of trace.spans) {
      assert.equal(tag(s, 'error'), true, `${s.operationName} is an error`);
      assert.equal(tag(s, 'tcptracer.connection.end'), 'reset');
    }
  });

  test('the Loki-bound logs: every record, its event name as an attribute, its trace and span ids; a failed connect as WARN', async () => {
    await loki.waitForRecords(9);
    const ours = Object.values(pids);
    const records = loki.records.filter((r) => ours.includes(Number(r.attributes['process.pid'])));
    assert.equal(records.length, 9, records.map((r) => `${r.eventName} ${String(r.attributes['process.pid'])}`).join(', '));
    assert.deepEqual(records.map((r) => r.eventName).sort(), [
      'tcp.accept', 'tcp.accept', 'tcp.close', 'tcp.close', 'tcp.close', 'tcp.close', 'tcp.connect', 'tcp.connect', 'tcp.connect_failed',
    ]);
    for (const r of records) {
      assert.equal(r.attributes['event.name'], r.eventName, 'the transform copied the event name (Loki drops EventName)');
      if (r.eventName === 'tcp.connect_failed') continue;
      assert.match(r.traceId, /^[0-9a-f]{32}$/);
      assert.match(r.spanId, /^[0-9a-f]{16}$/);
    }
    const failed = records.find((r) => r.eventName === 'tcp.connect_failed')!;
    assert.equal(failed.attributes['process.pid'], pids.failed);
    assert.deepEqual([failed.severityText, failed.severityNumber], ['WARN', 13]);
    assert.ok(records.filter((r) => r !== failed).every((r) => r.severityText === 'INFO'));
    assert.ok(loki.requests.every((r) => r.encoding === 'gzip'), 'otlp_http sends gzip by default');
  });
});
