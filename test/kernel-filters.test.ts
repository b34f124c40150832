/**
 * In-kernel filters of the real probe: -p, -u, -N, -4, -6, --cgroupmap and
 * --mntnsmap (pinned maps as bcc defines them, changed while tracing), and the
 * errors for pinned maps that are missing or of the wrong shape.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as bpf from 'bpf';
import { cgroup2Root, CLI, kernelSuite, ROOT, removeCgroup, NetNs, run, sh, startPeer, startTracer, type JsonEvent, type Peer } from './helpers/kernel.ts';

const suite = kernelSuite();

/** One connection client -> server in `ns`; resolves when both peers are done. */
async function connection(
  ns: NetNs,
  addr: string,
  port: number,
  names: [string, string],
  clientWrap?: string[],
): Promise<{ server: Peer; client: Peer }> {
  const server = await startPeer(ns, ['server', addr, String(port), '1', names[0]]);
  const client = await startPeer(ns, ['client', addr, String(port), '1', names[1]], { wrap: clientWrap });
  assert.equal(await client.exited, 0);
  assert.equal(await server.exited, 0);
  return { server, client };
}

const summary = (events: JsonEvent[]): string[] => events.map((e) => `${e.type} ${e.comm}`).sort();

function pinMap(keySize: number): string {
  const path = `/sys/fs/bpf/tt-${randomBytes(4).toString('hex')}`;
  sh('bpftool', ['map', 'create', path, 'type', 'hash', 'key', String(keySize), 'value', '8', 'entries', '128', 'name', 'tt_filter']);
  return path;
}

function addKey(path: string, key: number): void {
  const map = new bpf.RawMap(bpf.createMapRef(bpf.objGet(path), { transfer: true }));
  const k = Buffer.alloc(8);
  k.writeBigUInt64LE(BigInt(key));
  map.set(k, Buffer.alloc(8));
  map.ref.close();
}

