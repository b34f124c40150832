/**
 * OTLP over TLS to a collector named by an IP address (IPv4 and IPv6) or a
 * host name, with a certificate the test makes: the certificate is verified
 * against the IP (its IP subject alternative names), and one that does not
 * name the IP is refused.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { tcpEvents } from './fixtures/tcp-events.ts';
import { makeCertificate, type TestCertificate } from './helpers/tls.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

let good: TestCertificate;
let wrongIp: TestCertificate;
before(() => {
  good = makeCertificate('collector', ['IP:127.0.0.1', 'IP:::1', 'DNS:localhost']);
  wrongIp = makeCertificate('collector', ['IP:127.0.0.2', 'IP:::2', 'DNS:elsewhere.invalid']);
});
after(() => {
  good.remove();
  wrongIp.remove();
});

/** A TLS collector on `host` serving `served`; the sink trusts `trusted` and exports to `endpoint(port)`. */
async function exportOver(host: string, served: TestCertificate, trusted: TestCertificate, endpoint?: (port: number) => string): Promise<{ sink: OtlpSink; collector: TestCollector }> {
  const collector = new TestCollector({ host, tls: { cert: served.cert, key: served.key } });
  await collector.start();
  cleanup.push(() => {
    collector.stop();
  });
  const url = endpoint?.(collector.port) ?? collector.endpoint;
  const cfg = resolveOtlpConfig({ endpoint: url, signals: 'logs' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: trusted.certPath, OTEL_BLRP_SCHEDULE_DELAY: '20', OTEL_EXPORTER_OTLP_TIMEOUT: '5000' });
  const sink = new OtlpSink(cfg, { retry: { initialBackoffMs: 50, maxBackoffMs: 250, maxElapsedMs: 1000 } });
  cleanup.push(() => sink.shutdown(100));
  sink.emit(tcpEvents(20));
  await sink.shutdown(10_000);
  return { sink, collector };
}

describe('OTLP over TLS', () => {
  for (const [name, host] of [['IPv4', '127.0.0.1'], ['IPv6', '::1']] as const) {
    it(`delivers to https://<${name} address> with a certificate naming that IP`, async () => {
      const { sink, collector } = await exportOver(host, good, good);
      assert.match(collector.endpoint, /^https:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
      assert.equal(collector.records.length, 20, sink.stats().lastError);
      assert.equal(sink.stats().exported, 20);
    });

    it(`refuses a certificate that does not name the ${name} address, or that it does not trust`, async () => {
      const { sink, collector } = await exportOver(host, wrongIp, wrongIp);
      assert.equal(collector.records.length, 0);
      const stats = sink.stats();
      assert.deepEqual([stats.exported, stats.droppedExportFailed], [0, 20]);
      assert.match(stats.lastError ?? '', /IP: (127\.0\.0\.1|::1) is not in the cert's list/);
      // naming the IP is not enough: the chain must lead to a trusted CA
      const untrusted = await exportOver(host, good, wrongIp);
      assert.equal(untrusted.collector.records.length, 0);
      assert.match(untrusted.sink.stats().lastError ?? '', /self[- ]signed certificate/);
    });
  }

  it('delivers to https://localhost with the same certificate, and refuses one for another name', async () => {
    const named = await exportOver('127.0.0.1', good, good, (port) => `https://localhost:${port}`);
    assert.equal(named.collector.records.length, 20, named.sink.stats().lastError);
    const other = await exportOver('127.0.0.1', wrongIp, wrongIp, (port) => `https://localhost:${port}`);
    assert.equal(other.collector.records.length, 0);
    assert.match(other.sink.stats().lastError ?? '', /Host: localhost\. is not in the cert's altnames/);
  });
});
