/**
 * The real probe in the running kernel: exact connect/accept/close events for
 * real connections in network namespaces created by the test.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { kernelSuite, lostEvents, NetNs, sh, startPeer, startTracer, type JsonEvent } from './helpers/kernel.ts';

const suite = kernelSuite();

/** Entries in the probe's per-socket map, for the tracer running as `pid` (its fds, then bpftool). */
function socketMapEntries(pid: number): number {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    const id = /^map_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
    if (id) ids.add(Number(id));
  }
  const maps = JSON.parse(sh('bpftool', ['-j', 'map', 'show'])) as { id: number; name: string }[];
  const mine = maps.filter((m) => m.name === 'socks' && ids.has(m.id));
  assert.equal(mine.length, 1, `one socks map held by pid ${pid}`);
  return (JSON.parse(sh('bpftool', ['-j', 'map', 'dump', 'id', String(mine[0]!.id)])) as unknown[]).length;
}

function pick(events: JsonEvent[], type: JsonEvent['type'], pid: number): JsonEvent[] {
  return events.filter((e) => e.type === type && e.pid === pid);
}

/** One connection from `client` to `server` as C, A and two X, with exact fields. */
function assertConnection(
  events: JsonEvent[],
  o: { ns: NetNs; ip: 4 | 6; addr: string; port: number; client: { pid: number; comm: string }; server: { pid: number; comm: string } },
): void {
  const [c, ...moreC] = pick(events, 'connect', o.client.pid);
  const [a, ...moreA] = pick(events, 'accept', o.server.pid);
  assert.ok(c && moreC.length === 0, `one connect from pid ${o.client.pid}: ${JSON.stringify(events)}`);
  assert.ok(a && moreA.length === 0, `one accept in pid ${o.server.pid}: ${JSON.stringify(events)}`);
  const common = { ip: o.ip, saddr: o.addr, daddr: o.addr, netns: o.ns.inode, uid: 0 };
  assert.deepEqual([c.role, a.role, c.euid, a.euid], ['client', 'server', 0, 0]);
  assert.deepEqual({ ...pickFields(c), sport: 0 }, { ...common, comm: o.client.comm, dport: o.port, sport: 0 });
  assert.deepEqual(pickFields(a), { ...common, comm: o.server.comm, sport: o.port, dport: c.sport });
  assert.ok(c.sport > 1023 && c.sport !== o.port);
  assert.equal(c.tid, o.client.pid, 'connect from the main thread');
  const xc = pick(events, 'close', o.client.pid);
  const xs = pick(events, 'close', o.server.pid);
  assert.equal(xc.length, 1, 'exactly one X for the client side');
  assert.equal(xs.length, 1, 'exactly one X for the server side');
  assert.deepEqual([xc[0]!.role, xs[0]!.role], ['client', 'server'], 'closes keep the role');
  assert.deepEqual(pickFields(xc[0]), pickFields(c));
  assert.deepEqual(pickFields(xs[0]), pickFields(a));
  // Sequence-space counts, as tcp_info's: the client's SYN (1) and its byte once acked;
  // the server's byte and the client's FIN (received before the server closes).
  assert.ok([1, 2].includes(xc[0]!.bytes_acked!), `client bytes_acked ${xc[0]!.bytes_acked}`);
  assert.equal(xc[0]!.bytes_received, 0);
  assert.equal(xs[0]!.bytes_received, 2);
  for (const e of [c, a, ...xc, ...xs]) {
    const t = Date.parse(e.time);
    assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.ok(Math.abs(Date.now() - t) < 60_000, `time ${e.time} is now`);
    assert.ok(e.cgroup_id > 0);
  }
  assert.ok(Date.parse(c.time) <= Date.parse(xc[0]!.time));
  assert.ok(xc[0]!.duration_ns! > 0 && xs[0]!.duration_ns! > 0);
}

function pickFields(e: JsonEvent | undefined): Partial<JsonEvent> {
  assert.ok(e);
  const { ip, saddr, daddr, sport, dport, netns, uid, comm } = e;
  return { ip, saddr, daddr, sport, dport, netns, uid, comm };
}

