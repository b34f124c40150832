/**
 * Metrics through the real Collector: a real tracer (`--otlp-signals
 * metrics`) exports to otel-config/collector-gateway.yaml (endpoints moved),
 * whose metrics pipeline forwards to a backend (the project's gRPC collector
 * fixture): the backend receives the connection metrics of a known workload,
 * with their exact counts, under the traced processes' resources.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { kernelSuite, startPeer, startTracer, within } from './helpers/kernel.ts';
import { HostWithBackend } from './helpers/hosts.ts';
import { collector, CONFIG_DIR, freePort, otelSuite } from './helpers/otel.ts';

const kernel = kernelSuite();
const otel = otelSuite();
const suite = { skip: kernel.skip || otel.skip };

const CONNECTIONS = 4;

describe('metrics through the real Collector', suite, () => {
  const site = new HostWithBackend();

  test(`the gateway's metrics pipeline delivers the counts of ${CONNECTIONS} connections`, async () => {
    const port = await freePort();
    const otelcol = collector(`${CONFIG_DIR}/collector-gateway.yaml`, [
      `receivers::otlp::protocols::grpc::endpoint=127.0.0.1:${port}`,
      `extensions::health_check::endpoint=127.0.0.1:${await freePort()}`,
      `exporters::otlp_grpc/backend::endpoint=${site.backend.endpoint.replace('http://', '')}`,
      'exporters::otlp_grpc/backend::tls::insecure=true',
      'exporters::otlp_grpc/backend::sending_queue::wait_for_result=true',
    ], { BACKEND_AUTHORIZATION: 'Bearer test' });
    await otelcol.start();
    try {
      const tracer = await startTracer(['--otlp', '-q', '--otlp-signals', 'metrics', '-N', String(site.ns.inode), '--otlp-endpoint', `http://127.0.0.1:${port}`], {
        json: false,
        env: { ...process.env, OTEL_METRIC_EXPORT_INTERVAL: '1000' },
      });
      const server = await startPeer(site.ns, ['server', '127.0.0.1', '7630', String(CONNECTIONS), 'tt-om-srv']);
      const client = await startPeer(site.ns, ['client', '127.0.0.1', '7630', String(CONNECTIONS), 'tt-om-cli']);
      assert.equal(await within(client.exited, 60_000, 'the clients'), 0);
      assert.equal(await within(server.exited, 60_000, 'the server'), 0);
      const { stderr, code } = await tracer.stop();
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /dropped|could not be delivered/, stderr);
      // the final collection, sent at exit, is the cumulative total (wait_for_result: delivered before the tracer was answered)
      const last = (service: string, name: string): number | undefined =>
        site.backend.metricPoints.filter((p) => p.resource['service.name'] === service && p.name === name && p.attributes['server.port'] === 7630).at(-1)?.value;
      assert.equal(last('tt-om-cli', 'tcptracer.connections'), CONNECTIONS);
      assert.equal(last('tt-om-srv', 'tcptracer.connections'), CONNECTIONS);
      assert.equal(last('tt-om-cli', 'tcptracer.connections.open'), 0);
      assert.equal(last('tt-om-cli', 'tcptracer.connection.duration'), CONNECTIONS, 'histogram count');
      const unit = site.backend.metricPoints.find((p) => p.name === 'tcptracer.connection.duration')?.unit;
      assert.equal(unit, 's');
    } finally {
      await otelcol.stop();
    }
  });
});
