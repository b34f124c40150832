/**
 * OTLP over HTTP, without a network: OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL and
 * the endpoints it implies (a base endpoint gets /v1/<signal>, a signal's own
 * is the full URL), and HTTP failures mapped to the gRPC codes the retry logic
 * reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { describeOtlpConfig, resolveOtlpConfig } from '../src/otlp/config.ts';
import { isRetryable } from '../src/otlp/export/retry.ts';
import { asGrpcCodedError } from '../src/otlp/export/http.ts';

describe('OTLP protocol configuration', () => {
  it('is grpc on port 4317 unless told otherwise', () => {
    const cfg = resolveOtlpConfig({}, {});
    assert.deepEqual([cfg.logs.protocol, cfg.logs.endpoint, cfg.traces.protocol], ['grpc', 'http://localhost:4317', 'grpc']);
  });

  it('http/protobuf: the default base endpoint on 4318, with each signal\'s path', () => {
    const cfg = resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
    assert.deepEqual([cfg.logs.protocol, cfg.logs.endpoint], ['http/protobuf', 'http://localhost:4318/v1/logs']);
    assert.deepEqual([cfg.traces.protocol, cfg.traces.endpoint], ['http/protobuf', 'http://localhost:4318/v1/traces']);
    assert.match(describeOtlpConfig(cfg), /http:\/\/localhost:4318\/v1\/logs \(http\/protobuf plaintext/);
  });

  it('appends the signal path to a base endpoint (flag or generic variable), keeps a signal\'s own URL as given', () => {
    const env = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://gw.example:443/otlp/',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://jaeger:4318/custom/traces',
    };
    const cfg = resolveOtlpConfig({}, env);
    assert.equal(cfg.logs.endpoint, 'https://gw.example/otlp/v1/logs');
    assert.equal(cfg.logs.insecure, false);
    assert.equal(cfg.traces.endpoint, 'http://jaeger:4318/custom/traces');
    assert.equal(resolveOtlpConfig({ endpoint: 'http://c:4318' }, env).traces.endpoint, 'http://c:4318/v1/traces', 'the flag is a base endpoint');
  });

  it('takes the protocol per signal', () => {
    const cfg = resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' });
    assert.deepEqual([cfg.logs.protocol, cfg.logs.endpoint], ['grpc', 'http://c:4317']);
    assert.deepEqual([cfg.traces.protocol, cfg.traces.endpoint], ['http/protobuf', 'http://c:4317/v1/traces']);
  });

  it('refuses other protocols and a gRPC endpoint with a path, naming the variable', () => {
    assert.throws(() => resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), (e: unknown) => e instanceof UsageError && /OTEL_EXPORTER_OTLP_PROTOCOL: expected grpc or http\/protobuf/.test(e.message));
    assert.throws(() => resolveOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317/v1/logs' }), /takes no path/);
  });
});

describe('OTLP/HTTP failures as gRPC codes', () => {
  it('retries what the OTLP specification says to retry over HTTP, and nothing else', () => {
    const status = (code: number): unknown => Object.assign(new Error('x'), { code });
    for (const code of [429, 502, 503, 504]) assert.ok(isRetryable(asGrpcCodedError(status(code))), `HTTP ${code}`);
    for (const code of [400, 401, 404, 413, 500]) assert.ok(!isRetryable(asGrpcCodedError(status(code))), `HTTP ${code}`);
    assert.ok(isRetryable(asGrpcCodedError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))));
    assert.ok(isRetryable(asGrpcCodedError(new Error('Request timed out'))));
    assert.match(asGrpcCodedError(status(413)).message, /^HTTP 413: x$/);
  });
});
