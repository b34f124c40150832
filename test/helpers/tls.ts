/** A self-signed certificate made with openssl, for TLS tests: it is its own CA. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  /** Directory holding cert.pem and key.pem; remove() deletes it. */
  readonly dir: string;
  /** Path of the certificate (PEM), also the CA that trusts it. */
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly remove: () => void;
}

/**
 * An EC P-256 certificate for `/CN=<cn>`, valid one day, with these subject
 * alternative names (openssl syntax: `IP:127.0.0.1`, `IP:::1`, `DNS:localhost`).
 */
export function makeCertificate(cn = 'tt', san: readonly string[] = []): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'tt-pem-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const ext = san.length > 0 ? ['-addext', `subjectAltName=${san.join(',')}`] : [];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', `/CN=${cn}`, ...ext],
    { stdio: 'ignore' },
  );
  return {
    dir,
    certPath,
    keyPath,
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
