/**
 * Connections as spans, end to end: two "hosts" (network namespaces joined by a
 * veth), one real tracer per host (-N), both exporting to one real hosts.collector.
 * A connection from host A to host B must become one trace: a CLIENT span from
 * A's tracer and a SERVER child from B's, with ids both tracers derived on their
 * own from the connection, and each side's log records pointing at its span.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SPAN_KIND, STATUS_CODE, type ReceivedLogRecord, type ReceivedSpan } from './fixtures/otlp-collector.ts';
import { kernelSuite, startPeer, startTracer, within, type NetNs, type TracerRun } from './helpers/kernel.ts';
import { TwoHosts } from './helpers/hosts.ts';

const suite = kernelSuite();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Trace ids seen so far: every connection must have its own. */
const seen = new Set<string>();
function fresh(traceId: string): void {
  assert.ok(!seen.has(traceId), `trace id ${traceId} of another connection`);
  seen.add(traceId);
}

describe('kernel: connections as spans across two hosts', suite, () => {
  const hosts = new TwoHosts(90);

  const tracerOn = (host: NetNs, ...more: string[]): Promise<TracerRun> =>
    startTracer(['--otlp', '-q', '-N', String(host.inode), '--otlp-endpoint', hosts.collector.endpoint, ...more], { json: false });

  /** One connection from A's client to B's server; `reset`: the client closes with RST. */
  async function connectAtoB(addr: string, port: number, names: [string, string], reset = false): Promise<{ client: number; server: number }> {
    const server = await startPeer(hosts.b, ['server', addr, String(port), '1', names[0]]);
    const client = await startPeer(hosts.a, ['client', addr, String(port), '1', names[1], '1', ...(reset ? ['reset'] : [])]);
    assert.equal(await within(client.exited, 60_000, 'the client\'s exit'), 0);
    assert.equal(await within(server.exited, 60_000, 'the server\'s exit'), 0);
    return { client: client.pid, server: server.pid };
  }

  const one = <T>(items: T[], what: string): T => {
    assert.equal(items.length, 1, `${what}: ${items.length}`);
    return items[0]!;
  };

  for (const [ip, addr] of [[4, hosts.serverAddress[4]], [6, hosts.serverAddress[6]]] as const) {
    test(`IPv${ip}: one trace, a CLIENT span from A and its SERVER child from B, logs linked`, async () => {
      hosts.collector.records.length = 0;
      hosts.collector.spans.length = 0;
      const [a, b] = await Promise.all([tracerOn(hosts.a), tracerOn(hosts.b)]);
      const startNs = BigInt(Date.now()) * 1_000_000n;
      const port = 7500 + ip;
      const pids = await connectAtoB(addr, port, [`tt-sp-srv${ip}`, `tt-sp-cli${ip}`]);
      await hosts.collector.waitForSpans(2, 20_000);
      await hosts.collector.waitForRecords(4, 20_000);
      for (const t of [a, b]) {
        const { code, stderr } = await t.stop('SIGTERM');
        assert.equal(code, 0, stderr);
      }
      const endNs = BigInt(Date.now()) * 1_000_000n;
      assert.equal(hosts.collector.spans.length, 2, JSON.stringify(hosts.collector.spans.map((s) => s.name)));
      const client = one(hosts.collector.spans.filter((s) => s.kind === SPAN_KIND.CLIENT), 'CLIENT spans');
      const server = one(hosts.collector.spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER spans');
      const hostPort = ip === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
      assert.equal(client.name, `connect ${hostPort}`);
      assert.equal(server.name, `accept ${hostPort}`);
      assert.deepEqual([client.attributes['process.pid'], client.attributes['tcptracer.netns.inode']], [pids.client, hosts.a.inode], 'from host A');
      assert.deepEqual([server.attributes['process.pid'], server.attributes['tcptracer.netns.inode']], [pids.server, hosts.b.inode], 'from host B');
      assert.match(client.traceId, /^[0-9a-f]{32}$/);
      assert.notEqual(client.traceId, '0'.repeat(32));
      assert.equal(server.traceId, client.traceId, 'both tracers derived the same trace id');
      fresh(client.traceId);
      assert.equal(client.parentSpanId, '', 'the client span is the root');
      assert.equal(server.parentSpanId, client.spanId, "the server span is the client span's child");
      assert.notEqual(server.spanId, client.spanId);
      assert.equal(client.resource['service.name'], `tt-sp-cli${ip}`, 'a span belongs to the traced process');
      assert.equal(server.resource['service.name'], `tt-sp-srv${ip}`);
      for (const s of [client, server]) {
        assert.ok(s.startTimeUnixNano < s.endTimeUnixNano, `${s.name}: start < end`);
        assert.ok(s.startTimeUnixNano >= startNs - 1_000_000_000n && s.endTimeUnixNano <= endNs, 'kernel times of now');
        assert.equal(s.statusCode, STATUS_CODE.UNSET, `${s.name} ended with a FIN`);
        assert.equal(s.attributes['tcptracer.connection.end'], 'fin');
        assert.equal(s.attributes['network.transport'], 'tcp');
      }
      // each side's records point at its own span; the span's start is the establishment the connect/accept saw
      const records = (pid: number): ReceivedLogRecord[] => hosts.collector.records.filter((r) => r.attributes['process.pid'] === pid);
      const linked = (span: ReceivedSpan, pid: number, opened: string): void => {
        const rs = records(pid);
        assert.deepEqual(rs.map((r) => r.eventName).sort(), [opened, 'tcp.close'].sort());
        for (const r of rs) assert.deepEqual([r.traceId, r.spanId], [span.traceId, span.spanId], `${r.eventName} of pid ${pid}`);
        const close = rs.find((r) => r.eventName === 'tcp.close')!;
        assert.equal(span.endTimeUnixNano, close.timeUnixNano, 'span end = the close\'s kernel time');
      };
      linked(client, pids.client, 'tcp.connect');
      linked(server, pids.server, 'tcp.accept');
      const connect = records(pids.client).find((r) => r.eventName === 'tcp.connect')!;
      const drift = client.startTimeUnixNano - connect.timeUnixNano;
      assert.ok(drift >= -1_000_000n && drift <= 1_000_000n, `client span starts at establishment (${drift} ns from the connect record)`);
    });
  }

  test('a connection closed with RST: both spans ERROR, with the reason', async () => {
    hosts.collector.records.length = 0;
    hosts.collector.spans.length = 0;
    const [a, b] = await Promise.all([tracerOn(hosts.a), tracerOn(hosts.b)]);
    await connectAtoB(hosts.serverAddress[4], 7510, ['tt-rst-srv', 'tt-rst-cli'], true);
    await hosts.collector.waitForSpans(2, 20_000);
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    const client = one(hosts.collector.spans.filter((s) => s.kind === SPAN_KIND.CLIENT), 'CLIENT spans');
    const server = one(hosts.collector.spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER spans');
    assert.equal(server.traceId, client.traceId);
    fresh(client.traceId);
    for (const s of [client, server]) {
      assert.equal(s.statusCode, STATUS_CODE.ERROR, s.name);
      assert.equal(s.attributes['tcptracer.connection.end'], 'reset');
      assert.ok(s.statusMessage.length > 0, 'the status says why');
    }
    assert.match(server.statusMessage, /ECONNRESET/);
  });

  test('--otlp-signals logs: the records, no spans', async () => {
    hosts.collector.records.length = 0;
    hosts.collector.spans.length = 0;
    const [a, b] = await Promise.all([tracerOn(hosts.a, '--otlp-signals', 'logs'), tracerOn(hosts.b, '--otlp-signals', 'logs')]);
    await connectAtoB(hosts.serverAddress[4], 7520, ['tt-lo-srv', 'tt-lo-cli']);
    await hosts.collector.waitForRecords(4, 20_000);
    await sleep(1500);
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    assert.equal(hosts.collector.records.length, 4);
    assert.equal(hosts.collector.spans.length, 0);
    assert.ok(hosts.collector.records.every((r) => r.traceId !== ''), 'records still carry the derived ids');
  });
});
