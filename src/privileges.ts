/**
 * Least privilege: the tracer needs root (CAP_BPF, CAP_PERFMON, ...) only to
 * load and attach the probe. Once the probe is attached and every map and
 * file it needs is open, a tracer started as root becomes an unprivileged user
 * (`--user`, default `nobody`): supplementary groups cleared, then gid and uid
 * changed. glibc applies each of these to every thread of the process (the
 * drain thread and libuv's pool included), and a uid change away from 0
 * clears the permitted and effective capabilities. no_new_privs is set at the
 * start (see {@link setNoNewPrivs}), so nothing can regain privileges by execve.
 *
 * What keeps working afterwards: the ring buffer (an mmap and an epoll fd
 * already open), the kernel's counters and pinned filter maps (bpf() calls on
 * fds already held need no capability), /proc/PID/cgroup and the cgroup tree
 * (world-readable), the OTLP exports (TLS files were read at start).
 */
import { readFileSync } from 'node:fs';
import { EnvironmentError, UsageError } from './errors.ts';

/** The largest uid or gid: 2^32 - 2. */
const MAX_ID = 0xfffffffe;

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** The account `user` names (a name from /etc/passwd, or a numeric uid). */
export function lookupUser(user: string, passwd: string = readPasswd()): Account {
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined) continue;
    if (name === user || uid === user) return { name, uid: Number(uid), gid: Number(gid) };
  }
  if (/^\d+$/.test(user)) {
    // (uid_t)-1 means "unchanged" to the kernel: not an account
    if (Number(user) > MAX_ID) throw new UsageError(`argument --user: invalid uid '${user}' (expected at most ${MAX_ID})`);
    return { name: user, uid: Number(user), gid: Number(user) };
  }
  throw new UsageError(`argument --user: no user '${user}' in /etc/passwd`);
}

function readPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return '';
  }
}

/** Sets no_new_privs through the loader; a failure is reported, not fatal (kernels before 3.5). */
export function setNoNewPrivs(noNewPrivs: () => number): string | undefined {
  const err = noNewPrivs();
  return err ? `cannot set no_new_privs (errno ${err})` : undefined;
}

/**
 * Becomes `account` for good when running as root: groups, gid, uid, on every
 * thread. No-op for `root` (uid 0) or when not root to begin with.
 * @returns the account now in effect.
 */
export function dropPrivileges(account: Account): Account | undefined {
  const { setgroups, setgid, setuid, getuid, geteuid } = process;
  // not a POSIX platform, root to stay, or not root to begin with
  if (!setgroups || !setgid || !setuid || !getuid || !geteuid || account.uid === 0 || geteuid() !== 0) return undefined;
  try {
    setgroups([]);
    setgid(account.gid);
    setuid(account.uid);
  } catch (e) {
    throw new EnvironmentError(`cannot drop privileges to ${account.name} (uid ${account.uid}): ${(e as Error).message}`);
  }
  if (getuid() !== account.uid || geteuid() !== account.uid) {
    throw new EnvironmentError(`cannot drop privileges to ${account.name}: still uid ${geteuid()}`);
  }
  return account;
}
