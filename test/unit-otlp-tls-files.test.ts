/** TLS files that cannot be used are one UsageError at start, naming the variable, never a stack from gRPC. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { createOtlpGrpcLogExporter } from '../src/otlp/export/grpc.ts';
import { checkTlsFiles } from '../src/otlp/export/tls-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'tt-tls-'));
after(() => { rmSync(dir, { recursive: true }); });

/** A self-signed certificate and its key, made by openssl. */
function pair(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  return { cert, key };
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const check = (env: Record<string, string>): void => {
  checkTlsFiles(resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, env));
};

describe('checkTlsFiles', () => {
  const ca = pair('ca');
  const client = pair('client');
  const other = pair('other');
  const garbage = file('garbage.pem', 'not a certificate\n');
  const broken = file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');

  it('takes PEM files that go together, a CA bundle included', () => {
    check({ OTEL_EXPORTER_OTLP_CERTIFICATE: ca.cert, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: client.cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: client.key });
    const bundle = file('bundle.pem', execFileSync('cat', [ca.cert, other.cert], { encoding: 'utf8' }));
    check({ OTEL_EXPORTER_OTLP_CERTIFICATE: bundle });
    // plaintext targets read none
    checkTlsFiles(resolveOtlpConfig({ endpoint: 'http://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: garbage }));
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    ['a CA file that is not PEM', { OTEL_EXPORTER_OTLP_CERTIFICATE: garbage }, /^OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE \/ OTEL_EXPORTER_OTLP_CERTIFICATE: '.*garbage\.pem' holds no PEM certificate/],
    ['a CA certificate that does not parse', { OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: broken }, /^OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE \/ OTEL_EXPORTER_OTLP_CERTIFICATE: certificate #1 of '.*broken\.pem' does not parse/],
    ['a client key that is not PEM', { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: client.cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: garbage }, /CLIENT_KEY: '.*garbage\.pem' is not an unencrypted PEM private key/],
    ['a client certificate that is not PEM', { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: garbage, OTEL_EXPORTER_OTLP_CLIENT_KEY: client.key }, /CLIENT_CERTIFICATE: '.*garbage\.pem' holds no PEM certificate/],
    ['a key without its certificate', { OTEL_EXPORTER_OTLP_CLIENT_KEY: client.key }, /CLIENT_KEY is set without .*CLIENT_CERTIFICATE/],
    ['a key of another certificate', { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: client.cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: other.key }, /^logs: the TLS files do not go together .*: .+/],
    ['a file that is missing', { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'missing.pem') }, /CERTIFICATE: cannot read '.*missing\.pem': ENOENT/],
  ];
  for (const [name, env, message] of bad) {
    it(`rejects ${name}: one line, a UsageError`, () => {
      assert.throws(() => { check(env); }, (e: unknown) => e instanceof UsageError && message.test(e.message) && !e.message.includes('\n'), name);
    });
  }

  it('what it rejects is what gRPC would have failed on, or accepted and then failed every export with', () => {
    // the unchecked path: the exporter's construction throws an error that is not a UsageError (the CLI printed its stack)
    const target = resolveOtlpConfig({ endpoint: 'https://127.0.0.1:9' }, { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: client.cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: garbage }).logs;
    assert.throws(() => createOtlpGrpcLogExporter(target, 'test'), (e: unknown) => !(e instanceof UsageError));
  });
});
