import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { parseCli } from '../src/options.ts';
import { checkHost } from '../src/preflight.ts';
import { EnvironmentError } from '../src/errors.ts';

test('bcc flags, short and long', () => {
  const o = parseCli(['-t', '-p', '181', '-u', '0', '-N', '4026531840', '-4', '-v', '--cgroupmap', '/sys/fs/bpf/x', '--mntnsmap', '/sys/fs/bpf/y']);
  assert.deepEqual(
    { t: o.timestamp, p: o.pid, u: o.uid, n: o.netns, f: o.family, v: o.verbose, c: o.cgroupMap, m: o.mntnsMap, j: o.json },
    { t: true, p: 181, u: 0, n: 4026531840, f: 4, v: true, c: '/sys/fs/bpf/x', m: '/sys/fs/bpf/y', j: false },
  );
  assert.equal(parseCli(['--ipv6']).family, 6);
  assert.equal(parseCli(['--pid=7']).pid, 7);
  assert.deepEqual(
    { ...parseCli([], {}), help: undefined },
    { help: undefined, timestamp: false, verbose: false, json: false, pid: undefined, uid: undefined, netns: undefined,
      family: undefined, cgroupMap: undefined, mntnsMap: undefined, otlp: false, quiet: false, otlpEndpoint: undefined, otlpQueueSize: undefined, otlpSignals: undefined, sample: undefined, metricsCardinalityLimit: undefined, ringbufBytes: undefined,
      failed: false, traceSelf: false, version: false, user: 'nobody', identity: true, identityWaitMs: undefined },
  );
  const o2 = parseCli(['--failed', '--trace-self', '--otlp', '--otlp-signals', 'logs', '--ringbuf-size', '16M', '--version']);
  assert.deepEqual([o2.failed, o2.traceSelf, o2.otlpSignals, o2.ringbufBytes, o2.version], [true, true, 'logs', 16 << 20, true]);
  assert.equal(parseCli(['--ringbuf-size', '65536']).ringbufBytes, 65536);
  assert.equal(parseCli(['--otlp', '--otlp-signals', 'metrics', '--metrics-cardinality-limit', '50']).metricsCardinalityLimit, '50');
  assert.equal(parseCli(['--no-identity']).identity, false);
  assert.equal(parseCli(['--otlp', '--sample', '0.25']).sample, '0.25', 'the ratio is checked by the OTLP config');
  assert.equal(parseCli([], { TCPTRACER_IDENTITY_WAIT_MS: '1500' }).identityWaitMs, 1500);
  assert.throws(() => parseCli([], { TCPTRACER_IDENTITY_WAIT_MS: 'soon' }), /TCPTRACER_IDENTITY_WAIT_MS: invalid value 'soon'/);
  assert.equal(parseCli(['--ringbuf-size', '64MiB']).ringbufBytes, 64 << 20);
  assert.equal(parseCli(['--ringbuf-size', '1g'], { TCPTRACER_RINGBUF_BYTES: '4096' }).ringbufBytes, 1 << 30, 'the flag wins');
});

