/**
 * Names of Linux errno values, for the errors the kernel records on a socket
 * (TcpEvent.errno, sk_err): `errnoName(111)` is `'ECONNREFUSED'`.
 *
 * The table is node:os `constants.errno` (the platform's own numbers), turned
 * around. Where two names share a number (EAGAIN/EWOULDBLOCK,
 * EDEADLK/EDEADLOCK, ENOTSUP/EOPNOTSUPP) the first one Node lists wins.
 */
import { constants } from 'node:os';

const NAMES: ReadonlyMap<number, string> = (() => {
  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(constants.errno)) {
    if (!names.has(value)) names.set(value, name);
  }
  return names;
})();

/**
 * The errno's symbolic name, e.g. `'ECONNREFUSED'`; `''` for 0 (no error: a
 * connect the application gave up on, an orderly close); `'errno N'` for a
 * number this platform has no name for.
 */
export function errnoName(errno: number): string {
  if (errno === 0) return '';
  return NAMES.get(errno) ?? `errno ${errno}`;
}
