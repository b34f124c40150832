/**
 * Connection health end to end: two "hosts" (network namespaces joined by a
 * link per IP version), a real tracer on each (-N), and a known delay and a
 * known loss on the links. The client's C carries the handshake, each X the
 * smoothed RTT and the retransmitted segments (--json); host A's tracer also
 * exports OTLP, and its records and CLIENT span carry the same values. Both
 * export metrics: each role's RTT histogram, the client's handshake histogram
 * and each role's retransmits counter hold exactly that connection's values
 * (the delay and the loss included).
 *
 * The links: where the kernel has netem (sch_netem: Debian's kernels have it as
 * a module, so the VM matrix, test/vm/), a veth pair with netem on each end.
 * Where it has none (this machine's 6.18 is built without), two TUN devices and
 * test/fixtures/relay.c between them (test/helpers/relay.ts), which gives the
 * same delay on each way and the same share of the client's data segments lost
 * (every 5th, where netem's 20% is random); each test's name says which one ran.
 * All tests use that one link, the unimpaired ones too. Where neither can be
 * used (no netem, and no /dev/net/tun or no cc), the impaired tests skip with
 * the reasons; under CI=true that is a failure. The unimpaired case runs everywhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SPAN_KIND, TestCollector, type ReceivedLogRecord, type ReceivedMetricPoint } from './fixtures/otlp-collector.ts';
import { kernelSkipReason, kernelSuite, NetNs, run, sh, startPeer, startTracer, within, type JsonEvent, type TracerRun } from './helpers/kernel.ts';
import { relayLink, relaySkipReason, type RelayLink } from './helpers/relay.ts';

const suite = kernelSuite();

/** One-way delay on each host's end of the link: a round trip takes at least twice this. */
const DELAY_MS = 20;
/** Loss (%) on the client's end while it sends (its data), and what it sends through it: ~180 segments. */
const LOSS_PERCENT = 20;
const TRANSFER_BYTES = 256 * 1024;
/** Generous tops: under emulation (test/vm) everything is 10 to 50 times slower. */
const SLACK_NS = 5_000_000_000;
/** Both tracers collect metrics this often: a closed connection's show within one interval. */
const METRIC_INTERVAL_MS = 500;

const ADDR = { 4: ['198.18.91.1/24', '198.18.91.2'], 6: ['fd00:91::1/64', 'fd00:91::2'] } as const;
const PEER_CIDR = { 4: '198.18.91.2/24', 6: 'fd00:91::2/64' } as const;

