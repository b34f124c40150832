/**
 * OTLP over HTTP (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf) from a real tracer
 * to the real Collector's HTTP receiver (otel-config/collector-gateway.yaml,
 * forwarding to the project's gRPC collector fixture) and to Jaeger v2's
 * OTLP/HTTP input; and the retries when the Collector is not up yet.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SPAN_KIND } from './fixtures/otlp-collector.ts';
import { kernelSuite, startPeer, startTracer, within } from './helpers/kernel.ts';
import { HostWithBackend } from './helpers/hosts.ts';
import { collector, CONFIG_DIR, freePort, Jaeger, otelSuite, type GoProgram } from './helpers/otel.ts';

const kernel = kernelSuite();
const otel = otelSuite();
const suite = { skip: kernel.skip || otel.skip };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('OTLP/HTTP to the real Collector and Jaeger', suite, () => {
  const site = new HostWithBackend();

  async function connect(port: number, names: [string, string]): Promise<void> {
    const server = await startPeer(site.ns, ['server', '127.0.0.1', String(port), '1', names[0]]);
    const client = await startPeer(site.ns, ['client', '127.0.0.1', String(port), '1', names[1]]);
    assert.equal(await within(client.exited, 60_000, 'client exit'), 0);
    assert.equal(await within(server.exited, 60_000, 'server exit'), 0);
  }

  /** The gateway config with an OTLP/HTTP receiver on `httpPort`, forwarding to the fixture. */
  const gateway = async (httpPort: number): Promise<GoProgram> => collector(`${CONFIG_DIR}/collector-gateway.yaml`, [
    `receivers::otlp::protocols::grpc::endpoint=127.0.0.1:${await freePort()}`,
    `receivers::otlp::protocols::http::endpoint=127.0.0.1:${httpPort}`,
    `extensions::health_check::endpoint=127.0.0.1:${await freePort()}`,
    `exporters::otlp_grpc/backend::endpoint=${site.backend.endpoint.replace('http://', '')}`,
    'exporters::otlp_grpc/backend::tls::insecure=true',
  ], { BACKEND_AUTHORIZATION: 'Bearer test' });

  test("records and spans over HTTP reach the Collector's HTTP receiver, gzip too; retried while it is not up yet", async () => {
    site.backend.records.length = 0;
    site.backend.spans.length = 0;
    const port = await freePort();
    const env = { ...process.env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' };
    // Started before the Collector: its first exports find nobody listening.
    const tracer = await startTracer(['--otlp', '-q', '-N', String(site.ns.inode), '--otlp-endpoint', `http://127.0.0.1:${port}`], { json: false, env });
    assert.match(tracer.stderr(), new RegExp(`logs -> http://127\\.0\\.0\\.1:${port}/v1/logs \\(http/protobuf plaintext, compression gzip`));
    await connect(7951, ['tt-ht-srv', 'tt-ht-cli']);
    const deadline = Date.now() + 30_000;
    while (!/otlp export failed, retrying/.test(tracer.stderr())) {
      assert.ok(Date.now() < deadline, `no retry reported: ${tracer.stderr()}`);
      await sleep(200);
    }
    const otelcol = await gateway(port);
    await otelcol.start();
    try {
      await site.backend.waitForRecords(4, 60_000);
      await site.backend.waitForSpans(2, 60_000);
      const { code, stderr } = await tracer.stop('SIGTERM');
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /records dropped/, 'the retries delivered everything');
    } finally {
      await otelcol.stop();
    }
    assert.deepEqual(site.backend.records.map((r) => r.eventName).sort(), ['tcp.accept', 'tcp.close', 'tcp.close', 'tcp.connect']);
    const client = site.backend.spans.find((s) => s.kind === SPAN_KIND.CLIENT);
    const server = site.backend.spans.find((s) => s.kind === SPAN_KIND.SERVER);
    assert.ok(client && server && server.parentSpanId === client.spanId && server.traceId === client.traceId);
    const connectRecord = site.backend.records.find((r) => r.eventName === 'tcp.connect');
    assert.deepEqual([connectRecord?.traceId, connectRecord?.spanId], [client.traceId, client.spanId], 'the same ids as over gRPC');
  });

  test("spans over HTTP straight into Jaeger's OTLP/HTTP input (a signal's own endpoint, as given)", async () => {
    const jaeger = await Jaeger.start();
    try {
      const env = {
        ...process.env,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${jaeger.otlpHttpPort}/v1/traces`,
      };
      const tracer = await startTracer(['--otlp', '-q', '--otlp-signals', 'traces', '-N', String(site.ns.inode)], { json: false, env });
      await connect(7952, ['tt-hj-srv', 'tt-hj-cli']);
      const { code, stderr } = await tracer.stop('SIGTERM');
      assert.equal(code, 0, stderr);
      interface Trace { spans: { references: { refType: string }[] }[] }
      const body = await jaeger.poll<{ data: Trace[] | null }>('/api/traces?service=tt-hj-cli&lookback=1h', (b) => (b.data?.[0]?.spans.length ?? 0) >= 2);
      const spans = body.data?.[0]?.spans ?? [];
      assert.equal(spans.length, 2);
      assert.deepEqual(spans.map((s) => s.references.map((r) => r.refType).join()).sort(), ['', 'CHILD_OF']);
    } finally {
      await jaeger.program.stop();
    }
  });
});
