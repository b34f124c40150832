import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { describeOtlpConfig, resolveOtlpConfig } from '../src/otlp/config.ts';

describe('resolveOtlpConfig', () => {
  it('has the documented defaults', () => {
    const target = {
      protocol: 'grpc',
      endpoint: 'http://localhost:4317',
      insecure: true,
      certificatePath: undefined,
      clientCertificatePath: undefined,
      clientKeyPath: undefined,
      headers: {},
      compression: 'none',
      timeoutMs: 10_000,
    };
    assert.deepEqual(resolveOtlpConfig({}, {}), {
      signals: ['logs', 'traces'],
      logs: target,
      traces: target,
      metrics: target,
      metricExport: { intervalMs: 60_000, timeoutMs: 30_000, temporality: 'cumulative', cardinalityLimit: 2000 },
      serviceName: 'tcptracer',
      resourceAttributes: {},
      spanServiceName: 'process',
      maxQueueSize: 4096,
      maxExportBatchSize: 512,
      scheduledDelayMs: 1000,
      shutdownTimeoutMs: 5000,
      sampling: { sampler: 'parentbased_always_on', ratio: 1, source: 'default' },
    });
  });

  it('takes the endpoint from the flag, then the logs variable, then the generic one', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'https://logs:4317' };
    assert.equal(resolveOtlpConfig({ endpoint: 'http://flag:1234' }, env).logs.endpoint, 'http://flag:1234');
    assert.equal(resolveOtlpConfig({}, env).logs.endpoint, 'https://logs:4317');
    assert.equal(resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317' }).logs.endpoint, 'http://generic:4317');
  });

  it('treats empty variables and flags as unset', () => {
    const cfg = resolveOtlpConfig({ endpoint: ' ' }, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: '', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317', OTEL_EXPORTER_OTLP_TIMEOUT: '' });
    assert.equal(cfg.logs.endpoint, 'http://generic:4317');
    assert.equal(cfg.logs.timeoutMs, 10_000);
  });

  it('derives TLS from the scheme, or from INSECURE when there is none', () => {
    assert.equal(resolveOtlpConfig({ endpoint: 'https://c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'true' }).logs.insecure, false);
    assert.equal(resolveOtlpConfig({ endpoint: 'http://c:4317' }, {}).logs.insecure, true);
    const plain = resolveOtlpConfig({ endpoint: 'c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'TRUE' });
    assert.deepEqual([plain.logs.endpoint, plain.logs.insecure], ['http://c:4317', true]);
    const tls = resolveOtlpConfig({ endpoint: 'c:4317' }, { OTEL_EXPORTER_OTLP_INSECURE: 'true', OTEL_EXPORTER_OTLP_LOGS_INSECURE: 'false' });
    assert.deepEqual([tls.logs.endpoint, tls.logs.insecure], ['https://c:4317', false]);
    assert.equal(resolveOtlpConfig({ endpoint: 'http://[::1]:4317' }, {}).logs.endpoint, 'http://[::1]:4317');
  });

  it('merges headers per key, logs-specific winning, percent-decoded, keys lower-cased', () => {
    const cfg = resolveOtlpConfig({}, {
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Basic%20abc%3D%3D, x-tenant = a ,',
      OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-tenant=logs%2Cteam',
    });
    assert.deepEqual(cfg.logs.headers, { authorization: 'Basic abc==', 'x-tenant': 'logs,team' });
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
    assert.equal(cfg.logs.certificatePath, '/logs/ca.pem');
    assert.equal(cfg.logs.clientKeyPath, '/k.pem');
    assert.equal(cfg.logs.clientCertificatePath, '/c.pem');
    assert.equal(cfg.logs.compression, 'gzip');
    assert.equal(cfg.logs.timeoutMs, 2500);
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

  it('resolves the traces target from OTEL_EXPORTER_OTLP_TRACES_* over the generic variables; the flag sets both', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://jaeger:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=a,x-generic=g',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=traces',
      OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: '/traces/ca.pem',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/k.pem',
      OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: '/tc.pem',
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '1500',
    };
    const cfg = resolveOtlpConfig({}, env);
    assert.deepEqual(cfg.traces, {
      protocol: 'grpc',
      endpoint: 'https://jaeger:4317',
      insecure: false,
      certificatePath: '/traces/ca.pem',
      clientCertificatePath: '/tc.pem',
      clientKeyPath: '/k.pem',
      headers: { 'x-tenant': 'traces', 'x-generic': 'g' },
      compression: 'gzip',
      timeoutMs: 1500,
    });
    assert.equal(cfg.logs.endpoint, 'http://generic:4317');
    assert.deepEqual(cfg.logs.headers, { 'x-tenant': 'a', 'x-generic': 'g' });
    assert.equal(cfg.logs.compression, 'none');
    assert.equal(cfg.logs.timeoutMs, 3000);
    const flagged = resolveOtlpConfig({ endpoint: 'http://flag:1234' }, env);
    assert.deepEqual([flagged.logs.endpoint, flagged.traces.endpoint], ['http://flag:1234', 'http://flag:1234']);
    const insecure = resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317', OTEL_EXPORTER_OTLP_TRACES_INSECURE: 'true' });
    assert.deepEqual([insecure.logs.endpoint, insecure.traces.endpoint], ['https://c:4317', 'http://c:4317']);
  });

  it('chooses signals from --otlp-signals, then TCPTRACER_OTLP_SIGNALS, default both', () => {
    assert.deepEqual(resolveOtlpConfig({ signals: 'logs' }, { TCPTRACER_OTLP_SIGNALS: 'traces' }).signals, ['logs']);
    assert.deepEqual(resolveOtlpConfig({}, { TCPTRACER_OTLP_SIGNALS: 'traces' }).signals, ['traces']);
    assert.deepEqual(resolveOtlpConfig({ signals: ' Traces , logs,traces ' }, {}).signals, ['logs', 'traces']);
    assert.deepEqual(resolveOtlpConfig({ signals: '' }, { TCPTRACER_OTLP_SIGNALS: '' }).signals, ['logs', 'traces']);
  });

  it('takes metrics alone or with the other signals, in one order', () => {
    assert.deepEqual(resolveOtlpConfig({ signals: 'metrics' }, {}).signals, ['metrics']);
    assert.deepEqual(resolveOtlpConfig({ signals: 'metrics,logs' }, {}).signals, ['logs', 'metrics']);
    assert.deepEqual(resolveOtlpConfig({}, { TCPTRACER_OTLP_SIGNALS: 'Metrics,traces,logs' }).signals, ['logs', 'traces', 'metrics']);
  });

  it('takes the metrics target from OTEL_EXPORTER_OTLP_METRICS_* over the generic variables', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://metrics:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2',
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'b=3',
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '4000',
    };
    const cfg = resolveOtlpConfig({ signals: 'metrics' }, env);
    assert.equal(cfg.metrics.endpoint, 'http://metrics:4317');
    assert.deepEqual(cfg.metrics.headers, { a: '1', b: '3' });
    assert.equal(cfg.metrics.timeoutMs, 4000);
    assert.equal(cfg.logs.endpoint, 'http://generic:4317');
    assert.equal(resolveOtlpConfig({ endpoint: 'http://flag:1' }, env).metrics.endpoint, 'http://flag:1');
    const http = resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' });
    assert.equal(http.metrics.endpoint, 'http://c:4318/v1/metrics');
  });

  it('takes the interval, timeout, temporality and cardinality limit of the metrics', () => {
    const cfg = resolveOtlpConfig({}, {
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
      OTEL_METRIC_EXPORT_TIMEOUT: '2500',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta',
      TCPTRACER_METRICS_CARDINALITY_LIMIT: '100',
    });
    assert.deepEqual(cfg.metricExport, { intervalMs: 5000, timeoutMs: 2500, temporality: 'delta', cardinalityLimit: 100 });
    // an export attempt is bounded by both the exporter's timeout and the export timeout
    assert.equal(cfg.metrics.timeoutMs, 2500);
    assert.equal(resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'lowmemory' }).metricExport.temporality, 'lowmemory');
    assert.equal(resolveOtlpConfig({ cardinalityLimit: '7' }, { TCPTRACER_METRICS_CARDINALITY_LIMIT: '100' }).metricExport.cardinalityLimit, 7);
    assert.match(describeOtlpConfig(resolveOtlpConfig({ signals: 'metrics' }, {})), /logs off, traces off, metrics -> http:\/\/localhost:4317 .*metrics every 60000 ms, cumulative, at most 2000 series/);
  });

  it('takes the span resource choice from TCPTRACER_SPAN_SERVICE_NAME', () => {
    assert.equal(resolveOtlpConfig({}, { TCPTRACER_SPAN_SERVICE_NAME: 'tracer' }).spanServiceName, 'tracer');
    assert.equal(resolveOtlpConfig({}, { TCPTRACER_SPAN_SERVICE_NAME: 'Process' }).spanServiceName, 'process');
  });

  const bad: [string, Parameters<typeof resolveOtlpConfig>[0], Record<string, string>, RegExp][] = [
    ['non-numeric timeout', {}, { OTEL_EXPORTER_OTLP_TIMEOUT: 'abc' }, /OTEL_EXPORTER_OTLP_TIMEOUT/],
    ['unknown signal', { signals: 'logs,profiles' }, {}, /unknown signal 'profiles'/],
    ['unknown temporality', {}, { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'sometimes' }, /OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: expected cumulative, delta or lowmemory/],
    ['zero interval', {}, { OTEL_METRIC_EXPORT_INTERVAL: '0' }, /OTEL_METRIC_EXPORT_INTERVAL/],
    ['non-numeric export timeout', {}, { OTEL_METRIC_EXPORT_TIMEOUT: '1s' }, /OTEL_METRIC_EXPORT_TIMEOUT/],
    ['zero cardinality limit', { cardinalityLimit: '0' }, {}, /--metrics-cardinality-limit/],
    ['bad cardinality variable', {}, { TCPTRACER_METRICS_CARDINALITY_LIMIT: 'many' }, /TCPTRACER_METRICS_CARDINALITY_LIMIT/],
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
    ['a traces path', {}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4317/v1/traces' }, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.*no path/],
    ['a bad traces timeout', {}, { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: 'soon' }, /OTEL_EXPORTER_OTLP_TRACES_TIMEOUT/],
    ['an unknown signal flag', { signals: 'logs,metric' }, {}, /--otlp-signals: unknown signal 'metric'/],
    ['an unknown signal variable', {}, { TCPTRACER_OTLP_SIGNALS: 'spans' }, /TCPTRACER_OTLP_SIGNALS: unknown signal 'spans'/],
    ['no signal at all', { signals: ',' }, {}, /--otlp-signals: name at least one signal/],
    ['a bad span service name choice', {}, { TCPTRACER_SPAN_SERVICE_NAME: 'pod' }, /TCPTRACER_SPAN_SERVICE_NAME/],
    ['a header value that is not ASCII', {}, { OTEL_EXPORTER_OTLP_HEADERS: 'k=%C3%A9' }, /^OTEL_EXPORTER_OTLP_HEADERS: the value of 'k' is not a valid gRPC metadata value/],
    ['a header value with a newline', {}, { OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'k=a%0Ab' }, /^OTEL_EXPORTER_OTLP_LOGS_HEADERS: the value of 'k' is not/],
    ['a header value with a control character', {}, { OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'k=a%7Fb' }, /^OTEL_EXPORTER_OTLP_TRACES_HEADERS: the value of 'k' is not/],
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
    assert.throws(() => resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%0ATOPSECRET' }), (err: unknown) => {
      return err instanceof UsageError && !err.message.includes('TOPSECRET');
    });
  });

  it('takes printable ASCII header values, spaces and punctuation included', () => {
    assert.deepEqual(resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20a.b~c!%22' }).logs.headers, { authorization: 'Bearer a.b~c!"' });
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
    const named = describeOtlpConfig(resolveOtlpConfig({}, { OTEL_SERVICE_NAME: 'edge\ntcptracer: forged\x1b[2J', OTEL_RESOURCE_ATTRIBUTES: 'a%0Ab=1' }));
    assert.doesNotMatch(named, /[\p{Cc}]/u, 'a newline or ESC in OTEL_SERVICE_NAME or an attribute name is escaped');
    assert.ok(named.includes('service.name=edge\\ntcptracer: forged\\x1b[2J') && named.includes('resource attributes a\\nb'), named);
    assert.doesNotMatch(line, /TOPSECRET|tenant42|SECRETNODE/);
    assert.match(line, /^otlp: logs -> https:\/\/collector:4317 /);
    for (const part of ['logs -> https://collector:4317', 'traces -> https://collector:4317', 'tls', 'gzip', 'authorization=<redacted>', 'x-scope-orgid=<redacted>', 'k8s.node.name', 'queue 4096']) {
      assert.ok(line.includes(part), `${part} missing from: ${line}`);
    }
  });
});

describe('describeOtlpConfig per signal', () => {
  it('says which signals go where, and which are off', () => {
    const both = describeOtlpConfig(resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://loki:4317', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://jaeger:4317' }));
    assert.match(both, /logs -> http:\/\/loki:4317 \(grpc plaintext.*\), traces -> http:\/\/jaeger:4317 \(grpc plaintext/);
    assert.match(both, /spans under each process's service.name/);
    const logsOnly = describeOtlpConfig(resolveOtlpConfig({ signals: 'logs', endpoint: 'http://127.0.0.1:4317' }, {}));
    assert.match(logsOnly, /logs -> http:\/\/127\.0\.0\.1:4317 .*, traces off, metrics off;/);
    assert.doesNotMatch(logsOnly, /spans under/);
    const tracesOnly = describeOtlpConfig(resolveOtlpConfig({ signals: 'traces' }, { TCPTRACER_SPAN_SERVICE_NAME: 'tracer' }));
    assert.match(tracesOnly, /^otlp: logs off, traces -> http:\/\/localhost:4317 /);
    assert.match(tracesOnly, /spans under the tracer's service.name/);
  });
});