describe('kernel: filters', suite, () => {
  let ns: NetNs;
  let other: NetNs;
  before(() => {
    ns = new NetNs();
    other = new NetNs();
  });
  after(() => {
    ns.delete();
    other.delete();
  });

  test('-p PID: only that process', async () => {
    const server = await startPeer(ns, ['server', '127.0.0.1', '7100', '2', 'tt-srv']);
    const tracer = await startTracer(['-N', String(ns.inode), '-p', String(server.pid)]);
    for (const name of ['tt-a', 'tt-b']) {
      const c = await startPeer(ns, ['client', '127.0.0.1', '7100', '1', name]);
      await c.exited;
    }
    await server.exited;
    const { events } = await tracer.stop();
    assert.deepEqual(summary(events), ['accept tt-srv', 'accept tt-srv', 'close tt-srv', 'close tt-srv']);
    assert.ok(events.every((e) => e.pid === server.pid));
  });

  test('-u UID: only that (real) user; the effective uid is reported beside it', async () => {
    const tracer = await startTracer(['-N', String(ns.inode), '-u', '65534']);
    // real uid nobody, effective uid still root (as a setuid-root program would be)
    await connection(ns, '127.0.0.1', 7110, ['tt-root', 'tt-nobody'], ['setpriv', '--ruid=65534', '--rgid=65534', '--clear-groups']);
    const { events } = await tracer.stop();
    assert.deepEqual(summary(events), ['close tt-nobody', 'connect tt-nobody']);
    assert.ok(events.every((e) => e.uid === 65534 && e.euid === 0), JSON.stringify(events));
  });

  test('-N NETNS: only that network namespace', async () => {
    const tracer = await startTracer(['-N', String(other.inode)]);
    await connection(ns, '127.0.0.1', 7120, ['tt-here', 'tt-here-c']);
    await connection(other, '127.0.0.1', 7120, ['tt-there', 'tt-there-c']);
    const { events } = await tracer.stop();
    assert.deepEqual(summary(events), ['accept tt-there', 'close tt-there', 'close tt-there-c', 'connect tt-there-c']);
    assert.ok(events.every((e) => e.netns === other.inode));
  });

  for (const [flag, keep, drop] of [
    ['-4', ['127.0.0.1', 4], ['::1', 6]],
    ['-6', ['::1', 6], ['127.0.0.1', 4]],
  ] as const) {
    test(`${flag}: only IPv${keep[1]}`, async () => {
      const tracer = await startTracer(['-N', String(ns.inode), flag]);
      await connection(ns, keep[0], 7130, ['tt-keep', 'tt-keep-c']);
      await connection(ns, drop[0], 7131, ['tt-drop', 'tt-drop-c']);
      const { events } = await tracer.stop();
      assert.deepEqual(summary(events), ['accept tt-keep', 'close tt-keep', 'close tt-keep-c', 'connect tt-keep-c']);
      assert.ok(events.every((e) => e.ip === keep[1]));
    });
  }

  test('--cgroupmap: only tasks whose cgroup is in the pinned map, entries added while tracing', async () => {
    const cg = `${cgroup2Root()}/tt-${randomBytes(4).toString('hex')}`;
    mkdirSync(cg);
    const map = pinMap(8);
    try {
      const tracer = await startTracer(['-N', String(ns.inode), '--cgroupmap', map]);
      const server = await startPeer(ns, ['server', '127.0.0.1', '7140', '2', 'tt-outside']);
      // both clients wait for a line on stdin; move them into the cgroup first
      const before = await startPeer(ns, ['client', '127.0.0.1', '7140', '1', 'tt-before', '1', 'wait']);
      writeFileSync(`${cg}/cgroup.procs`, String(before.pid));
      before.child.stdin?.write('go\n');
      assert.equal(await before.exited, 0);
      addKey(map, statSync(cg).ino); // the cgroup v2 id is its directory's inode
      const inside = await startPeer(ns, ['client', '127.0.0.1', '7140', '1', 'tt-inside', '1', 'wait']);
      writeFileSync(`${cg}/cgroup.procs`, String(inside.pid));
      inside.child.stdin?.write('go\n');
      assert.equal(await inside.exited, 0);
      await server.exited;
      const { events } = await tracer.stop();
      assert.deepEqual(summary(events), ['close tt-inside', 'connect tt-inside']);
      assert.ok(events.every((e) => e.cgroup_id === statSync(cg).ino));
    } finally {
      rmSync(map);
      await removeCgroup(cg);
    }
  });

  test('--mntnsmap: only tasks whose mount namespace is in the pinned map', async () => {
    const map = pinMap(8);
    try {
      const tracer = await startTracer(['-N', String(ns.inode), '--mntnsmap', map]);
      const server = await startPeer(ns, ['server', '127.0.0.1', '7150', '2', 'tt-hostns']);
      const inside = await startPeer(ns, ['client', '127.0.0.1', '7150', '1', 'tt-newns', '1', 'wait'], {
        wrap: ['unshare', '--mount'],
      });
      addKey(map, inside.mntns);
      inside.child.stdin?.write('go\n');
      const outside = await startPeer(ns, ['client', '127.0.0.1', '7150', '1', 'tt-samens']);
      assert.equal(await inside.exited, 0);
      assert.equal(await outside.exited, 0);
      await server.exited;
      const { events } = await tracer.stop();
      assert.deepEqual(summary(events), ['close tt-newns', 'connect tt-newns']);
    } finally {
      rmSync(map);
    }
  });

  test('a pinned map that is missing, or has the wrong key size: one line, exit 1', () => {
    const missing = run(process.execPath, [CLI, '--cgroupmap', '/sys/fs/bpf/tt-does-not-exist']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^tcptracer: --cgroupmap \/sys\/fs\/bpf\/tt-does-not-exist: cannot open pinned BPF map .*\n$/);
    const map = pinMap(4);
    try {
      const wrong = run(process.execPath, [CLI, '--mntnsmap', map]);
      assert.equal(wrong.code, 1);
      assert.equal(wrong.stderr, `tcptracer: --mntnsmap ${map}: expected a BPF hash map with 8-byte keys, found type HASH with 4-byte keys\n`);
    } finally {
      rmSync(map);
    }
  });

  test('a pinned program, a bloom filter, a path with a newline: named as what they are, on one line', () => {
    const base = `/sys/fs/bpf/tt-${randomBytes(4).toString('hex')}`;
    try {
      sh('bpftool', ['prog', 'load', `${ROOT}build/Release/tcptracer.bpf.o`, `${base}-prog`]);
      sh('bpftool', ['map', 'create', `${base}-bloom`, 'type', 'bloom_filter', 'key', '0', 'value', '8', 'entries', '128', 'name', 'tt_bloom']);
      const prog = run(process.execPath, [CLI, '--cgroupmap', `${base}-prog`]);
      assert.equal(prog.code, 1);
      assert.equal(prog.stderr, `tcptracer: --cgroupmap ${base}-prog: expected a BPF hash map with 8-byte keys, found a BPF program\n`);
      const bloom = run(process.execPath, [CLI, '--mntnsmap', `${base}-bloom`]);
      assert.equal(bloom.code, 1);
      assert.equal(bloom.stderr, `tcptracer: --mntnsmap ${base}-bloom: expected a BPF hash map with 8-byte keys, found type BLOOM_FILTER with 0-byte keys\n`);
      const newline = run(process.execPath, [CLI, '--cgroupmap', `${base}\nx`]);
      assert.equal(newline.code, 1);
      assert.match(newline.stderr, /^tcptracer: --cgroupmap \/sys\/fs\/bpf\/tt-[0-9a-f]+\\nx: cannot open pinned BPF map [^\n]*\n$/);
    } finally {
      rmSync(`${base}-prog`, { force: true });
      rmSync(`${base}-bloom`, { force: true });
    }
  });
});
