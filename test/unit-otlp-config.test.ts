import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { describeOtlpConfig, resolveOtlpConfig } from '../src/otlp/config.ts';

describe('resolveOtlpConfig', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(resolveOtlpConfig({}, {}), {
      endpoint: 'http://localhost:4317',
      insecure: true,
      certificatePath: undefined,
      clientCertificatePath: undefined,
      clientKeyPath: undefined,
      headers: {},
      compression: 'none',
      timeoutMs: 10_000,
      serviceName: 'tcptracer',
      resourceAttributes: {},
      maxQueueSize: 16_384,
      maxExportBatchSize: 512,
      scheduledDelayMs: 1000,
      shutdownTimeoutMs: 5000,
    });
  });

  it('takes the endpoint from the flag, then the logs variable, then the generic one', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'https://logs:4317' };
    assert.equal(resolveOtlpConfig({ endpoint: 'http://flag:1234' }, env).endpoint, 'http://flag:1234');
    assert.equal(resolveOtlpConfig({}, env).endpoint, 'https://logs:4317');
    assert.equal(resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317' }).endpoint, 'http://generic:4317');
  });

  it('treats empty variables and flags as unset', () => {
    const cfg = resolveOtlpConfig({ endpoint: ' ' }, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: '', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317', OTEL_EXPORTER_OTLP_TIMEOUT: '' });
    assert.equal(cfg.endpoint, 'http://generic:4317');
    assert.equal(cfg.timeoutMs, 10_000);
  });

  it('derives TLS from the scheme, or from INSECURE when there is none', () => {
    assert.equal(resolveOtlpConfig({ endpoint: 'https://c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'true' }).insecure, false);
    assert.equal(resolveOtlpConfig({ endpoint: 'http://c:4317' }, {}).insecure, true);
    const plain = resolveOtlpConfig({ endpoint: 'c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'TRUE' });
    assert.deepEqual([plain.endpoint, plain.insecure], ['http://c:4317', true]);
    const tls = resolveOtlpConfig({ endpoint: 'c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'true', OTEL_EXPORTER_OTLP_LOGS_INSECURE: 'false' });
    assert.deepEqual([tls.endpoint, tls.insecure], ['https://c:4317', false]);
    assert.equal(resolveOtlpConfig({ endpoint: 'http://[::1]:4317' }, {}).endpoint, 'http://[::1]:4317');
  });

  it('merges headers per key, logs-specific winning, percent-decoded, keys lower-cased', () => {
    const cfg = resolveOtlpConfig({}, {
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Basic%20abc%3D%3D, x-tenant = a ,',
      OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-tenant=logs%2Cteam',
    });
    assert.deepEqual(cfg.headers, { authorization: 'Basic abc==', 'x-tenant': 'logs,team' });
  });

  it('reads TLS files, compression and timeout with logs-specific precedence', () => {
    const cfg = resolveOtlpConfig({}, {
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/generic/ca.pem',
      OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: '/logs/ca.pem',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/k.pem',
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/c.pem',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
      OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: 'GZIP',
      OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
      OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '2500',
    });
    assert.equal(cfg.certificatePath, '/logs/ca.pem');
    assert.equal(cfg.clientKeyPath, '/k.pem');
    assert.equal(cfg.clientCertificatePath, '/c.pem');
    assert.equal(cfg.compression, 'gzip');
    assert.equal(cfg.timeoutMs, 2500);
  });

  it('takes service.name from OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES', () => {
    const attrs = { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,k8s.node.name=node%2D1,deployment.environment.name=prod' };
    const cfg = resolveOtlpConfig({}, attrs);
    assert.equal(cfg.serviceName, 'from-attrs');
    assert.deepEqual(cfg.resourceAttributes, { 'service.name': 'from-attrs', 'k8s.node.name': 'node-1', 'deployment.environment.name': 'prod' });
    assert.equal(resolveOtlpConfig({}, { ...attrs, OTEL_SERVICE_NAME: 'svc' }).serviceName, 'svc');
  });

  it('sizes the queue from the flag, then TCPTRACER_OTLP_QUEUE_SIZE, then OTEL_BLRP_MAX_QUEUE_SIZE', () => {
    const env = { TCPTRACER_OTLP_QUEUE_SIZE: '2000', OTEL_BLRP_MAX_QUEUE_SIZE: '3000' };
    assert.equal(resolveOtlpConfig({ queueSize: '1000' }, env).maxQueueSize, 1000);
    assert.equal(resolveOtlpConfig({}, env).maxQueueSize, 2000);
    assert.equal(resolveOtlpConfig({}, { OTEL_BLRP_MAX_QUEUE_SIZE: '3000' }).maxQueueSize, 3000);
    assert.equal(resolveOtlpConfig({ queueSize: '100' }, {}).maxExportBatchSize, 100);
    const batch = resolveOtlpConfig({}, { OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '64', OTEL_BLRP_SCHEDULE_DELAY: '250' });
    assert.deepEqual([batch.maxExportBatchSize, batch.scheduledDelayMs], [64, 250]);
    assert.equal(resolveOtlpConfig({ queueSize: 4096 }, env).maxQueueSize, 4096);
    assert.equal(resolveOtlpConfig({}, { TCPTRACER_OTLP_SHUTDOWN_TIMEOUT: '9000' }).shutdownTimeoutMs, 9000);
  });

  const bad: [string, Parameters<typeof resolveOtlpConfig>[0], Record<string, string>, RegExp][] = [
    ['non-numeric timeout', {}, { OTEL_EXPORTER_OTLP_TIMEOUT: 'abc' }, /OTEL_EXPORTER_OTLP_TIMEOUT/],
    ['zero timeout', {}, { OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '0' }, /OTEL_EXPORTER_OTLP_LOGS_TIMEOUT/],
    ['fractional queue size', { queueSize: '1.5' }, {}, /--otlp-queue-size/],
    ['negative queue size', {}, { TCPTRACER_OTLP_QUEUE_SIZE: '-5' }, /TCPTRACER_OTLP_QUEUE_SIZE/],
    ['batch larger than queue', { queueSize: '10' }, { OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '20' }, /OTEL_BLRP_MAX_EXPORT_BATCH_SIZE/],
    ['unknown compression', {}, { OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, /gzip or none/],
    ['non-boolean insecure', {}, { OTEL_EXPORTER_OTLP_INSECURE: 'yes' }, /OTEL_EXPORTER_OTLP_INSECURE/],
    ['unsupported scheme', { endpoint: 'ftp://c:21' }, {}, /--otlp-endpoint/],
    ['unparsable endpoint', {}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://' }, /OTEL_EXPORTER_OTLP_ENDPOINT/],
    ['credentials in the endpoint', { endpoint: 'http://user:secret@c:4317' }, {}, /credentials/],
    ['a path on a gRPC endpoint', {}, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://c:4317/v1/logs' }, /no path/],
    ['header without a value', {}, { OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /key=value/],
    ['header with an empty key', {}, { OTEL_EXPORTER_OTLP_HEADERS: '=v' }, /key=value/],
    ['bad percent-encoding', {}, { OTEL_EXPORTER_OTLP_HEADERS: 'a=%zz' }, /percent-encoding/],
    ['invalid metadata key', {}, { OTEL_EXPORTER_OTLP_HEADERS: 'a b=c' }, /metadata key/],
    ['binary metadata key', {}, { OTEL_EXPORTER_OTLP_HEADERS: 'token-bin=c' }, /metadata key/],
    ['bad resource attributes', {}, { OTEL_RESOURCE_ATTRIBUTES: 'a=1,b' }, /OTEL_RESOURCE_ATTRIBUTES/],
  ];
  for (const [name, flags, env, message] of bad) {
    it(`rejects ${name} with a UsageError naming its source`, () => {
      assert.throws(() => resolveOtlpConfig(flags, env), (err: unknown) => err instanceof UsageError && message.test(err.message));
    });
  }

  it('does not echo secret values in errors', () => {
    assert.throws(() => resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%zzTOPSECRET' }), (err: unknown) => {
      return err instanceof UsageError && !err.message.includes('TOPSECRET');
    });
  });
});

describe('describeOtlpConfig', () => {
  it('is one line naming headers and resource attributes but never their values', () => {
    const cfg = resolveOtlpConfig({ endpoint: 'https://collector:4317' }, {
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20TOPSECRET,x-scope-orgid=tenant42',
      OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=SECRETNODE',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    });
    const line = describeOtlpConfig(cfg);
    assert.doesNotMatch(line, /\n/);
    assert.doesNotMatch(line, /TOPSECRET|tenant42|SECRETNODE/);
    for (const part of ['https://collector:4317', 'tls', 'gzip', 'authorization=<redacted>', 'x-scope-orgid=<redacted>', 'k8s.node.name', 'queue 16384']) {
      assert.ok(line.includes(part), `${part} missing from: ${line}`);
    }
  });
});
