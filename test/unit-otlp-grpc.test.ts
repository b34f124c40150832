import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ExportResultCode } from '@opentelemetry/core';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { createOtlpGrpcLogExporter, createOtlpGrpcTraceExporter, hookResponses, partialSuccessOf, PartialSuccessExporter } from '../src/otlp/grpc.ts';
import type { CountedExportResult } from '../src/otlp/processor.ts';

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

describe('the stock exporters', () => {
  it('still have the shape hookResponses relies on (an SDK upgrade that moves it fails here)', async () => {
    const target = resolveOtlpConfig({ endpoint: 'http://127.0.0.1:9' }, {}).logs;
    const logs = createOtlpGrpcLogExporter(target, 'test');
    const traces = createOtlpGrpcTraceExporter(target, 'test');
    assert.equal(logs.hooked, true);
    assert.equal(traces.hooked, true);
    await Promise.all([logs.shutdown(), traces.shutdown()]);
    assert.equal(hookResponses({}, () => undefined), false);
  });
});

describe('PartialSuccessExporter', () => {
  it('adds the response its serializer decoded to the result that follows', async () => {
    const serializer = { serializeRequest: () => new Uint8Array(), deserializeResponse: (data: Uint8Array) => ({ partialSuccess: { rejectedLogRecords: data[0] } }) };
    const inner = {
      _delegate: { _serializer: serializer },
      export(_items: number[], done: (r: CountedExportResult) => void): void {
        this._delegate._serializer.deserializeResponse(new Uint8Array([2]));
        done({ code: ExportResultCode.SUCCESS });
      },
      shutdown: () => Promise.resolve(),
    };
    const exporter = new PartialSuccessExporter<number>(inner);
    assert.equal(exporter.hooked, true);
    const result = await new Promise<CountedExportResult>((resolve) => {
      exporter.export([1, 2, 3], resolve);
    });
    assert.equal(result.code, ExportResultCode.SUCCESS);
    assert.equal(result.rejected, 2);
    assert.equal(result.error?.message, 'collector rejected 2 of 3 items (partial success)');
  });
});

describe('TLS files', () => {
  it('are read once: a replacement exporter needs no access to them any more (privileges dropped)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-pem-'));
    const ca = join(dir, 'ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', ca, '-days', '1', '-subj', '/CN=tt'], { stdio: 'ignore' });
    const target = resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: ca }).logs;
    const first = createOtlpGrpcLogExporter(target, 'test');
    rmSync(dir, { recursive: true });
    const second = createOtlpGrpcLogExporter(target, 'test (channel 2)');
    await Promise.all([first.shutdown(), second.shutdown()]);
    const missing = resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'other.pem') }).logs;
    assert.throws(() => createOtlpGrpcLogExporter(missing, 'test'), /OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE \/ OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read/);
  });
});
