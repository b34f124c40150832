import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBatch, EVENT_LAYOUT, formatIPv6 } from '../src/event.ts';
import { encode, type RawEvent } from './fixtures/raw-records.ts';

const base: RawEvent = {
  ts: 5_000_000_123n, type: 1, pid: 28943, tid: 28944, uid: 1000, euid: 0, role: 1, comm: 'telnet',
  saddr: '192.168.1.2', daddr: '192.168.1.1', sport: 59306, dport: 23, netns: 4026531840, cgroupId: 1234n,
};

test('decodes every field of a batch, with wall-clock time from the clock offset', () => {
  const offset = 1_700_000_000_000_000_000n;
  const { events, malformed } = decodeBatch(
    encode([
      { ...base, handshakeNs: 2n ** 33n + 5n },
      { ...base, type: 2, role: 2, saddr: '::1', daddr: 'fe80::1:2', comm: 'nc', sport: 80, dport: 55758 },
      { ...base, type: 3, durationNs: 1_500_000n, bytesAcked: 2n ** 40n, bytesReceived: 7n, rttUs: 40_123, retransmits: 0xffff_fff0, comm: 'exactly15chars!', end: 2, error: 104, localIsn: 0xffff_fffe, peerIsn: 1 },
      { ...base, type: 4, error: 111 },
    ]),
    offset,
  );
  assert.equal(malformed, 0);
  assert.deepEqual(events[0], {
    type: 'connect', monotonicNs: 5_000_000_123n, timeUnixNs: offset + 5_000_000_123n,
    pid: 28943, tid: 28944, uid: 1000, euid: 0, role: 'client', comm: 'telnet', ip: 4, saddr: '192.168.1.2', daddr: '192.168.1.1',
    sport: 59306, dport: 23, netns: 4026531840, cgroupId: 1234, durationNs: 0, bytesAcked: 0, bytesReceived: 0,
    handshakeNs: 2 ** 33 + 5, rttUs: 0, retransmits: 0, errno: 0, end: undefined, localIsn: 0, peerIsn: 0, containerId: undefined, podUid: undefined,
  });
  const [, a, x, f] = events;
  assert.ok(a && x && f);
  assert.equal(a.type, 'accept');
  assert.equal(a.role, 'server');
  assert.equal(a.ip, 6);
  assert.equal(a.saddr, '::1');
  assert.equal(a.daddr, 'fe80::1:2');
  assert.equal(x.type, 'close');
  assert.equal(x.comm, 'exactly15chars!');
  assert.equal(x.durationNs, 1_500_000);
  assert.equal(x.bytesAcked, 2 ** 40);
  assert.equal(x.bytesReceived, 7);
  assert.deepEqual([x.handshakeNs, x.rttUs, x.retransmits], [0, 40_123, 0xffff_fff0]);
  assert.deepEqual([x.end, x.errno, x.localIsn, x.peerIsn], ['reset', 104, 0xffff_fffe, 1]);
  assert.deepEqual([f.type, f.errno, f.end], ['failed', 111, undefined]);
});

test('counts records it cannot decode instead of guessing', () => {
  const buf = encode([base, base]);
  buf.writeUInt8(9, EVENT_LAYOUT.size + EVENT_LAYOUT.fields.type[0]); // unknown type
  buf.writeUInt8(0, EVENT_LAYOUT.fields.role[0]); // no role
  const truncated = Buffer.concat([buf, Buffer.alloc(10)]);
  const { events, malformed } = decodeBatch(truncated, 0n);
  assert.equal(events.length, 0);
  assert.equal(malformed, 3);
});

test('IPv6 text form follows RFC 5952', () => {
  const b = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');
  assert.equal(formatIPv6(b('2001 0db8 0000 0000 0000 ff00 0042 8329'), 0), '2001:db8::ff00:42:8329');
  assert.equal(formatIPv6(b('0000 0000 0000 0000 0000 0000 0000 0000'), 0), '::');
  assert.equal(formatIPv6(b('2001 0db8 0000 0001 0000 0000 0000 0001'), 0), '2001:db8:0:1::1');
  assert.equal(formatIPv6(b('2001 0db8 0000 0000 0001 0000 0000 0001'), 0), '2001:db8::1:0:0:1');
  assert.equal(formatIPv6(b('2001 0db8 0001 0001 0001 0001 0000 0001'), 0), '2001:db8:1:1:1:1:0:1');
});

test('name and address caches never return another record\'s strings', () => {
  const raws: RawEvent[] = [];
  for (let i = 0; i < 300; i++) {
    raws.push({ ...base, comm: `proc-${i % 40}`, saddr: `10.0.${i % 7}.${i % 251}`, daddr: `192.168.${i % 3}.1` });
  }
  for (let pass = 0; pass < 2; pass++) {
    const { events } = decodeBatch(encode(raws), 0n);
    assert.deepEqual(
      events.map((e) => [e.comm, e.saddr, e.daddr]),
      raws.map((r) => [r.comm, r.saddr, r.daddr]),
    );
  }
});

