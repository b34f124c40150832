/**
 * Connection health end to end: two "hosts" (network namespaces joined by a
 * veth pair per IP version), a real tracer on each (-N), and netem on the links
 * for a known delay and a known loss. The client's C carries the handshake, each
 * X the smoothed RTT and the retransmitted segments (--json); host A's tracer
 * also exports OTLP, and its records and CLIENT span carry the same values.
 *
 * netem (sch_netem: Debian's kernels have it as a module) is what gives a known
 * RTT and forces retransmits. Where the kernel has none, the tests that need it
 * skip with the reason; under CI=true that is a failure, unless the kernel's own
 * config says it was built without it (then nothing here can use it, and the
 * VM matrix, test/vm/, runs them on kernels that have it). The unimpaired case
 * runs everywhere.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { SPAN_KIND, TestCollector, type ReceivedLogRecord } from './fixtures/otlp-collector.ts';
import { kernelSkipReason, kernelSuite, NetNs, run, sh, startPeer, startTracer, within, type JsonEvent, type TracerRun } from './helpers/kernel.ts';

const suite = kernelSuite();

/** One-way delay netem adds on each host's end of the link: a round trip takes at least twice this. */
const DELAY_MS = 20;
/** Loss on the client's end while it sends (its data), and what it sends through it: ~180 segments. */
const LOSS = '20%';
const TRANSFER_BYTES = 256 * 1024;
/** Generous tops: under emulation (test/vm) everything is 10 to 50 times slower. */
const SLACK_NS = 5_000_000_000;

const ADDR = { 4: ['198.18.91.1/24', '198.18.91.2'], 6: ['fd00:91::1/64', 'fd00:91::2'] } as const;
const PEER_CIDR = { 4: '198.18.91.2/24', 6: 'fd00:91::2/64' } as const;

/** The kernel's own build config, when it can be read. */
function kernelConfig(): string | undefined {
  try {
    return gunzipSync(readFileSync('/proc/config.gz')).toString();
  } catch {
    try {
      return readFileSync(`/boot/config-${release()}`, 'utf8');
    } catch {
      return undefined;
    }
  }
}

/** Why netem cannot be used here (tried in a namespace of its own), or undefined. */
function netemSkipReason(): string | undefined {
  if (kernelSkipReason() !== undefined) return undefined; // the suite is skipped (or fails) anyway
  const ns = new NetNs();
  try {
    const r = run('tc', ['-n', ns.name, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    if (r.code === 0) return undefined;
    return `netem unavailable (CONFIG_NET_SCH_NETEM): tc: ${r.stderr.trim() || `exit ${String(r.code)}, is iproute2's tc installed?`}`;
  } finally {
    ns.delete();
  }
}

const netemSkip = netemSkipReason();
if (netemSkip !== undefined && process.env.CI === 'true' && !/^# CONFIG_NET_SCH_NETEM is not set$/m.test(kernelConfig() ?? '')) {
  test('netem must be available under CI', () => {
    throw new Error(`${netemSkip} (CI=true, and this kernel's config does not say it was built without it)`);
  });
}
const netem = { skip: netemSkip ?? false };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The complete JSON lines a tracer printed so far. */
function printed(t: TracerRun): JsonEvent[] {
  const out = t.stdout();
  return out
    .slice(0, out.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as JsonEvent);
}

/** The events of process `pid`, once there are `count` of them (bounded wait). */
async function eventsOf(t: TracerRun, pid: number, count: number): Promise<JsonEvent[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const mine = printed(t).filter((e) => e.pid === pid);
    if (mine.length >= count) {
      assert.equal(mine.length, count, JSON.stringify(mine));
      return mine;
    }
    assert.ok(Date.now() < deadline, `${mine.length}/${count} events of pid ${pid} after 60 s: ${t.stderr()}`);
    await sleep(20);
  }
}

/** What was measured, for the test's log. */
function measured(s: Seen): string {
  return `handshake_ns ${s.c.handshake_ns}; client rtt_us ${s.xc.rtt_us} retransmits ${s.xc.retransmits}; server rtt_us ${s.xs.rtt_us} retransmits ${s.xs.retransmits}`;
}

/** Waits (bounded) until `done()`. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, `${what}: not within 60 s`);
    await sleep(20);
  }
}

const one = <T>(items: T[], what: string): T => {
  assert.equal(items.length, 1, `${what}: ${items.length}`);
  return items[0]!;
};

interface Seen {
  /** the client's (host A) connect and close; the server's (host B) accept and close */
  c: JsonEvent;
  xc: JsonEvent;
  a: JsonEvent;
  xs: JsonEvent;
  client: number;
  server: number;
}

