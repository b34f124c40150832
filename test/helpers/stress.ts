/**
 * The stress workload (test/fixtures/stress.c) and the invariant its events
 * must meet: for every connection, exactly one C and one client X; for every
 * connection the server accepted, exactly one A and one server X; nothing for
 * the server side of one it never accepted; the right processes and threads;
 * end reasons that fit what the workload did.
 */
import { fixtureBinary } from './kernel.ts';

export const BASE_PORT = 20000;
export const SERVER_PORT = 5000;

export type Scenario =
  | 'rst-now' | 'rst-race' | 'client-fin' | 'server-fin' | 'shutdown' | 'half-close'
  | 'other-thread' | 'server-rst' | 'killed' | 'server-thread';

export interface StressConnection {
  readonly i: number;
  readonly scenario: Scenario;
  /** The process (and thread) that closed the client side. */
  readonly client: { pid: number; tid: number };
  /** Set when the server accepted it: the process and the thread that closed it. */
  server?: { pid: number; tid: number };
}

export interface StressRun {
  readonly clientPid: number;
  readonly serverPid: number;
  readonly connections: StressConnection[];
  /** Connections whose connect() failed: errno and scenario by index. */
  readonly failed: Map<number, string>;
  readonly wallMs: number;
}

/** An event of either output, reduced to what the invariant needs. */
export interface SeenEvent {
  readonly type: 'connect' | 'accept' | 'close' | 'failed';
  readonly localPort: number;
  readonly peerPort: number;
  readonly pid: number;
  readonly tid: number;
  /** close: fin | reset | destroyed */
  readonly end?: string;
  /** close: the errno's name, when there was one */
  readonly error?: string;
}

/** The workload, compiled when its source is newer than the binary; returns its path. */
export function stressBinary(): string {
  return fixtureBinary('stress', ['-pthread']);
}

export function parseStressOutput(text: string): StressRun {
  let clientPid = 0;
  let serverPid = 0;
  let wallMs = NaN;
  const connections = new Map<number, StressConnection>();
  const failed = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    switch (f[0]) {
      case 'client': clientPid = Number(f[1]); break;
      case 'server': serverPid = Number(f[1]); break;
      case 'done': wallMs = Number(f[1]); break;
      case 'e': failed.set(Number(f[1]), `errno ${f[2]} (${f[3]})`); break;
      case 'c':
        connections.set(Number(f[1]), { i: Number(f[1]), scenario: f[2] as Scenario, client: { pid: Number(f[3]), tid: Number(f[4]) } });
        break;
      case 'a': {
        // the server may accept one whose connect() the client saw fail: that is in `failed`
        const c = connections.get(Number(f[1]));
        if (c) c.server = { pid: Number(f[2]), tid: Number(f[3]) };
        break;
      }
    }
  }
  if (!clientPid || !serverPid || Number.isNaN(wallMs)) throw new Error(`stress: incomplete output:\n${text.slice(-500)}`);
  return { clientPid, serverPid, connections: [...connections.values()], failed, wallMs };
}

/** How each side's X may end, by what the workload did (see stress.c). */
function allowedEnds(s: Scenario, role: 'client' | 'server'): string[] {
  switch (s) {
    case 'rst-now':
    case 'rst-race':
      // the client sends the RST; the server may have closed (FIN) before it arrived
      return role === 'client' ? ['reset'] : ['reset ECONNRESET', 'fin'];
    case 'server-rst':
      return role === 'client' ? ['reset ECONNRESET'] : ['reset'];
    default:
      return ['fin'];
  }
}

/**
 * Every way the events break the invariant, as lines (empty: exact). What the
 * tracer reported may excuse gaps, never a doubled or misattributed event:
 * `lost` events the ring buffer had no room for may be missing; each of the
 * `skipped` probe runs the kernel reported skipping may have cost one
 * transition of one socket, so up to two of its events (an open and its
 * close) or the reason its close gives (a close seen only at destruction).
 */
export function checkStress(run: StressRun, events: readonly SeenEvent[], lost = 0, skipped = 0): string[] {
  const problems: string[] = [];
  const sides = new Map<string, SeenEvent[]>();
  for (const e of events) {
    const client = e.localPort !== SERVER_PORT;
    const i = (client ? e.localPort : e.peerPort) - BASE_PORT;
    const key = `${i} ${client ? 'client' : 'server'}`;
    let list = sides.get(key);
    if (!list) sides.set(key, (list = []));
    list.push(e);
  }
  let missing = 0;
  const gaps: string[] = [];
  /** closes seen only at destruction: what a skipped transition leaves */
  const ends: string[] = [];
  const describe = (list: readonly SeenEvent[]): string =>
    list.map((e) => `${e.type}[pid ${e.pid} tid ${e.tid}${e.end ? ` ${e.end}${e.error ? ` ${e.error}` : ''}` : ''}]`).join(' ') || 'nothing';
  const expect = (c: StressConnection, role: 'client' | 'server', open: 'connect' | 'accept', who: { pid: number; tid: number }, opener: number): void => {
    const key = `${c.i} ${role}`;
    const list = sides.get(key) ?? [];
    sides.delete(key);
    const types = list.map((e) => e.type).join(' ');
    const what = `connection ${c.i} (${c.scenario}), ${role}: ${describe(list)}`;
    if (types !== `${open} close`) {
      if (types === '' || types === open || types === 'close') {
        missing += 2 - list.length;
        gaps.push(`${what}: expected ${open} then close`);
      } else {
        problems.push(`${what}: expected ${open} then close`);
      }
      return;
    }
    const [o, x] = list as [SeenEvent, SeenEvent];
    if (o.pid !== opener) problems.push(`${what}: ${open} names pid ${o.pid}, not ${opener}`);
    if (x.pid !== who.pid) problems.push(`${what}: close names pid ${x.pid}, not ${who.pid}`);
    const threadMatters = (role === 'client' && c.scenario === 'other-thread') || (role === 'server' && c.scenario === 'server-thread');
    if (threadMatters && x.tid !== who.tid) problems.push(`${what}: close names thread ${x.tid}, not the closing thread ${who.tid}`);
    const end = `${x.end}${x.error ? ` ${x.error}` : ''}`;
    const allowed = allowedEnds(c.scenario, role);
    if (!allowed.includes(end)) (x.end === 'destroyed' ? ends : problems).push(`${what}: close ended "${end}", expected ${allowed.join(' or ')}`);
  };
  for (const c of run.connections) {
    // the killed child connected and was closed by the kernel as it died
    expect(c, 'client', 'connect', c.client, c.scenario === 'killed' ? c.client.pid : run.clientPid);
    if (c.server) expect(c, 'server', 'accept', c.server, run.serverPid);
  }
  for (const [key, list] of sides) problems.push(`connection ${key}: ${describe(list)}, for a side that ${key.endsWith('server') ? 'was never accepted' : 'never connected'}`);
  // what was reported lost or skipped may excuse gaps, nothing else
  const gapsExcused = missing === lost || missing <= lost + 2 * skipped;
  if (gapsExcused && ends.length <= skipped) return problems;
  return [...problems, ...gaps, ...ends, `${missing} events missing, ${lost} reported lost, ${skipped} probe runs reported skipped`];
}