describe('kernel: events', suite, () => {
  let ns: NetNs;
  before(() => {
    ns = new NetNs();
  });
  after(() => { ns.delete(); });

  for (const [ip, addr] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) {
    test(`IPv${ip}: connect, accept and both closes, with pids, comms, addresses, ports`, async () => {
      const tracer = await startTracer(['-N', String(ns.inode)]);
      const port = 7000 + ip;
      const server = await startPeer(ns, ['server', addr, String(port), '1', `tt-srv${ip}`]);
      const client = await startPeer(ns, ['client', addr, String(port), '1', `tt-cli${ip}`]);
      assert.equal(await client.exited, 0);
      assert.equal(await server.exited, 0);
      const { events, code, stderr } = await tracer.stop();
      assert.equal(code, 0, stderr);
      assert.equal(events.length, 4, JSON.stringify(events));
      assertConnection(events, {
        ns, ip, addr, port,
        client: { pid: client.pid, comm: `tt-cli${ip}` },
        server: { pid: server.pid, comm: `tt-srv${ip}` },
      });
      assert.doesNotMatch(stderr, /lost/);
    });
  }

  test('IPv4 client to a dual-stack IPv6 listener is reported as IPv4 (mapped address)', async () => {
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const server = await startPeer(ns, ['server', '::', '7010', '1', 'tt-dual']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7010', '1', 'tt-cli-m']);
    await client.exited;
    await server.exited;
    const { events } = await tracer.stop();
    assertConnection(events, {
      ns, ip: 4, addr: '127.0.0.1', port: 7010,
      client: { pid: client.pid, comm: 'tt-cli-m' },
      server: { pid: server.pid, comm: 'tt-dual' },
    });
  });

  test('a refused connect produces no event', async () => {
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7099', '1', 'tt-refused'], {});
    assert.notEqual(await client.exited, 0, 'the connect was refused');
    const { events } = await tracer.stop();
    assert.deepEqual(events, []);
  });

  test('a process killed with an open connection yields its X, with its pid and comm', async () => {
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const server = await startPeer(ns, ['server', '127.0.0.1', '7020', '1', 'tt-srv-k']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7020', '1', 'tt-victim', '1', 'hold']);
    const [, pid, sport] = (await client.line()).split(' ');
    client.child.kill('SIGKILL');
    await client.exited;
    assert.equal(await server.exited, 0);
    const { events } = await tracer.stop();
    const x = pick(events, 'close', Number(pid));
    assert.equal(x.length, 1, JSON.stringify(events));
    assert.equal(x[0]!.comm, 'tt-victim');
    assert.equal(x[0]!.sport, Number(sport));
    assert.equal(pick(events, 'connect', Number(pid)).length, 1);
    assert.equal(pick(events, 'close', server.pid).length, 1);
  });

  test('a burst of thousands of connections arrives complete, nothing lost', async () => {
    const n = 3000;
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const server = await startPeer(ns, ['server', '127.0.0.1', '7030', String(n), 'tt-bsrv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7030', String(n), 'tt-bcli', '64']);
    assert.equal(await client.exited, 0);
    assert.equal(await server.exited, 0);
    const { events, stderr, code } = await tracer.stop();
    assert.equal(code, 0);
    const count = (type: JsonEvent['type'], pid: number): number => pick(events, type, pid).length;
    assert.deepEqual(
      [count('connect', client.pid), count('accept', server.pid), count('close', client.pid), count('close', server.pid)],
      [n, n, n, n],
    );
    assert.equal(events.length, 4 * n);
    assert.doesNotMatch(stderr, /lost|untracked|malformed/);
  });

  test('per-socket state is cleaned up: after a burst the socket map is empty again', async () => {
    const tracer = await startTracer(['-N', String(ns.inode)]);
    const server = await startPeer(ns, ['server', '127.0.0.1', '7035', '500', 'tt-csrv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7035', '500', 'tt-ccli', '16']);
    await client.exited;
    await server.exited;
    const entries = socketMapEntries(tracer.child.pid ?? 0);
    const { events } = await tracer.stop();
    assert.equal(events.length, 2000);
    assert.equal(entries, 0, 'no socket state left behind');
  });

  test('a full ring buffer is counted, never silent: received + lost = expected', async () => {
    const n = 2000;
    // 4 KiB holds 34 events; the reader wakes every 100 ms at most: it must overflow
    const tracer = await startTracer(['-N', String(ns.inode)], { env: { ...process.env, TCPTRACER_RINGBUF_BYTES: '4096' } });
    const server = await startPeer(ns, ['server', '127.0.0.1', '7040', String(n), 'tt-lsrv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7040', String(n), 'tt-lcli', '64']);
    // stopped while the burst runs, the reader cannot keep up however fast the machine is
    tracer.child.kill('SIGSTOP');
    await client.exited;
    await server.exited;
    tracer.child.kill('SIGCONT');
    const { events, stderr, code } = await tracer.stop();
    assert.equal(code, 0);
    const lost = lostEvents(stderr);
    assert.ok(lost !== undefined && lost > 0, `loss reported: ${stderr}`);
    assert.equal(events.length + lost, 4 * n, `received ${events.length} + lost ${lost}`);
  });
});
