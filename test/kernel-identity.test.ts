/**
 * Container and pod identity from real cgroups: processes placed by the test
 * in cgroups named as containerd/systemd, CRI-O/cgroupfs, Docker and podman
 * name them get the exact container_id / pod_uid; a host process gets none;
 * the resolution cache stays bounded over many short-lived cgroups; cgroups
 * made and removed before their events are looked at resolve to their own
 * identity or to none, never to another's.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IdentityResolver } from '../src/identity/resolver.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { tcpEvent } from './fixtures/tcp-events.ts';
import type { TcpEvent } from '../src/types.ts';
import { cgroup2Root, kernelSuite, NetNs, removeCgroup, startPeer, startTracer } from './helpers/kernel.ts';

const suite = kernelSuite();

const hex64 = (): string => randomBytes(32).toString('hex');

/**
 * The processes here exit at once, so their cgroups are found by walking the
 * tree: give a loaded CI machine (or an emulated one, test/vm) time for it.
 * What is tested is that the lookup is right, not how fast it is.
 */
const SLOW_HOST_ENV = { ...process.env, TCPTRACER_IDENTITY_WAIT_MS: '3000' };

describe('kernel: container and pod identity', suite, () => {
  let ns: NetNs;
  let top: string;
  const made: string[] = [];
  before(() => {
    ns = new NetNs();
    // a private subtree, so that nothing outside the test is touched
    top = join(cgroup2Root(), `tt-id-${randomBytes(3).toString('hex')}`);
    mkdirSync(top);
    made.push(top);
  });
  after(async () => {
    for (const dir of made.reverse()) await removeCgroup(dir).catch(() => undefined);
    ns.delete();
  });

  /** mkdir -p under the test's subtree; remembered for removal, deepest first. */
  function cgroup(rel: string): string {
    let dir = top;
    for (const part of rel.split('/').filter(Boolean)) {
      dir = join(dir, part);
      mkdirSync(dir, { recursive: true });
      if (!made.includes(dir)) made.push(dir);
    }
    return dir;
  }

  test('each runtime layout gives the exact container_id and pod_uid; a host process gets none', async () => {
    const uid = randomUUID();
    const layouts: { name: string; path: string; containerId: string | undefined; podUid: string | undefined }[] = [];
    const add = (name: string, path: (id: string) => string, pod: boolean): void => {
      const id = hex64();
      layouts.push({ name, path: path(id), containerId: id, podUid: pod ? uid : undefined });
    };
    const u = uid.replaceAll('-', '_');
    add('tt-containerd', (id) => `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice/cri-containerd-${id}.scope`, true);
    add('tt-crio', (id) => `kubepods/besteffort/pod${uid}/crio-${id}`, true);
    add('tt-docker', (id) => `system.slice/docker-${id}.scope`, false);
    add('tt-podman', (id) => `machine.slice/libpod-${id}.scope`, false);
    layouts.push({ name: 'tt-hostproc', path: 'system.slice/tt-host.service', containerId: undefined, podUid: undefined });

    // started after the tracer: every cgroup is new to it
    const tracer = await startTracer(['-N', String(ns.inode)], { env: SLOW_HOST_ENV });
    const server = await startPeer(ns, ['server', '127.0.0.1', '7600', String(layouts.length), 'tt-id-srv']);
    const clients = [];
    for (const l of layouts) {
      const dir = cgroup(l.path);
      const client = await startPeer(ns, ['client', '127.0.0.1', '7600', '1', l.name, '1', 'wait']);
      writeFileSync(join(dir, 'cgroup.procs'), String(client.pid));
      client.child.stdin?.write('go\n');
      clients.push({ ...l, client, cgroupId: statSync(dir).ino });
    }
    for (const c of clients) assert.equal(await c.client.exited, 0);
    assert.equal(await server.exited, 0);
    const { events, stderr } = await tracer.stop();
    for (const c of clients) {
      const mine = events.filter((e) => e.pid === c.client.pid);
      assert.deepEqual(mine.map((e) => e.type), ['connect', 'close'], `${c.name}: ${stderr}`);
      for (const e of mine) {
        assert.equal(e.cgroup_id, c.cgroupId, `${c.name}: the probe's cgroup id is the cgroup directory's inode`);
        assert.equal(e.container_id, c.containerId, `${c.name} container_id`);
        assert.equal(e.pod_uid, c.podUid, `${c.name} pod_uid`);
      }
    }
    const srv = events.filter((e) => e.pid === server.pid);
    assert.ok(srv.length > 0 && srv.every((e) => e.container_id === undefined && e.pod_uid === undefined), 'the test runner is a host process');
  });

  test('--no-identity: no lookup, no container_id', async () => {
    const dir = cgroup(`system.slice/docker-${hex64()}.scope`);
    const tracer = await startTracer(['-N', String(ns.inode), '--no-identity']);
    const server = await startPeer(ns, ['server', '127.0.0.1', '7605', '1', 'tt-noid-srv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7605', '1', 'tt-noid-cli', '1', 'wait']);
    writeFileSync(join(dir, 'cgroup.procs'), String(client.pid));
    client.child.stdin?.write('go\n');
    assert.equal(await client.exited, 0);
    assert.equal(await server.exited, 0);
    const { events } = await tracer.stop();
    const mine = events.filter((e) => e.pid === client.pid);
    assert.equal(mine.length, 2);
    assert.ok(mine.every((e) => e.container_id === undefined && e.cgroup_id === statSync(dir).ino));
  });

  test('OTLP records, spans and metric series carry container.id and k8s.pod.uid', async () => {
    const uid = randomUUID();
    const id = hex64();
    const dir = cgroup(`kubepods.slice/kubepods-pod${uid.replaceAll('-', '_')}.slice/cri-containerd-${id}.scope`);
    const collector = new TestCollector();
    await collector.start();
    try {
      const tracer = await startTracer(['--otlp', '-q', '--otlp-signals', 'logs,traces,metrics', '-N', String(ns.inode), '--otlp-endpoint', collector.endpoint], { json: false, env: SLOW_HOST_ENV });
      const server = await startPeer(ns, ['server', '127.0.0.1', '7610', '1', 'tt-ido-srv']);
      const client = await startPeer(ns, ['client', '127.0.0.1', '7610', '1', 'tt-ido-cli', '1', 'wait']);
      writeFileSync(join(dir, 'cgroup.procs'), String(client.pid));
      client.child.stdin?.write('go\n');
      assert.equal(await client.exited, 0);
      assert.equal(await server.exited, 0);
      await collector.waitForRecords(4, 20_000);
      await collector.waitForSpans(2, 20_000);
      const { code, stderr } = await tracer.stop('SIGTERM');
      assert.equal(code, 0, stderr);
      const mine = collector.records.filter((r) => r.attributes['process.pid'] === client.pid);
      assert.deepEqual(mine.map((r) => r.eventName).sort(), ['tcp.close', 'tcp.connect']);
      for (const r of mine) assert.deepEqual([r.attributes['container.id'], r.attributes['k8s.pod.uid']], [id, uid], r.eventName);
      const span = collector.spans.find((sp) => sp.attributes['process.pid'] === client.pid);
      assert.deepEqual([span?.attributes['container.id'], span?.attributes['k8s.pod.uid']], [id, uid]);
      const host = collector.records.filter((r) => r.attributes['process.pid'] === server.pid);
      assert.ok(host.length === 2 && host.every((r) => !('container.id' in r.attributes) && !('k8s.pod.uid' in r.attributes)), 'a host process has neither');
      // the last collection, exported at exit: the container's series and the host process's apart
      const connections = (service: string): Readonly<Record<string, unknown>>[] =>
        collector.metricPoints.filter((p) => p.name === 'tcptracer.connections' && p.resource['service.name'] === service).map((p) => p.attributes);
      assert.deepEqual(connections('tt-ido-cli').map((a) => [a['container.id'], a['k8s.pod.uid']]), [[id, uid]]);
      assert.deepEqual(connections('tt-ido-srv').map((a) => [a['container.id'], a['k8s.pod.uid']]), [[undefined, undefined]]);
    } finally {
      collector.stop();
    }
  });

  for (const tree of [undefined, false] as const) test(`the resolution cache stays bounded over many short-lived cgroups, and forgets removed ones (${tree === false ? 'lookups only' : 'inotify tree'})`, async () => {
    const resolver = new IdentityResolver({ cgroupRoot: cgroup2Root(), maxEntries: 16, sweepMs: 200, negativeTtlMs: 200, maxWaitMs: 5000, tree });
    try {
      assert.equal(resolver.watching, tree !== false);
      const uid = randomUUID();
      for (let i = 0; i < 60; i++) {
        const id = hex64();
        const dir = cgroup(`kubepods/burstable/pod${uid}/${id}`);
        // a process that is gone: the resolver has to find the cgroup by its id alone
        const event = tcpEvent({ cgroupId: statSync(dir).ino, pid: 0x3fffff });
        const delivered = await new Promise<typeof event>((resolve) => {
          resolver.enrich([event], ([e]) => {
            resolve(e!);
          });
        });
        assert.equal(delivered.containerId, id, `cgroup #${i}`);
        assert.equal(delivered.podUid, uid);
        assert.ok(resolver.size <= 16, `cache size ${resolver.size}`);
        await removeCgroup(dir);
        made.splice(made.indexOf(dir), 1);
      }
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(resolver.size, 0, 'entries of removed cgroups expire');
    } finally {
      resolver.close();
    }
  });
});

