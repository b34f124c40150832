/** Container ids and pod uids from cgroup v2 paths, for each runtime's layout, and paths that must yield nothing. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cgroup2Mount, cgroupV2Path, identityFromCgroupPath } from '../src/identity/runtime.ts';

const ID = '3f2a9c1e5b7d4a6c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f';
const UID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
const UID_ = UID.replaceAll('-', '_');

test('containerd, CRI-O, Docker and podman layouts give the 64-hex container id; kubepods paths the pod uid', () => {
  const cases: [string, string | undefined, string | undefined][] = [
    // containerd, systemd cgroup driver (kubelet)
    [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
    [`/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID], // Guaranteed QoS
    // containerd, cgroupfs driver
    [`/kubepods/besteffort/pod${UID}/${ID}`, ID, UID],
    [`/kubepods/pod${UID}/${ID}`, ID, UID],
    // CRI-O, systemd and cgroupfs
    [`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`, ID, UID],
    [`/kubepods/burstable/pod${UID}/crio-${ID}`, ID, UID],
    // Docker
    [`/system.slice/docker-${ID}.scope`, ID, undefined],
    [`/docker/${ID}`, ID, undefined],
    // podman (rootful and rootless)
    [`/machine.slice/libpod-${ID}.scope`, ID, undefined],
    [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope/container`, ID, undefined],
    // a systemd inside the container, and a cgroup-namespace-relative path
    [`/system.slice/docker-${ID}.scope/init.scope`, ID, undefined],
    [`/../../kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
  ];
  for (const [path, containerId, podUid] of cases) {
    assert.deepEqual(identityFromCgroupPath(path), { containerId, podUid }, path);
  }
});

test('host processes and runtime monitors get no identity', () => {
  for (const path of [
    '/',
    '/init.scope',
    '/user.slice/user-1000.slice/session-3.scope',
    '/system.slice/sshd.service',
    '/system.slice/containerd.service',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`.replace(/\/kubepods-burstable-pod[^/]+/, ''),
    `/machine.slice/libpod-conmon-${ID}.scope`,
    `/system.slice/docker-${ID.slice(1)}.scope`, // 63 hex digits
    `/system.slice/docker-${ID.toUpperCase()}.scope`,
    `/system.slice/pod${UID}.slice`, // not under kubepods
    '/system.slice/cri-containerd-notanid.scope',
  ]) {
    assert.deepEqual(identityFromCgroupPath(path), { containerId: undefined, podUid: undefined }, path);
  }
  // CRI-O's monitor runs in the pod's cgroup: the pod, not a container
  assert.deepEqual(
    identityFromCgroupPath(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-conmon-${ID}.scope`),
    { containerId: undefined, podUid: UID },
  );
});

test('/proc/PID/cgroup and /proc/self/mounts are read as the kernel writes them', () => {
  assert.equal(cgroupV2Path(`12:cpu,cpuacct:/legacy\n0::/system.slice/docker-${ID}.scope\n`), `/system.slice/docker-${ID}.scope`);
  assert.equal(cgroupV2Path('1:name=systemd:/x\n'), undefined);
  const mounts = 'tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /host\\040cgroup cgroup2 rw 0 0\n';
  assert.equal(cgroup2Mount(mounts), '/host cgroup');
  assert.equal(cgroup2Mount('proc /proc proc rw 0 0\n'), undefined);
});
