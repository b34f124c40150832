/**
 * The real probe, for the connections that are easy to lose: clients that
 * reset before the server accepts (health checks), at small and burst scale,
 * and connects that never establish (--failed: refused, timed out).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kernelSuite, NetNs, sh, startPeer, startTracer, within, type JsonEvent, type Peer } from './helpers/kernel.ts';

const suite = kernelSuite();

/**
 * `n` connections from a client that resets each one (SO_LINGER 0) while the
 * server is stopped (SIGSTOP), so none is accepted before its reset; then the
 * server runs again and accepts every one that is queued. Returns the peers,
 * the client's local ports and how many were queued.
 *
 * Queued is n, less the connections whose RST reached the server before the
 * handshake's last ACK did: over loopback each segment waits in the backlog
 * of the CPU that sent it, so when the client runs on another CPU by the time
 * it resets, the RST can overtake the ACK. The server then drops the half-open
 * connection (counted as TcpExt:EmbryonicRsts) and never has a socket for it:
 * nothing to accept, nothing for the tracer to report on that side. Measured
 * in a 6.1 VM under emulation with the tracer attached: 1 of 2000 in 2 of 9
 * bursts (the server then waited forever for its 2000th); never seen on the
 * host. The two counts together must make n.
 */
async function resetBeforeAccept(ns: NetNs, addr: string, port: number, n: number, names: [string, string]): Promise<{ server: Peer; client: Peer; ports: number[]; queued: number }> {
  const server = await startPeer(ns, ['server', addr, String(port), '-', names[0]]);
  process.kill(server.pid, 'SIGSTOP');
  const embryonic = (): number => ns.counters().get('TcpExt:EmbryonicRsts') ?? NaN;
  const embryonicBefore = embryonic();
  const client = await startPeer(ns, ['client', addr, String(port), String(n), names[1], '1', 'reset']);
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(Number((await client.line()).split(' ')[1]));
  assert.equal(await within(client.exited, 60_000, 'the client\'s exit'), 0);
  const queued = ns.acceptQueue(port);
  const overtaken = embryonic() - embryonicBefore;
  assert.equal(queued + overtaken, n, `${queued} queued to be accepted and ${overtaken} reset before their handshake completed make all ${n}`);
  server.child.stdin?.end(`${queued}\n`);
  process.kill(server.pid, 'SIGCONT');
  assert.equal(await within(server.exited, 120_000, `the server's exit after accepting ${queued}`), 0, 'the server accepted every queued connection');
  return { server, client, ports, queued };
}

const byType = (events: JsonEvent[], type: JsonEvent['type'], pid: number): JsonEvent[] =>
  events.filter((e) => e.type === type && e.pid === pid);

