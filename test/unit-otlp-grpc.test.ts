import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { partialSuccessOf } from '../src/otlp/export/delegate.ts';
import { createOtlpGrpcLogExporter } from '../src/otlp/export/grpc.ts';
import { makeCertificate } from './helpers/tls.ts';

describe('partialSuccessOf', () => {
  it('reads rejected_log_records / rejected_spans and the message of a decoded response', () => {
    assert.deepEqual(partialSuccessOf({ partialSuccess: { rejectedLogRecords: 3, errorMessage: 'too old' } }), { rejected: 3, message: 'too old' });
    assert.deepEqual(partialSuccessOf({ partialSuccess: { rejectedSpans: '2' } }), { rejected: 2, message: '' });
    assert.deepEqual(partialSuccessOf({ partialSuccess: { errorMessage: 'a warning' } }), { rejected: 0, message: 'a warning' });
    assert.equal(partialSuccessOf({}), undefined);
    assert.equal(partialSuccessOf({ partialSuccess: {} }), undefined);
    assert.equal(partialSuccessOf(undefined), undefined);
  });
});

describe('TLS files', () => {
  it('are read once: a replacement exporter needs no access to them any more (privileges dropped)', async () => {
    const { dir, certPath: ca, remove } = makeCertificate();
    const target = resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: ca }).logs;
    const first = createOtlpGrpcLogExporter(target, 'test');
    remove();
    const second = createOtlpGrpcLogExporter(target, 'test (channel 2)');
    await Promise.all([first.shutdown(), second.shutdown()]);
    const missing = resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'other.pem') }).logs;
    assert.throws(() => createOtlpGrpcLogExporter(missing, 'test'), /OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE \/ OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read/);
  });
});