/** Why netem cannot be used here (tried in a namespace of its own), or undefined. */
function netemSkipReason(): string | undefined {
  const ns = new NetNs();
  try {
    const r = run('tc', ['-n', ns.name, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    if (r.code === 0) return undefined;
    return `netem unavailable (CONFIG_NET_SCH_NETEM): tc: ${r.stderr.trim() || `exit ${String(r.code)}, is iproute2's tc installed?`}`;
  } finally {
    ns.delete();
  }
}

/** What gives the links their delay and loss: netem where the kernel has it, else the relay; neither: why. */
function impairer(): 'netem' | 'relay' | { skip: string } {
  if (kernelSkipReason() !== undefined) return 'netem'; // the suite is skipped (or fails) anyway
  const netem = netemSkipReason();
  if (netem === undefined) return 'netem';
  const relay = relaySkipReason();
  return relay === undefined ? 'relay' : { skip: `${netem}; no relay either: ${relay}` };
}

const chosen = impairer();
if (typeof chosen === 'object' && process.env.CI === 'true') {
  test('netem or the relay must be available under CI', () => {
    throw new Error(`${chosen.skip} (CI=true)`);
  });
}
const VIA = typeof chosen === 'object' ? 'netem or relay' : chosen;
const impaired = { skip: typeof chosen === 'object' ? chosen.skip : false };
/** The relay's loss: every Nth data segment, netem's percentage made deterministic. */
const dropEvery = (percent: number): number => Math.round(100 / percent);
const LOSS_VIA = VIA === 'relay' ? `relay, every ${dropEvery(LOSS_PERCENT)}th data segment` : VIA;

/** What one end of a link does to what it sends: delay it, or lose a share of its data segments. */
type Impairment = { delayMs: number } | { lossPercent: number };

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

/** The bucket of `bounds` (explicit, upper-inclusive) that holds `v`. */
const bucketOf = (bounds: readonly number[], v: number): number => {
  const i = bounds.findIndex((b) => v <= b);
  return i === -1 ? bounds.length : i;
};

/** A one-connection histogram point: count 1, its sum that one value, in that value's bucket. */
function assertOneValue(p: ReceivedMetricPoint | undefined, value: number, what: string): void {
  assert.ok(p !== undefined, `${what}: no point`);
  assert.equal(p.value, 1, `${what}: count`);
  assert.equal(p.sum, value, `${what}: sum`);
  assert.equal(p.bucketCounts.reduce((a, b) => a + b, 0), 1, `${what}: bucket counts ${JSON.stringify(p.bucketCounts)}`);
  assert.equal(p.bucketCounts[bucketOf(p.bounds, value)], 1, `${what}: ${value} s not in its bucket ${JSON.stringify(p.bucketCounts)}`);
}

/** Each role's metrics, the latest cumulative point of each (one connection per role, so one series each). */
interface RoleMetrics {
  handshake: ReceivedMetricPoint | undefined;
  rtt: ReceivedMetricPoint | undefined;
  retransmits: ReceivedMetricPoint | undefined;
}

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
  /** each IP version's relay, where the relay makes the links */
  const relays = new Map<4 | 6, RelayLink>();
  let collector: TestCollector;
  let tracerA: TracerRun | undefined;
  let tracerB: TracerRun | undefined;

  before(async () => {
    hostA = new NetNs();
    hostB = new NetNs();
    for (const ip of [4, 6] as const) {
      if (VIA === 'relay') relays.set(ip, await relayLink(hostA, hostB, ADDR[ip][0], PEER_CIDR[ip]));
      devs.set(ip, relays.get(ip)?.devs ?? hostA.link(hostB, ADDR[ip][0], PEER_CIDR[ip]));
    }
    collector = new TestCollector();
    await collector.start();
    const env = { ...process.env, OTEL_METRIC_EXPORT_INTERVAL: String(METRIC_INTERVAL_MS) };
    [tracerA, tracerB] = await Promise.all([
      startTracer(['-N', String(hostA.inode), '--otlp', '--otlp-signals', 'logs,traces,metrics', '--otlp-endpoint', collector.endpoint], { env }),
      startTracer(['-N', String(hostB.inode), '--otlp', '--otlp-signals', 'metrics', '--otlp-endpoint', collector.endpoint], { env }),
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
      for (const r of relays.values()) await r.stop(); // (a relay left running is killed at the file's end)
    } finally {
      collector.stop();
      hostA.delete();
      hostB.delete();
    }
  });

  /** `a` on host A's end of `ip`'s link (what A sends), `b` on B's; undefined: nothing. */
  async function impair(ip: 4 | 6, a: Impairment | undefined, b: Impairment | undefined): Promise<void> {
    const relay = relays.get(ip);
    if (relay !== undefined) {
      const setting = (i: Impairment | undefined): string =>
        `delay_ms=${i !== undefined && 'delayMs' in i ? i.delayMs : 0} drop_every=${i !== undefined && 'lossPercent' in i ? dropEvery(i.lossPercent) : 0}`;
      await relay.command(`a2b ${setting(a)}`);
      await relay.command(`b2a ${setting(b)}`);
      return;
    }
    const [devA, devB] = devs.get(ip)!;
    for (const [ns, dev, i] of [[hostA, devA, a], [hostB, devB, b]] as const) {
      spawnQuiet(['tc', '-n', ns.name, 'qdisc', 'del', 'dev', dev, 'root']);
      if (i !== undefined) sh('tc', ['-n', ns.name, 'qdisc', 'add', 'dev', dev, 'root', 'netem', ...('delayMs' in i ? ['delay', `${i.delayMs}ms`] : ['loss', `${i.lossPercent}%`])]);
    }
  }

  /**
   * One connection from A's client to B's echo server; `send`: bytes the client
   * sends (and gets back) between `around[0]()` and `around[1]()`, before it closes.
   */
  async function connection(ip: 4 | 6, port: number, names: [string, string], send = 1, around?: [() => Promise<void>, () => Promise<void>]): Promise<Seen> {
    assert.ok(tracerA && tracerB);
    const addr = ADDR[ip][1];
    const server = await startPeer(hostB, ['server', addr, String(port), '1', names[0], 'echo']);
    const client = await startPeer(hostA, ['client', addr, String(port), '1', names[1], '1', `send=${send}`]);
    assert.match(await within(client.line(), 120_000, 'the connect'), /^connected \d+$/);
    await around?.[0]();
    client.child.stdin?.write('send\n');
    assert.equal(await within(client.line(), 120_000, 'the echo'), 'echoed');
    await around?.[1]();
    client.child.stdin?.end('close\n');
    assert.equal(await within(client.exited, 120_000, "the client's exit"), 0);
    assert.equal(await within(server.exited, 120_000, "the server's exit"), 0);
    const [c, xc] = await eventsOf(tracerA, client.pid, 2);
    const [a, xs] = await eventsOf(tracerB, server.pid, 2);
    assert.deepEqual([c?.type, xc?.type, a?.type, xs?.type], ['connect', 'close', 'accept', 'close']);
    return { c: c!, xc: xc!, a: a!, xs: xs!, client: client.pid, server: server.pid };
  }

  /**
   * `service`'s metrics once its connection closed (its RTT and retransmits are there), from a
   * later collection than the first that had them: a value recorded twice would show there.
   */
  async function roleMetrics(service: string, role: 'client' | 'server'): Promise<RoleMetrics> {
    const mine = (): ReceivedMetricPoint[] => collector.metricPoints.filter((p) => p.resource['service.name'] === service);
    const closed = (): boolean => ['tcptracer.connection.rtt', 'tcptracer.connection.retransmits'].every((n) => mine().some((p) => p.name === n));
    await until(closed, `${service}'s RTT and retransmits metrics`);
    const first = Math.max(...mine().map((p) => p.call));
    await until(() => mine().some((p) => p.call > first), `a later collection of ${service}'s metrics`);
    const latest = new Map<string, ReceivedMetricPoint>();
    for (const p of mine()) {
      assert.equal(p.attributes['tcptracer.connection.role'], role, `${p.name}: role`);
      assert.equal(p.temporality, 2, `${p.name}: cumulative`);
      latest.set(p.name, p); // one series per metric: one connection, one role
    }
    return { handshake: latest.get('tcptracer.connection.handshake.duration'), rtt: latest.get('tcptracer.connection.rtt'), retransmits: latest.get('tcptracer.connection.retransmits') };
  }

  /**
   * Both roles' metrics carry exactly the connection's C and X values: one handshake (client
   * side only), one RTT per role, the X's retransmits. Returned for each test's bands.
   */
  async function assertMetrics(s: Seen, names: [string, string]): Promise<{ client: RoleMetrics; server: RoleMetrics }> {
    const [server, client] = await Promise.all([roleMetrics(names[0], 'server'), roleMetrics(names[1], 'client')]);
    assertOneValue(client.handshake, s.c.handshake_ns! / 1e9, 'client handshake.duration');
    assert.equal(server.handshake, undefined, 'no handshake.duration on the server side');
    assertOneValue(client.rtt, s.xc.rtt_us! / 1e6, 'client rtt');
    assertOneValue(server.rtt, s.xs.rtt_us! / 1e6, 'server rtt');
    assert.equal(client.retransmits?.value, s.xc.retransmits, 'client retransmits: its X');
    assert.equal(server.retransmits?.value, s.xs.retransmits, 'server retransmits: its X');
    return { client, server };
  }

  /** What only C and X carry: nothing of it on the A, nothing of the X's on the C. */
  function assertPlacement(s: Seen): void {
    assert.deepEqual([s.c.rtt_us, s.c.retransmits], [undefined, undefined], 'C: no RTT or retransmits');
    assert.deepEqual([s.a.handshake_ns, s.a.rtt_us, s.a.retransmits], [undefined, undefined, undefined], 'A: no health fields');
    assert.deepEqual([s.xc.handshake_ns, s.xs.handshake_ns], [undefined, undefined], 'X: no handshake');
  }

  for (const ip of [4, 6] as const) {
    test(`IPv${ip}: unimpaired: a handshake on the C, an RTT and no retransmits on each X; the same through OTLP`, async (t) => {
      await impair(ip, undefined, undefined);
      const names: [string, string] = [`tt-hs-srv${ip}`, `tt-hs-cli${ip}`];
      const s = await connection(ip, 7600 + ip, names);
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
      const m = await assertMetrics(s, names);
      assert.deepEqual([m.client.retransmits?.value, m.server.retransmits?.value], [0, 0], 'retransmits metrics');
    });

    test(`IPv${ip}: delay ${DELAY_MS} ms each way (${VIA}): handshake and RTT of at least ${2 * DELAY_MS} ms`, impaired, async (t) => {
      await impair(ip, { delayMs: DELAY_MS }, { delayMs: DELAY_MS });
      try {
        const names: [string, string] = [`tt-dl-srv${ip}`, `tt-dl-cli${ip}`];
        const s = await connection(ip, 7610 + ip, names);
        t.diagnostic(measured(s));
        assertPlacement(s);
        const rtt = 2 * DELAY_MS;
        // SYN out through A's end of the link, SYN-ACK back through B's
        assert.ok(s.c.handshake_ns! >= rtt * 1e6 && s.c.handshake_ns! < rtt * 1e6 + SLACK_NS, `handshake_ns ${s.c.handshake_ns}`);
        // every RTT sample crossed both: the smoothed one too
        for (const x of [s.xc, s.xs]) {
          assert.ok(x.rtt_us! >= rtt * 1000 && x.rtt_us! < rtt * 1000 + SLACK_NS / 1000, `rtt_us ${x.rtt_us} (${x.role})`);
        }
        assert.equal(s.xc.retransmits, 0, 'a delay alone retransmits nothing');
        // the metrics: the same values, so in the same bands (s)
        const m = await assertMetrics(s, names);
        const inBand = (v: number | undefined): boolean => v !== undefined && v >= rtt / 1000 && v < (rtt * 1e6 + SLACK_NS) / 1e9;
        assert.ok(inBand(m.client.handshake?.sum), `handshake.duration sum ${m.client.handshake?.sum} s`);
        for (const [role, r] of [['client', m.client], ['server', m.server]] as const) {
          assert.ok(inBand(r.rtt?.sum), `rtt sum ${r.rtt?.sum} s (${role})`);
        }
        assert.equal(m.client.retransmits?.value, 0, 'client retransmits metric');
      } finally {
        await impair(ip, undefined, undefined);
      }
    });

    test(`IPv${ip}: loss ${LOSS_PERCENT}% of the client's segments (${LOSS_VIA}): retransmits on its X`, impaired, async (t) => {
      // veth: one segment per packet, so that netem drops segments, not whole GSO trains
      // (a TUN device has no GSO: the relay gets one segment per packet)
      const [devA] = devs.get(ip)!;
      if (!relays.has(ip)) sh('ip', ['-n', hostA.name, 'link', 'set', 'dev', devA, 'gso_max_segs', '1']);
      try {
        // the loss is on while the data flows, not for the handshake and the FINs: a lost SYN or
        // FIN only costs seconds (retried after 1 s, then 2, 4...; seen: 7 s for three SYNs)
        const names: [string, string] = [`tt-ls-srv${ip}`, `tt-ls-cli${ip}`];
        const s = await connection(ip, 7620 + ip, names, TRANSFER_BYTES, [
          () => impair(ip, { lossPercent: LOSS_PERCENT }, undefined),
          () => impair(ip, undefined, undefined),
        ]);
        t.diagnostic(measured(s));
        const relay = relays.get(ip);
        if (relay !== undefined) t.diagnostic(`relay, since the link was made: ${await relay.command('stats')}`);
        assertPlacement(s);
        // all of it came back before the client closed: every retransmission was before its X
        assert.ok(s.xc.retransmits! > 0, `client retransmits ${s.xc.retransmits} of ${TRANSFER_BYTES} bytes at ${LOSS_PERCENT}% loss`);
        assert.ok(s.xc.retransmits! < TRANSFER_BYTES, `client retransmits ${s.xc.retransmits}: segments, not bytes`);
        assert.ok(Number.isInteger(s.xs.retransmits) && s.xs.retransmits! >= 0, `server retransmits ${s.xs.retransmits}`);
        assert.ok(s.xc.rtt_us! >= 1);
        // the metrics: the retransmits counter is the X's (on the JSON line and on the exported record)
        const m = await assertMetrics(s, names);
        assert.ok(m.client.retransmits!.value > 0, `client retransmits metric ${m.client.retransmits?.value}`);
        await until(() => collector.records.some((r) => r.attributes['process.pid'] === s.client && r.eventName === 'tcp.close'), "the client's X record");
        const x = one(collector.records.filter((r) => r.attributes['process.pid'] === s.client && r.eventName === 'tcp.close'), "the client's X records");
        assert.equal(m.client.retransmits!.value, x.attributes['tcptracer.connection.retransmits'], "client retransmits metric: its X record's");
        for (const [role, r] of [['client', m.client], ['server', m.server]] as const) {
          assert.ok(r.rtt!.sum >= 1e-6 && r.rtt!.sum < SLACK_NS / 1e9, `rtt sum ${r.rtt?.sum} s (${role})`);
        }
      } finally {
        await impair(ip, undefined, undefined);
      }
    });
  }
});

/** A command whose failure does not matter (removing a qdisc that may not be there). */
function spawnQuiet(argv: string[]): void {
  const [cmd = '', ...args] = argv;
  run(cmd, args);
}
