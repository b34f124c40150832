/**
 * The TLS files of the OTLP targets (…CERTIFICATE, …CLIENT_CERTIFICATE,
 * …CLIENT_KEY), checked at start, before anything is loaded: each must be PEM
 * that parses, a client key goes with a client certificate, and together they
 * must make a TLS context. Otherwise gRPC throws deep inside the exporter's
 * construction (a client key or certificate that is not PEM), or accepts a CA
 * file it then ignores, and every export fails. One {@link UsageError} naming
 * the variable instead.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { UsageError } from '../../errors.ts';
import type { OtlpConfig, OtlpSignal, OtlpTarget } from '../config.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * TLS files by path, read once: at start (checked here, before the drop of
 * privileges, src/privileges.ts); the exporters, and a replacement exporter
 * after a long outage, reuse what was read.
 */
const files = new Map<string, Buffer>();

function read(path: string, variable: string): Buffer {
  let pem = files.get(path);
  if (pem !== undefined) return pem;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new UsageError(`${variable}: cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  files.set(path, pem);
  return pem;
}

/** The TLS file at `path` (undefined: none set), read once; `variable` names the setting in errors. */
export function readTlsFile(path: string | undefined, variable: string): Buffer | undefined {
  return path === undefined ? undefined : read(path, variable);
}

/** The environment variables that set `name` (CERTIFICATE, CLIENT_KEY, ...) for `signal`, for messages. */
export function tlsVariable(signal: OtlpSignal, name: string): string {
  return `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_${name} / OTEL_EXPORTER_OTLP_${name}`;
}

/** The first line of a crypto error (OpenSSL's reason), without its stack. */
function reason(e: unknown): string {
  return ((e as Error).message || String(e)).split('\n')[0] ?? '';
}

function certificates(path: string, variable: string): Buffer {
  const pem = read(path, variable);
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new UsageError(`${variable}: '${path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (e) {
      throw new UsageError(`${variable}: certificate #${i + 1} of '${path}' does not parse: ${reason(e)}`);
    }
  }
  return pem;
}

function privateKey(path: string, variable: string): Buffer {
  const pem = read(path, variable);
  try {
    createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new UsageError(`${variable}: '${path}' is not an unencrypted PEM private key: ${reason(e)}`);
  }
  return pem;
}

function checkTarget(t: OtlpTarget, signal: OtlpSignal): void {
  if (t.insecure) return;
  const variable = (name: string): string => `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_${name} / OTEL_EXPORTER_OTLP_${name}`;
  const ca = t.certificatePath === undefined ? undefined : certificates(t.certificatePath, variable('CERTIFICATE'));
  const cert = t.clientCertificatePath === undefined ? undefined : certificates(t.clientCertificatePath, variable('CLIENT_CERTIFICATE'));
  const key = t.clientKeyPath === undefined ? undefined : privateKey(t.clientKeyPath, variable('CLIENT_KEY'));
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError(`${variable(cert === undefined ? 'CLIENT_KEY' : 'CLIENT_CERTIFICATE')} is set without ${variable(cert === undefined ? 'CLIENT_CERTIFICATE' : 'CLIENT_KEY')}: mutual TLS needs both`);
  }
  try {
    createSecureContext({ ca, cert, key });
  } catch (e) {
    throw new UsageError(`${signal}: the TLS files do not go together (${variable('CLIENT_CERTIFICATE')}, ${variable('CLIENT_KEY')}): ${reason(e)}`);
  }
}

/** Throws a UsageError naming the first TLS file of an exported signal that cannot be used. */
export function checkTlsFiles(cfg: OtlpConfig): void {
  for (const signal of cfg.signals) checkTarget(cfg[signal], signal);
}
