/**
 * Container and pod identity from a cgroup v2 path, as the container runtimes
 * and the kubelet name their cgroups. Pure functions, no I/O.
 *
 * | layout                          | container cgroup (deepest match wins)        |
 * | ------------------------------- | -------------------------------------------- |
 * | containerd, systemd driver      | `…/cri-containerd-<64 hex>.scope`             |
 * | containerd / Docker, cgroupfs   | `…/<64 hex>`, `/docker/<64 hex>`              |
 * | CRI-O                           | `…/crio-<64 hex>.scope` or `…/crio-<64 hex>` (`crio-conmon-<id>` is the monitor, not the container) |
 * | Docker, systemd driver          | `…/docker-<64 hex>.scope`                     |
 * | podman                          | `…/libpod-<64 hex>.scope` (`libpod-conmon-` skipped) |
 *
 * Pod uid: a `kubepods` path's `pod<uid>` component: the systemd driver writes
 * `kubepods-burstable-pod<uid with underscores>.slice`, cgroupfs
 * `/kubepods/burstable/pod<uid>/`; it is reported with dashes either way.
 * Host processes (`/user.slice/…`, `/system.slice/…`) get neither. The path may
 * be relative to a cgroup namespace (`/../../kubepods.slice/…`): only its
 * components matter.
 */

/** What a cgroup path says about its workload; undefined fields: not a container / not a pod. */
export interface WorkloadIdentity {
  /** The full 64-hex container id (`container.id`). */
  readonly containerId: string | undefined;
  /** The Kubernetes pod uid, with dashes (`k8s.pod.uid`). */
  readonly podUid: string | undefined;
}

export const NO_IDENTITY: WorkloadIdentity = Object.freeze({ containerId: undefined, podUid: undefined });

/** A container cgroup: an optional runtime prefix, 64 hex digits, an optional `.scope`. */
const CONTAINER = /^(?:cri-containerd-|crio-|docker-|libpod-)?([0-9a-f]{64})(?:\.scope)?$/;
const UUID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}';
/** `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice` (systemd). */
const POD = new RegExp(`^(?:kubepods(?:-[a-z]+)*-)?pod(${UUID})(?:\\.slice)?$`);

/** The container id and pod uid a cgroup v2 path names (see the module doc). */
export function identityFromCgroupPath(path: string): WorkloadIdentity {
  const parts = path.split('/');
  let containerId: string | undefined;
  for (let i = parts.length - 1; i >= 0 && containerId === undefined; i--) {
    containerId = CONTAINER.exec(parts[i] ?? '')?.[1];
  }
  let podUid: string | undefined;
  if (parts.some((p) => p.startsWith('kubepods'))) {
    for (const part of parts) {
      const uid = POD.exec(part)?.[1];
      if (uid !== undefined) podUid = uid.replaceAll('_', '-');
    }
  }
  return containerId === undefined && podUid === undefined ? NO_IDENTITY : { containerId, podUid };
}

/** The cgroup v2 path in the text of /proc/PID/cgroup (its `0::` line), or undefined. */
export function cgroupV2Path(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
  }
  return undefined;
}

/** Where the cgroup v2 hierarchy is mounted, from the text of /proc/self/mounts (first cgroup2 mount). */
export function cgroup2Mount(mounts: string): string | undefined {
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    // mount points escape blanks as \040 and so on
    if (type === 'cgroup2' && dir !== undefined) return dir.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}
