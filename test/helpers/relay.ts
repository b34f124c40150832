/**
 * A link between two network namespaces made by test/fixtures/relay.c: a TUN
 * device in each and a process that carries the packets across with a delay
 * and a loss of its own, for kernels built without netem.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { addressUp, fixtureBinary, NetNs, track, within } from './kernel.ts';

/** A hang detector for the relay's answers: it answers at once. */
const ANSWER_MS = 10_000;

/** The relay, compiled when its source is newer than the binary; returns its path. */
export function relayBinary(): string {
  return fixtureBinary('relay');
}

/** Why the relay cannot be used here (tried: two devices in a namespace of its own), or undefined. */
export function relaySkipReason(): string | undefined {
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (CONFIG_TUN)';
  let binary: string;
  try {
    binary = relayBinary();
  } catch (e) {
    return `the relay does not build: ${(e as Error).message}`;
  }
  const ns = new NetNs();
  try {
    // stdin empty: it makes both devices, says ready, and ends at the EOF
    const r = spawnSync(binary, [ns.name, 'tt-probe-a', ns.name, 'tt-probe-b'], { input: '', encoding: 'utf8', timeout: ANSWER_MS, killSignal: 'SIGKILL' });
    if (r.status === 0 && r.stdout.startsWith('ready\n')) return undefined;
    return `the relay cannot run: ${r.stderr.trim() || r.error?.message || `exit ${String(r.status)}`}`;
  } finally {
    ns.delete();
  }
}

export interface RelayLink {
  /** The devices: the first namespace's end, then the second's. */
  readonly devs: [string, string];
  /** Sends a command line (see relay.c) and resolves with its answer; an "error: ..." answer throws. */
  command(line: string): Promise<string>;
  /** Ends the relay (stdin's EOF); resolves with its counters. */
  stop(): Promise<string>;
}

/**
 * A relayed link from `a` to `b`, both ends up with these addresses (CIDR, IPv4
 * or IPv6), no delay and no loss yet: like NetNs.link, with a relay between.
 */
export async function relayLink(a: NetNs, b: NetNs, here: string, there: string): Promise<RelayLink> {
  const devs: [string, string] = [`tt-${randomBytes(3).toString('hex')}`, `tt-${randomBytes(3).toString('hex')}`];
  const child = spawn(relayBinary(), [a.name, devs[0], b.name, devs[1]], { stdio: ['pipe', 'pipe', 'pipe'] });
  track(child);
  child.stdin.on('error', () => {}); // a relay that died: its answer says so (the lines end)
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); }));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const answer = async (what: string): Promise<string> => {
    const r = await within(lines.next(), ANSWER_MS, `the relay's ${what}`);
    if (r.done) throw new Error(`the relay ended before its ${what}: ${stderr}`);
    return r.value;
  };
  try {
    const ready = await answer('ready');
    if (ready !== 'ready') throw new Error(`the relay said ${ready}`);
    addressUp(a, devs[0], here);
    addressUp(b, devs[1], there);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    devs,
    async command(line) {
      child.stdin.write(`${line}\n`);
      const said = await answer(`answer to ${line}`);
      if (said.startsWith('error')) throw new Error(`relay: ${line}: ${said}`);
      return said;
    },
    async stop() {
      child.stdin.end();
      try {
        const counters = await answer('counters');
        const code = await within(exited, ANSWER_MS, "the relay's exit");
        if (code !== 0) throw new Error(`the relay exited ${String(code)}: ${stderr}`);
        return counters;
      } catch (e) {
        child.kill('SIGKILL');
        throw e;
      }
    },
  };
}
