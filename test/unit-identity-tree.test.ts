/**
 * The inotify-kept tree (src/identity/tree.ts) on a real directory tree (a
 * temporary directory: inotify behaves there as on cgroupfs for mkdir, rmdir
 * and rename): directories made later are known by their inode without a walk,
 * removed ones are still answered for the grace period and then forgotten,
 * and past its bounds the tree says it is not complete; the resolver over it
 * (no cgroupfs needed: a path is a path).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { IdentityResolver } from '../src/identity/resolver.ts';
import { CgroupTree } from '../src/identity/tree.ts';
import type { TcpEvent } from '../src/types.ts';
import { tcpEvent } from './fixtures/tcp-events.ts';

const base = mkdtempSync(join(tmpdir(), 'tt-tree-'));
after(() => {
  rmSync(base, { recursive: true, force: true });
});
let n = 0;
const fresh = (): string => {
  const dir = join(base, `t${n++}`);
  mkdirSync(dir);
  return dir;
};

/** Polls until `test` holds (bounded: 2 s). */
async function until(test: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !test(); i++) await sleep(10);
  assert.ok(test(), what);
}

test('the tree at start, then directories made later, nested ones included, by inode', async () => {
  const root = fresh();
  mkdirSync(join(root, 'system.slice/a.service'), { recursive: true });
  writeFileSync(join(root, 'cgroup.procs'), ''); // files are not cgroups
  const tree = new CgroupTree(root);
  try {
    assert.equal(tree.complete, true);
    assert.equal(tree.size, 3);
    assert.equal(tree.dirOf(statSync(join(root, 'system.slice/a.service')).ino), join(root, 'system.slice/a.service'));
    assert.equal(tree.dirOf(statSync(join(root, 'cgroup.procs')).ino), undefined);
    // made after start, two levels at once (the inner one before its parent's watch existed)
    const pod = join(root, 'kubepods/pod1');
    mkdirSync(join(pod, 'c1'), { recursive: true });
    const id = statSync(join(pod, 'c1')).ino;
    await until(() => tree.dirOf(id) !== undefined, 'the nested directory is known');
    assert.equal(tree.dirOf(id), join(pod, 'c1'));
    assert.equal(tree.dirOf(statSync(pod).ino), pod);
    assert.equal(tree.size, 6);
  } finally {
    tree.close();
  }
});

test('a removed directory is answered for the grace period, then forgotten; a renamed one under its new name', async () => {
  const root = fresh();
  const tree = new CgroupTree(root, { graceMs: 300 });
  try {
    const dir = join(root, 'gone');
    mkdirSync(dir);
    const id = statSync(dir).ino;
    await until(() => tree.dirOf(id) !== undefined, 'known');
    assert.equal(tree.has(id), true);
    rmdirSync(dir);
    await until(() => tree.size === 1, 'the removal is seen');
    assert.equal(tree.dirOf(id), dir, 'still answered: its events may be queued');
    assert.equal(tree.has(id), false, 'but known to be gone');
    await until(() => tree.dirOf(id) === undefined, 'forgotten after the grace period');

    const old = join(root, 'old');
    mkdirSync(join(old, 'child'), { recursive: true });
    const [oldId, childId] = [statSync(old).ino, statSync(join(old, 'child')).ino];
    await until(() => tree.dirOf(childId) !== undefined, 'known');
    renameSync(old, join(root, 'new'));
    await until(() => tree.dirOf(childId) === join(root, 'new/child'), 'the child under the new name');
    assert.equal(tree.dirOf(oldId), join(root, 'new'));
    await sleep(700); // past the grace period: the old names' removal does not forget the ids
    assert.equal(tree.dirOf(oldId), join(root, 'new'));
    assert.equal(tree.dirOf(childId), join(root, 'new/child'));
  } finally {
    tree.close();
  }
});

test('past maxDirs or maxDepth the tree is not complete; a closed tree watches nothing more', async () => {
  const root = fresh();
  for (let i = 0; i < 5; i++) mkdirSync(join(root, `d${i}`));
  const small = new CgroupTree(root, { maxDirs: 4 });
  assert.equal(small.complete, false);
  assert.equal(small.size, 4);
  small.close();
  const deep = fresh();
  mkdirSync(join(deep, 'a/b/c'), { recursive: true });
  const shallow = new CgroupTree(deep, { maxDepth: 1 });
  assert.equal(shallow.complete, false);
  assert.equal(shallow.dirOf(statSync(join(deep, 'a/b')).ino), join(deep, 'a/b'), 'the last level is known, not watched');
  assert.equal(shallow.dirOf(statSync(join(deep, 'a/b/c')).ino), undefined);
  shallow.close();
  const whole = new CgroupTree(deep);
  assert.equal(whole.complete, true);
  whole.close();
  mkdirSync(join(deep, 'later'));
  await sleep(50);
  assert.equal(whole.dirOf(statSync(join(deep, 'later')).ino), undefined);
});

test('the resolver over the tree: a cgroup made before its event resolves, also when the loop was late to poll; one the tree learns only later resolves then', async () => {
  const root = fresh();
  const resolver = new IdentityResolver({ cgroupRoot: root, maxWaitMs: 2000 });
  const id = 'a'.repeat(64);
  try {
    assert.equal(resolver.watching, true);
    const deliver = (events: TcpEvent[]): Promise<TcpEvent[]> =>
      new Promise((resolve) => {
        resolver.enrich(events, resolve);
      });
    // made, then its event before the loop read the inotify event: the lookup waits for it
    const first = join(root, `docker-${id}.scope`);
    mkdirSync(first);
    const [e1] = await deliver([tcpEvent({ cgroupId: statSync(first).ino, pid: 0x3fffff })]);
    assert.equal(e1?.containerId, id);
    // the loop blocked past the lookup's timer, from its check phase: the next phase with work is the
    // timers'; the lookup still waits for the poll phase that reads inotify (a slow machine: the VMs)
    await new Promise((r) => setImmediate(r));
    const other = 'b'.repeat(64);
    const second = join(root, `cri-containerd-${other}.scope`);
    mkdirSync(second);
    const pending = deliver([tcpEvent({ cgroupId: statSync(second).ino, pid: 0x3fffff })]);
    const until = performance.now() + 50;
    while (performance.now() < until); // block the loop
    const [e2] = await pending;
    assert.equal(e2?.containerId, other, 'the inotify event queued before the lookup was read before it answered');
    // a cgroup the tree cannot know yet (made elsewhere, moved in after its event): unknown, then known
    const outside = fresh();
    const third = 'c'.repeat(64);
    const made = join(outside, `docker-${third}.scope`);
    mkdirSync(made);
    const cgroupId = statSync(made).ino;
    const [e3] = await deliver([tcpEvent({ cgroupId, pid: 0x3fffff })]);
    assert.equal(e3?.containerId, undefined, 'unknown when its batch left');
    renameSync(made, join(root, `docker-${third}.scope`));
    await sleep(20);
    const [e4] = await deliver([tcpEvent({ cgroupId, pid: 0x3fffff })]);
    assert.equal(e4?.containerId, third, 'answered from the tree once it knows the cgroup');
  } finally {
    resolver.close();
  }
});
