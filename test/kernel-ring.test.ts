/**
 * The ring buffer's own consumer (bpf/loader/ring.c): its data area is mapped
 * once, not twice as libbpf maps it, so the RSS counts each page once; and a
 * record that wraps around the end of the data area still arrives whole. A
 * 256 KiB ring buffer and 2000 connections (8000 records of 152 bytes, about
 * 4.6 times around it) make records straddle the end several times; every one
 * must come out exact.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { kernelSuite, NetNs, startPeer, startTracer, within, type JsonEvent } from './helpers/kernel.ts';

const suite = kernelSuite();

const RING_KB = 256;
const CONNECTIONS = 2000;

interface Mapping {
  perms: string;
  sizeKB: number;
  rssKB: number;
}

/** The process's mappings of BPF maps (the ring buffer's, the counters', the skeleton's globals). */
function bpfMappings(pid: number): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S+) /.exec(line);
    if (head) {
      cur = line.endsWith('anon_inode:bpf-map') ? { perms: head[1] ?? '', sizeKB: 0, rssKB: 0 } : undefined;
      if (cur) out.push(cur);
    } else if (cur) {
      const m = /^(Size|Rss):\s+(\d+) kB/.exec(line);
      if (m?.[1] === 'Size') cur.sizeKB = Number(m[2]);
      if (m?.[1] === 'Rss') cur.rssKB = Number(m[2]);
    }
  }
  return out;
}

describe('kernel: the ring buffer mapped once', suite, () => {
  let ns: NetNs;
  before(() => {
    ns = new NetNs();
  });
  after(() => { ns.delete(); });

  for (const [ip, addr] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) {
    test(`IPv${ip}: ${CONNECTIONS} connections through a ${RING_KB} KiB ring buffer, records that wrap included, exact`, async (t) => {
      const tracer = await startTracer(['-N', String(ns.inode), '--ringbuf-size', `${RING_KB}K`]);
      const port = 7400 + ip;
      const server = await startPeer(ns, ['server', addr, String(port), String(CONNECTIONS), `tt-rsrv${ip}`]);
      const client = await startPeer(ns, ['client', addr, String(port), String(CONNECTIONS), `tt-rcli${ip}`]);
      assert.equal(await within(client.exited, 120_000, 'the client\'s exit'), 0);
      assert.equal(await within(server.exited, 120_000, 'the server\'s exit'), 0);

      // while it runs, every record read: the data area's one mapping, read-only, each page resident once
      const page = 4;
      const maps = bpfMappings(tracer.child.pid ?? 0);
      const ring = maps.filter((m) => m.sizeKB === page + RING_KB);
      assert.equal(ring.length, 1, `one mapping of the producer page and the data area: ${JSON.stringify(maps)}`);
      const [data] = ring;
      assert.ok(data);
      assert.equal(data.perms, 'r--s');
      assert.ok(data.rssKB <= page + RING_KB, `resident once: ${JSON.stringify(data)}`);
      assert.deepEqual(maps.filter((m) => m.sizeKB > page + RING_KB), [], 'no mapping of the data area twice');
      assert.deepEqual(maps.filter((m) => m.perms.includes('w')).map((m) => m.sizeKB), [page], 'only the consumer position is writable');

      const { events, code, stderr } = await tracer.stop();
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /lost|malformed/i);
      const of = (comm: string, type: JsonEvent['type']): JsonEvent[] => events.filter((e) => e.comm === comm && e.type === type);
      const connects = of(`tt-rcli${ip}`, 'connect');
      const clientCloses = of(`tt-rcli${ip}`, 'close');
      const accepts = of(`tt-rsrv${ip}`, 'accept');
      const serverCloses = of(`tt-rsrv${ip}`, 'close');
      assert.deepEqual([connects.length, clientCloses.length, accepts.length, serverCloses.length, events.length], [CONNECTIONS, CONNECTIONS, CONNECTIONS, CONNECTIONS, 4 * CONNECTIONS]);
      const ports = (list: JsonEvent[], side: 'sport' | 'dport'): number[] => list.map((e) => e[side]).sort((a, b) => a - b);
      const clientPorts = ports(connects, 'sport');
      // A port can serve two connections (an aborted one frees it at once: seen in the VMs), so each
      // port's events, in the order they came, must alternate: connect, close (accept, close).
      for (const [side, open, portOf] of [
        ['client', 'connect', (e: JsonEvent) => e.sport],
        ['server', 'accept', (e: JsonEvent) => e.dport],
      ] as const) {
        const next = new Map<number, string>();
        for (const e of events) {
          if (e.role !== side) continue;
          const expected = next.get(portOf(e)) ?? open;
          assert.equal(e.type, expected, `${side} port ${portOf(e)}: ${JSON.stringify(e)}`);
          next.set(portOf(e), expected === open ? 'close' : open);
        }
        assert.ok([...next.values()].every((t) => t === open), `every ${side} connection closed`);
      }
      t.diagnostic(`${CONNECTIONS - new Set(clientPorts).size} client ports used twice or more`);
      assert.deepEqual(ports(clientCloses, 'sport'), clientPorts);
      assert.deepEqual(ports(accepts, 'dport'), clientPorts);
      assert.deepEqual(ports(serverCloses, 'dport'), clientPorts);
      for (const e of events) {
        const isClient = e.role === 'client';
        assert.deepEqual(
          [e.ip, e.saddr, e.daddr, isClient ? e.dport : e.sport, e.netns, e.pid],
          [ip, addr, addr, port, ns.inode, isClient ? client.pid : server.pid],
          JSON.stringify(e),
        );
        // the byte sent, acked and received (the FIN counted too when it came before the close: see kernel-events)
        if (e.type === 'close') assert.ok([1, 2].includes((isClient ? e.bytes_acked : e.bytes_received) ?? 0), JSON.stringify(e));
      }
    });
  }
});
