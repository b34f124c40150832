/** The real CLI process: errors are one line on stderr with exit 2 (usage) or 1 (environment). */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;

function cli(args: string[], wrap: string[] = [], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const argv = [...wrap, process.execPath, CLI, ...args];
  const r = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('usage errors: one line, exit 2, no stack trace', () => {
  for (const args of [['--bogus'], ['-4', '-6'], ['-p', 'x'], ['--uid', '-1'], ['--sample', '0.5']]) {
    const r = cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^tcptracer: error: .+ \(see tcptracer --help\)\n$/);
    assert.equal(r.stdout, '');
  }
});

test('values that cannot be used, caught before anything loads: one line, no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tt-cli-'));
  try {
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not PEM\n');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', cert, '-days', '1', '-subj', '/CN=tt'], { stdio: 'ignore' });
    const tls = ['--otlp', '-q', '--otlp-endpoint', 'https://127.0.0.1:9'];
    const cases: [string[], NodeJS.ProcessEnv, number, RegExp][] = [
      [['--otlp', '-q'], { OTEL_EXPORTER_OTLP_HEADERS: 'k=%C3%A9' }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_HEADERS: the value of 'k' is not a valid gRPC metadata value/],
      [['--otlp', '-q'], { OTEL_EXPORTER_OTLP_HEADERS: 'k=a%0Ab' }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_HEADERS: the value of 'k' is not a valid gRPC metadata value/],
      [['--otlp', '-q', '--otlp-signals', 'metrics'], { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'often' }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: expected cumulative, delta or lowmemory, got 'often'/],
      [['--otlp', '-q', '--otlp-signals', 'metrics', '--metrics-cardinality-limit', '0'], {}, 2, /^tcptracer: --metrics-cardinality-limit: expected a positive integer, got '0'/],
      [['--otlp', '-q', '--otlp-signals', 'metrics'], { OTEL_METRIC_EXPORT_INTERVAL: '1m' }, 2, /^tcptracer: OTEL_METRIC_EXPORT_INTERVAL: expected a positive integer, got '1m'/],
      [tls, { OTEL_EXPORTER_OTLP_CERTIFICATE: garbage }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE \/ OTEL_EXPORTER_OTLP_CERTIFICATE: '.*' holds no PEM certificate/],
      [tls, { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: garbage }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY \/ OTEL_EXPORTER_OTLP_CLIENT_KEY: '.*' is not an unencrypted PEM private key/],
      [tls, { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: garbage, OTEL_EXPORTER_OTLP_CLIENT_KEY: join(dir, 'key.pem') }, 2, /^tcptracer: OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE .*holds no PEM certificate/],
      [['--otlp', '-q', '--sample', '2'], {}, 2, /^tcptracer: argument --sample: expected a ratio from 0 to 1, got '2'$/m],
      [['--otlp', '-q'], { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }, 2, /^tcptracer: OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got 'half'$/m],
      [['--otlp', '-q'], { OTEL_TRACES_SAMPLER: 'bogus' }, 2, /^tcptracer: OTEL_TRACES_SAMPLER: unknown sampler 'bogus'/],
      [['--user', '4294967295'], {}, 2, /^tcptracer: argument --user: invalid uid '4294967295'/],
      [['--user', 'a\nb'], {}, 2, /^tcptracer: argument --user: no user 'a\\nb'/],
      [[], { TCPTRACER_CGROUP_ROOT: join(dir, 'nowhere') }, 1, /^tcptracer: TCPTRACER_CGROUP_ROOT=.*nowhere: not a cgroup v2 directory/],
      [[], { TCPTRACER_CGROUP_ROOT: dir }, 1, /^tcptracer: TCPTRACER_CGROUP_ROOT=.*: not a cgroup v2 directory/],
    ];
    for (const [args, env, code, message] of cases) {
      const r = cli(args, [], env);
      const what = `${JSON.stringify(env)} ${args.join(' ')}: ${r.stderr}`;
      assert.equal(r.code, code, what);
      assert.match(r.stderr, message, what);
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${what}`);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, what);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('--help prints bcc-style usage and examples, exit 0', () => {
  const r = cli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: tcptracer \[-h\] \[-t\] \[-p PID\]/);
  assert.match(r.stdout, /examples:\n {4}tcptracer +# trace all TCP established connections/);
});

test('--version prints the package version, exit 0', () => {
  const r = cli(['--version']);
  assert.equal(r.code, 0, r.stderr);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(r.stdout, `tcptracer ${pkg.version}\n`);
});

test('not root: one line, exit 1', { skip: process.geteuid?.() !== 0 && 'needs root to drop privileges' }, () => {
  const r = cli([], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, 'tcptracer: tcptracer must run as root (or with CAP_BPF and CAP_PERFMON): try sudo\n');
});

const ROOT = new URL('..', import.meta.url).pathname;
const BUILT = `${ROOT}dist/src/cli.js`;
const SYSTEM_NODE = '/usr/bin/node';

function systemNodeMajor(): number | undefined {
  const r = spawnSync(SYSTEM_NODE, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? Number(/^v(\d+)/.exec(r.stdout)?.[1]) : undefined;
}

test('a Node.js too old for the tracer: one line, exit 1', {
  skip: !existsSync(BUILT) ? 'npm run build first' : (systemNodeMajor() ?? 99) >= 22 && `no old Node at ${SYSTEM_NODE}`,
}, () => {
  const r = spawnSync(SYSTEM_NODE, [BUILT, '--help'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^tcptracer: Node\.js \d+\.\d+\.\d+ is too old: tcptracer needs Node\.js 22\.15 or later .*\n$/);
  assert.equal(r.stdout, '');
});

test('npx tcptracer with the system Node first on PATH prints no npm engine warnings', { skip: !existsSync(BUILT) && 'npm run build first' }, () => {
  const env = { ...process.env, PATH: `/usr/bin:/bin:/usr/sbin:/sbin` };
  const r = spawnSync('npx', ['--yes', 'tcptracer', '--version'], { cwd: ROOT, encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EBADENGINE|npm warn/i);
  assert.match(r.stdout, /^tcptracer \d+\.\d+\.\d+\n$/);
});
