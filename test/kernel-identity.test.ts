/**
 * Container and pod identity from real cgroups: processes placed by the test
 * in cgroups named as containerd/systemd, CRI-O/cgroupfs, Docker and podman
 * name them get the exact container_id / pod_uid; a host process gets none;
 * the resolution cache stays bounded over many short-lived cgroups.
 */
import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IdentityResolver } from '../src/identity/resolver.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { tcpEvent } from './fixtures/tcp-events.ts';
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

  test('OTLP records and spans carry container.id and k8s.pod.uid', async () => {
    const uid = randomUUID();
    const id = hex64();
    const dir = cgroup(`kubepods.slice/kubepods-pod${uid.replaceAll('-', '_')}.slice/cri-containerd-${id}.scope`);
    const collector = new TestCollector();
    await collector.start();
    try {
      const tracer = await startTracer(['--otlp', '-q', '-N', String(ns.inode), '--otlp-endpoint', collector.endpoint], { json: false, env: SLOW_HOST_ENV });
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
    } finally {
      collector.stop();
    }
  });

  test('the resolution cache stays bounded over many short-lived cgroups, and forgets removed ones', async () => {
    const resolver = new IdentityResolver({ cgroupRoot: cgroup2Root(), maxEntries: 16, sweepMs: 200, negativeTtlMs: 200, maxWaitMs: 5000 });
    try {
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