test('bad input is a UsageError with a one-line message', () => {
  const bad: [string[], RegExp][] = [
    [['--nope'], /Unknown option '--nope'/],
    [['-4', '-6'], /-6\/--ipv6: not allowed with argument -4\/--ipv4/],
    [['-p', 'abc'], /-p\/--pid: invalid value 'abc'/],
    [['-p', '0'], /-p\/--pid: invalid value '0'/],
    [['-p', '-5'], /./],
    [['-u', '4294967295'], /-u\/--uid: invalid value/],
    [['-N', '1.5'], /-N\/--netns: invalid value/],
    [['-p'], /argument missing/],
    [['extra'], /Unexpected argument 'extra'/],
    [['--json', '-q'], /contradict/],
    [['--otlp-endpoint', 'http://x:4317'], /need --otlp/],
    [['--cgroupmap', ''], /expected a path/],
    [['--otlp-signals', 'logs'], /need --otlp/],
    [['--metrics-cardinality-limit', '10'], /--metrics-cardinality-limit needs --otlp/],
    [['--ringbuf-size', '3M'], /--ringbuf-size: invalid value '3M'/],
    [['--ringbuf-size', '2G'], /--ringbuf-size: invalid value/],
    [['--ringbuf-size', ''], /--ringbuf-size: invalid value/],
    [['--ringbuf-size', '1024'], /--ringbuf-size: invalid value/],
    [['--user', ''], /--user: expected a value/],
    [['--sample', '0.5'], /--sample needs --otlp/],
  ];
  for (const bad of ['1000', '4097', 'x', String(2 ** 31)]) {
    assert.throws(() => parseCli([], { TCPTRACER_RINGBUF_BYTES: bad }), /TCPTRACER_RINGBUF_BYTES: invalid value/);
  }
  assert.equal(parseCli([], { TCPTRACER_RINGBUF_BYTES: '65536' }).ringbufBytes, 65536);
  for (const [argv, re] of bad) {
    assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'), argv.join(' '));
  }
});

test('host checks name the missing requirement', () => {
  const ok = { euid: 0, capEff: (1n << 40n) - 1n, kernelRelease: '6.18.44', btfPresent: true };
  assert.doesNotThrow(() => { checkHost(ok); });
  assert.doesNotThrow(() => { checkHost({ ...ok, euid: 1000, capEff: (1n << 38n) | (1n << 39n) }); });
  const cases: [Partial<typeof ok>, RegExp][] = [
    [{ euid: 1000, capEff: 0n }, /must run as root/],
    [{ capEff: 1n << 39n }, /missing capabilities/],
    [{ kernelRelease: '5.4.0-generic' }, /kernel 5\.4\.0-generic is too old: .*5\.8/],
    [{ btfPresent: false }, /no kernel BTF at \/sys\/kernel\/btf\/vmlinux/],
  ];
  for (const [facts, re] of cases) {
    assert.throws(() => { checkHost({ ...ok, ...facts }); }, (e: unknown) => e instanceof EnvironmentError && re.test(e.message));
  }
});

test('the Node.js check names the version needed', async () => {
  const { unsupportedNode, packageVersion } = await import('../src/version.ts');
  assert.equal(unsupportedNode('26.10.0'), undefined);
  assert.equal(unsupportedNode('22.15.0'), undefined);
  assert.equal(unsupportedNode('23.0.1'), undefined);
  assert.match(unsupportedNode('22.14.0') ?? '', /^Node\.js 22\.14\.0 is too old: tcptracer needs Node\.js 22\.15 or later/);
  assert.match(unsupportedNode('20.20.2') ?? '', /too old/);
  assert.match(packageVersion(), /^\d+\.\d+\.\d+/);
});

test('--user names an account of /etc/passwd or a uid', async () => {
  const { lookupUser } = await import('../src/privileges.ts');
  const passwd = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\ntracer:x:998:997::/:/bin/false\n';
  assert.deepEqual(lookupUser('nobody', passwd), { name: 'nobody', uid: 65534, gid: 65534 });
  assert.deepEqual(lookupUser('tracer', passwd), { name: 'tracer', uid: 998, gid: 997 });
  assert.deepEqual(lookupUser('998', passwd), { name: 'tracer', uid: 998, gid: 997 });
  assert.deepEqual(lookupUser('4242', passwd), { name: '4242', uid: 4242, gid: 4242 });
  assert.throws(() => lookupUser('nosuch', passwd), (e: unknown) => e instanceof UsageError && /--user: no user 'nosuch'/.test(e.message));
  assert.deepEqual(lookupUser('4294967294', passwd), { name: '4294967294', uid: 4294967294, gid: 4294967294 });
  for (const uid of ['4294967295', '99999999999']) {
    assert.throws(() => lookupUser(uid, passwd), (e: unknown) => e instanceof UsageError && /--user: invalid uid '\d+' \(expected at most 4294967294\)/.test(e.message), uid);
  }
  assert.equal(parseCli(['--user', 'root']).user, 'root');
});