describe('kernel: connection health (handshake, RTT, retransmits)', suite, () => {
  let hostA: NetNs;
  let hostB: NetNs;
  /** each IP version's link: host A's device, host B's */
  const devs = new Map<4 | 6, [string, string]>();
  let collector: TestCollector;
  let tracerA: TracerRun | undefined;
  let tracerB: TracerRun | undefined;

  before(async () => {
    hostA = new NetNs();
    hostB = new NetNs();
    for (const ip of [4, 6] as const) devs.set(ip, hostA.link(hostB, ADDR[ip][0], PEER_CIDR[ip]));
    collector = new TestCollector();
    await collector.start();
    [tracerA, tracerB] = await Promise.all([
      startTracer(['-N', String(hostA.inode), '--otlp', '--otlp-endpoint', collector.endpoint]),
      startTracer(['-N', String(hostB.inode)]),
    ]);
  });

  after(async () => {
    try {
      for (const t of [tracerA, tracerB]) {
        if (t === undefined) continue;
        const { code, stderr } = await t.stop('SIGTERM');
        assert.equal(code, 0, stderr);
        assert.doesNotMatch(stderr, /lost|untracked|malformed|dropped/);
      }
    } finally {
      collector.stop();
      hostA.delete();
      hostB.delete();
    }
  });

  /** netem on both ends of `ip`'s link (`args` after `netem`), or none. */
  function impair(ip: 4 | 6, a: string[] | undefined, b: string[] | undefined): void {
    const [devA, devB] = devs.get(ip)!;
    for (const [ns, dev, args] of [[hostA, devA, a], [hostB, devB, b]] as const) {
      spawnQuiet(['tc', '-n', ns.name, 'qdisc', 'del', 'dev', dev, 'root']);
      if (args !== undefined) sh('tc', ['-n', ns.name, 'qdisc', 'add', 'dev', dev, 'root', 'netem', ...args]);
    }
  }

  /**
   * One connection from A's client to B's echo server; `send`: bytes the client
   * sends (and gets back) between `around[0]()` and `around[1]()`, before it closes.
   */
  async function connection(ip: 4 | 6, port: number, names: [string, string], send = 1, around?: [() => void, () => void]): Promise<Seen> {
    assert.ok(tracerA && tracerB);
    const addr = ADDR[ip][1];
    const server = await startPeer(hostB, ['server', addr, String(port), '1', names[0], 'echo']);
    const client = await startPeer(hostA, ['client', addr, String(port), '1', names[1], '1', `send=${send}`]);
    assert.match(await within(client.line(), 120_000, 'the connect'), /^connected \d+$/);
    around?.[0]();
    client.child.stdin?.write('send\n');
    assert.equal(await within(client.line(), 120_000, 'the echo'), 'echoed');
    around?.[1]();
    client.child.stdin?.end('close\n');
    assert.equal(await within(client.exited, 120_000, "the client's exit"), 0);
    assert.equal(await within(server.exited, 120_000, "the server's exit"), 0);
    const [c, xc] = await eventsOf(tracerA, client.pid, 2);
    const [a, xs] = await eventsOf(tracerB, server.pid, 2);
    assert.deepEqual([c?.type, xc?.type, a?.type, xs?.type], ['connect', 'close', 'accept', 'close']);
    return { c: c!, xc: xc!, a: a!, xs: xs!, client: client.pid, server: server.pid };
  }

  /** What only C and X carry: nothing of it on the A, nothing of the X's on the C. */
  function assertPlacement(s: Seen): void {
    assert.deepEqual([s.c.rtt_us, s.c.retransmits], [undefined, undefined], 'C: no RTT or retransmits');
    assert.deepEqual([s.a.handshake_ns, s.a.rtt_us, s.a.retransmits], [undefined, undefined, undefined], 'A: no health fields');
    assert.deepEqual([s.xc.handshake_ns, s.xs.handshake_ns], [undefined, undefined], 'X: no handshake');
  }

  for (const ip of [4, 6] as const) {
    test(`IPv${ip}: unimpaired: a handshake on the C, an RTT and no retransmits on each X; the same through OTLP`, async (t) => {
      impair(ip, undefined, undefined);
      const s = await connection(ip, 7600 + ip, [`tt-hs-srv${ip}`, `tt-hs-cli${ip}`]);
      t.diagnostic(measured(s));
      assertPlacement(s);
      assert.ok(s.c.handshake_ns! > 0 && s.c.handshake_ns! < SLACK_NS, `handshake_ns ${s.c.handshake_ns}`);
      for (const x of [s.xc, s.xs]) {
        assert.ok(x.rtt_us! >= 1 && x.rtt_us! < SLACK_NS / 1000, `rtt_us ${x.rtt_us} (${x.role})`);
        assert.equal(x.retransmits, 0, `retransmits (${x.role})`);
      }

      // host A's tracer exported the same events: records and the CLIENT span carry the same values
      await until(() => collector.records.filter((r) => r.attributes['process.pid'] === s.client).length >= 2, "the client's two records");
      const records = collector.records.filter((r) => r.attributes['process.pid'] === s.client);
      const record = (name: string): ReceivedLogRecord => one(records.filter((r) => r.eventName === name), name);
      const connect = record('tcp.connect').attributes;
      const close = record('tcp.close').attributes;
      assert.deepEqual([connect['tcptracer.connection.role'], connect['tcptracer.connection.handshake_ns'], connect['tcptracer.connection.rtt_us'], connect['tcptracer.connection.retransmits']], ['client', s.c.handshake_ns, undefined, undefined]);
      assert.deepEqual([close['tcptracer.connection.role'], close['tcptracer.connection.handshake_ns'], close['tcptracer.connection.rtt_us'], close['tcptracer.connection.retransmits']], ['client', undefined, s.xc.rtt_us, 0]);
      await until(() => collector.spans.some((sp) => sp.attributes['process.pid'] === s.client), "the client's span");
      const span = one(collector.spans.filter((sp) => sp.attributes['process.pid'] === s.client), 'spans of the client');
      assert.equal(span.kind, SPAN_KIND.CLIENT);
      assert.deepEqual(
        [span.attributes['tcptracer.connection.role'], span.attributes['tcptracer.connection.handshake_ns'], span.attributes['tcptracer.connection.rtt_us'], span.attributes['tcptracer.connection.retransmits']],
        ['client', s.c.handshake_ns, s.xc.rtt_us, 0],
      );
    });

    test(`IPv${ip}: netem delay ${DELAY_MS} ms each way: handshake and RTT of at least ${2 * DELAY_MS} ms`, netem, async (t) => {
      impair(ip, ['delay', `${DELAY_MS}ms`], ['delay', `${DELAY_MS}ms`]);
      try {
        const s = await connection(ip, 7610 + ip, [`tt-dl-srv${ip}`, `tt-dl-cli${ip}`]);
        t.diagnostic(measured(s));
        assertPlacement(s);
        const rtt = 2 * DELAY_MS;
        // SYN out through A's netem, SYN-ACK back through B's
        assert.ok(s.c.handshake_ns! >= rtt * 1e6 && s.c.handshake_ns! < rtt * 1e6 + SLACK_NS, `handshake_ns ${s.c.handshake_ns}`);
        // every RTT sample crossed both: the smoothed one too
        for (const x of [s.xc, s.xs]) {
          assert.ok(x.rtt_us! >= rtt * 1000 && x.rtt_us! < rtt * 1000 + SLACK_NS / 1000, `rtt_us ${x.rtt_us} (${x.role})`);
        }
        assert.equal(s.xc.retransmits, 0, 'a delay alone retransmits nothing');
      } finally {
        impair(ip, undefined, undefined);
      }
    });

    test(`IPv${ip}: netem loss ${LOSS} of the client's segments: retransmits on its X`, netem, async (t) => {
      // one segment per packet, so that netem drops segments, not whole GSO trains
      const [devA] = devs.get(ip)!;
      sh('ip', ['-n', hostA.name, 'link', 'set', 'dev', devA, 'gso_max_segs', '1']);
      try {
        // the loss is on while the data flows, not for the handshake and the FINs: a lost SYN or
        // FIN only costs seconds (retried after 1 s, then 2, 4...; seen: 7 s for three SYNs)
        const s = await connection(ip, 7620 + ip, [`tt-ls-srv${ip}`, `tt-ls-cli${ip}`], TRANSFER_BYTES, [
          () => { impair(ip, ['loss', LOSS], undefined); },
          () => { impair(ip, undefined, undefined); },
        ]);
        t.diagnostic(measured(s));
        assertPlacement(s);
        // all of it came back before the client closed: every retransmission was before its X
        assert.ok(s.xc.retransmits! > 0, `client retransmits ${s.xc.retransmits} of ${TRANSFER_BYTES} bytes at ${LOSS} loss`);
        assert.ok(s.xc.retransmits! < TRANSFER_BYTES, `client retransmits ${s.xc.retransmits}: segments, not bytes`);
        assert.ok(Number.isInteger(s.xs.retransmits) && s.xs.retransmits! >= 0, `server retransmits ${s.xs.retransmits}`);
        assert.ok(s.xc.rtt_us! >= 1);
      } finally {
        impair(ip, undefined, undefined);
      }
    });
  }
});

/** A command whose failure does not matter (removing a qdisc that may not be there). */
function spawnQuiet(argv: string[]): void {
  const [cmd = '', ...args] = argv;
  run(cmd, args);
}