describe('kernel: cgroups removed before their events are looked at', suite, () => {
  let ns: NetNs;
  let top: string;
  before(() => {
    ns = new NetNs();
    top = join(cgroup2Root(), `tt-idgone-${randomBytes(3).toString('hex')}`);
    mkdirSync(top);
  });
  after(async () => {
    await removeCgroup(top).catch(() => undefined);
    ns.delete();
  });

  const deliver = (resolver: IdentityResolver, events: TcpEvent[]): Promise<TcpEvent[]> =>
    new Promise((resolve) => {
      resolver.enrich(events, resolve);
    });

  test('30 container cgroups made and removed before the lookup: the ones seen made resolve exactly, the others are unknown', async () => {
    const resolver = new IdentityResolver({ cgroupRoot: cgroup2Root(), maxWaitMs: 5000 });
    try {
      assert.ok(resolver.watching, 'the tree watches every cgroup directory');
      const made: { id: string; cgroupId: number; seen: boolean }[] = [];
      for (let i = 0; i < 30; i++) {
        const id = hex64();
        const dir = join(top, `docker-${id}.scope`);
        mkdirSync(dir);
        const cgroupId = statSync(dir).ino;
        // even: the tracer's loop runs between mkdir and rmdir (it sees the cgroup made); odd: it does not
        const seen = i % 2 === 0;
        if (seen) await new Promise((r) => setTimeout(r, 30));
        rmdirSync(dir);
        made.push({ id, cgroupId, seen });
      }
      // processes long gone (an unused pid): nothing but the cgroup id to go by
      const events = await deliver(resolver, made.map((m) => tcpEvent({ cgroupId: m.cgroupId, pid: 0x3fffff })));
      assert.equal(events.length, 30);
      events.forEach((e, i) => {
        const m = made[i]!;
        assert.equal(e.cgroupId, m.cgroupId, 'in order');
        assert.equal(e.containerId, m.seen ? m.id : undefined, `cgroup #${i} (${m.seen ? 'seen made' : 'never seen'})`);
        assert.equal(e.podUid, undefined);
      });
    } finally {
      resolver.close();
    }
  });

  test('without the tree (lookups only), removed cgroups are unknown and a live one resolves, in one batch', async () => {
    const resolver = new IdentityResolver({ cgroupRoot: cgroup2Root(), maxWaitMs: 5000, tree: false });
    const live = hex64();
    const liveDir = join(top, `cri-containerd-${live}.scope`);
    mkdirSync(liveDir);
    try {
      assert.equal(resolver.watching, false);
      const gone: number[] = [];
      for (let i = 0; i < 30; i++) {
        const dir = join(top, `docker-${hex64()}.scope`);
        mkdirSync(dir);
        gone.push(statSync(dir).ino);
        rmdirSync(dir);
      }
      const events = await deliver(resolver, [...gone, statSync(liveDir).ino].map((cgroupId) => tcpEvent({ cgroupId, pid: 0x3fffff })));
      assert.deepEqual(events.slice(0, 30).map((e) => e.containerId), gone.map(() => undefined));
      assert.equal(events[30]?.containerId, live, 'found by the walk');
    } finally {
      resolver.close();
      await removeCgroup(liveDir);
    }
  });

  for (const host of ['127.0.0.1', '::1']) {
    test(`tracer: 30 short-lived container cgroups, each removed once its client is gone (${host}): own identity or none, never another's`, async () => {
      const tracer = await startTracer(['-N', String(ns.inode)], { env: SLOW_HOST_ENV });
      const port = host === '::1' ? 7621 : 7620;
      const server = await startPeer(ns, ['server', host, String(port), '30', 'tt-gone-srv']);
      const clients: { pid: number; id: string; cgroupId: number }[] = [];
      for (let i = 0; i < 30; i++) {
        const id = hex64();
        const dir = join(top, `cri-containerd-${id}.scope`);
        mkdirSync(dir);
        const cgroupId = statSync(dir).ino;
        const client = await startPeer(ns, ['client', host, String(port), '1', 'tt-gone-cli', '1', 'wait']);
        writeFileSync(join(dir, 'cgroup.procs'), String(client.pid));
        client.child.stdin?.write('go\n');
        assert.equal(await client.exited, 0);
        await removeCgroup(dir);
        clients.push({ pid: client.pid, id, cgroupId });
      }
      assert.equal(await server.exited, 0);
      const { events, stderr } = await tracer.stop();
      let resolved = 0;
      for (const c of clients) {
        const mine = events.filter((e) => e.pid === c.pid);
        assert.deepEqual(mine.map((e) => e.type), ['connect', 'close'], stderr);
        for (const e of mine) {
          assert.equal(e.cgroup_id, c.cgroupId);
          assert.ok(e.container_id === undefined || e.container_id === c.id, `pid ${c.pid}: ${e.container_id} is another cgroup's`);
          if (e.container_id === c.id) resolved++;
        }
      }
      // each cgroup was made well before its process started: the tree saw them (a very slow host may miss a few)
      assert.ok(resolved >= 30, `${resolved} of 60 events resolved: ${stderr}`);
    });
  }
});
