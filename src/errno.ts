/**
 * errno numbers as names (`111` -> `ECONNREFUSED`), from Node's own table of
 * the platform's values (os.constants.errno), for the table, JSON and OTLP.
 */
import { constants } from 'node:os';

const NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // the first name wins where two share a number (EWOULDBLOCK is EAGAIN)
  if (!NAMES.has(value)) NAMES.set(value, name);
}

/** `ECONNREFUSED` for 111; `errno 999` for a number the platform does not name; `` for 0 (no error). */
export function errnoName(errno: number): string {
  if (errno === 0) return '';
  return NAMES.get(errno) ?? `errno ${errno}`;
}