describe('kernel: every connection, exactly', suite, () => {
  let ns: NetNs;
  before(() => {
    ns = new NetNs();
  });
  after(() => {
    ns.delete();
  });

  for (const [ip, addr] of [[4, '127.0.0.1'], [6, '::1']] as const) {
    test(`IPv${ip}: 20 connections reset before accept: a C and an X each, an A and an X for each one queued, tuples from establishment`, async () => {
      const tracer = await startTracer(['-N', String(ns.inode)]);
      const port = 7400 + ip;
      const { server, client, ports, queued } = await resetBeforeAccept(ns, addr, port, 20, [`tt-hc-srv${ip}`, `tt-hc-cli${ip}`]);
      const { events, stderr, code } = await tracer.stop();
      assert.equal(code, 0, stderr);
      const c = byType(events, 'connect', client.pid);
      const a = byType(events, 'accept', server.pid);
      const xc = byType(events, 'close', client.pid);
      const xs = byType(events, 'close', server.pid);
      assert.deepEqual([c.length, a.length, xc.length, xs.length, events.length], [20, queued, 20, queued, 40 + 2 * queued], JSON.stringify(events));
      const sorted = [...ports].sort((p, q) => p - q);
      const tuple = (e: JsonEvent): string => `${e.ip} ${e.saddr}:${e.sport} ${e.daddr}:${e.dport} ${e.comm} ${e.role}`;
      assert.deepEqual(c.map((e) => e.sport).sort((p, q) => p - q), sorted);
      const accepted = a.map((e) => e.dport);
      assert.equal(new Set(accepted).size, queued, 'one accept per queued connection');
      for (const p of accepted) assert.ok(ports.includes(p), `accepts carry the client ports seen at establishment: ${p}`);
      for (const e of [...c, ...xc]) assert.equal(tuple(e), `${ip} ${addr}:${e.sport} ${addr}:${port} tt-hc-cli${ip} client`);
      for (const e of [...a, ...xs]) assert.equal(tuple(e), `${ip} ${addr}:${port} ${addr}:${e.dport} tt-hc-srv${ip} server`);
      for (const x of xc) assert.deepEqual([x.end, x.error], ['reset', undefined], 'the client sent the RST: no error on its side');
      for (const x of xs) assert.deepEqual([x.end, x.error, x.errno], ['reset', 'ECONNRESET', 104]);
      // each accept is followed at once by its own X
      for (const accept of a) {
        const i = events.indexOf(accept);
        assert.equal(tuple(events[i + 1]!), tuple(accept));
        assert.equal(events[i + 1]!.type, 'close');
      }
      assert.doesNotMatch(stderr, /lost|untracked|skipped/);
    });
  }

  test('a burst of 2000 connections reset before accept arrives complete', async (t) => {
    const n = 2000;
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const { server, client, queued } = await resetBeforeAccept(ns, '127.0.0.1', 7410, n, ['tt-hcb-srv', 'tt-hcb-cli']);
    t.diagnostic(`${queued} of ${n} queued for accept, ${n - queued} reset before their handshake completed`);
    const { events, stderr } = await tracer.stop();
    assert.deepEqual(
      [byType(events, 'connect', client.pid).length, byType(events, 'accept', server.pid).length,
        byType(events, 'close', client.pid).length, byType(events, 'close', server.pid).length],
      [n, queued, n, queued],
    );
    assert.doesNotMatch(stderr, /lost|untracked|skipped/);
  });

  test('a reset connection never accepted emits nothing for the server, and its state is freed', async () => {
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const server = await startPeer(ns, ['server', '127.0.0.1', '7415', '1', 'tt-never']);
    process.kill(server.pid, 'SIGSTOP');
    const client = await startPeer(ns, ['client', '127.0.0.1', '7415', '1', 'tt-nv-cli', '1', 'reset']);
    await client.exited;
    server.child.kill('SIGKILL'); // the listener goes away with the reset connection still queued
    process.kill(server.pid, 'SIGCONT');
    await server.exited;
    const { events } = await tracer.stop();
    assert.deepEqual(events.map((e) => `${e.type} ${e.comm}`), ['connect tt-nv-cli', 'close tt-nv-cli']);
  });

  test('--failed: a refused connect is an F with the caller and ECONNREFUSED; none without --failed', async () => {
    const tracer = await startTracer(['--failed', '-N', String(ns.inode)]);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7499', '1', 'tt-refused']);
    assert.notEqual(await client.exited, 0, 'the connect was refused');
    const { events } = await tracer.stop();
    assert.equal(events.length, 1, JSON.stringify(events));
    const f = events[0]!;
    assert.deepEqual(
      [f.type, f.pid, f.tid, f.comm, f.role, f.ip, f.saddr, f.daddr, f.dport, f.error, f.errno, f.netns],
      ['failed', client.pid, client.pid, 'tt-refused', 'client', 4, '127.0.0.1', '127.0.0.1', 7499, 'ECONNREFUSED', 111, ns.inode],
    );
    assert.ok(f.sport > 1023, `the local port the SYN left from: ${f.sport}`);

    const plain = await startTracer(['-N', String(ns.inode)]);
    const again = await startPeer(ns, ['client', '127.0.0.1', '7499', '1', 'tt-refused2']);
    assert.notEqual(await again.exited, 0);
    assert.deepEqual((await plain.stop()).events, [], 'no F without --failed: the plain output stays bcc\'s');
  });

  test('--failed combines with the filters: -p and -6 leave out what they exclude', async () => {
    const wanted = await startPeer(ns, ['client', '127.0.0.1', '7498', '1', 'tt-f-mine', '1', 'wait']);
    const tracer = await startTracer(['--failed', '-N', String(ns.inode), '-p', String(wanted.pid)]);
    const other = await startPeer(ns, ['client', '127.0.0.1', '7498', '1', 'tt-f-other']);
    await other.exited;
    wanted.child.stdin?.write('go\n');
    await wanted.exited;
    const { events } = await tracer.stop();
    assert.deepEqual(events.map((e) => `${e.type} ${e.comm}`), ['failed tt-f-mine']);

    const v6only = await startTracer(['--failed', '-N', String(ns.inode), '-6']);
    const v4 = await startPeer(ns, ['client', '127.0.0.1', '7498', '1', 'tt-f-v4']);
    const v6 = await startPeer(ns, ['client', '::1', '7498', '1', 'tt-f-v6']);
    await Promise.all([v4.exited, v6.exited]);
    const six = (await v6only.stop()).events;
    assert.deepEqual(six.map((e) => `${e.type} ${e.comm} ${e.ip} ${e.error}`), ['failed tt-f-v6 6 ECONNREFUSED']);
  });

  test('--failed: SYNs into a veth whose far end is down time out: ETIMEDOUT, after the SYN retries', async () => {
    // one SYN retry in this namespace (TCP_SYNCNT=1 for every socket): ~3 s; a permanent
    // neighbour entry, so no ARP failure turns it into EHOSTUNREACH
    const cmd = (...args: string[]): string => sh('ip', ['-n', ns.name, ...args]);
    cmd('link', 'add', 'tt-va', 'type', 'veth', 'peer', 'name', 'tt-vb');
    try {
      cmd('addr', 'add', '198.18.77.1/24', 'dev', 'tt-va');
      cmd('link', 'set', 'tt-va', 'up'); // tt-vb stays down
      cmd('neigh', 'add', '198.18.77.2', 'lladdr', '02:00:00:00:77:02', 'dev', 'tt-va', 'nud', 'permanent');
      sh('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv4.tcp_syn_retries=1']);
      const tracer = await startTracer(['--failed', '-N', String(ns.inode)]);
      const started = Date.now();
      const client = await startPeer(ns, ['client', '198.18.77.2', '7497', '1', 'tt-timeout']);
      assert.notEqual(await client.exited, 0);
      const { events } = await tracer.stop();
      assert.deepEqual(
        events.map((e) => [e.type, e.pid, e.comm, e.saddr, e.daddr, e.dport, e.error, e.errno]),
        [['failed', client.pid, 'tt-timeout', '198.18.77.1', '198.18.77.2', 7497, 'ETIMEDOUT', 110]],
      );
      assert.ok(Date.now() - started >= 2500, 'it failed after the SYN retry, not at once');
    } finally {
      cmd('link', 'del', 'tt-va');
      sh('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv4.tcp_syn_retries=6']);
    }
  });
});
