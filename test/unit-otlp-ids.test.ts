import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { connectionIds, idsFromIsns, ownSpanId } from '../src/otlp/traces/ids.ts';
import { tcpEvent } from './fixtures/tcp-events.ts';

/** One connection 10.0.0.1:41234 -> 10.0.0.2:5432 as the client's host and the server's host see it. */
const clientView = tcpEvent({ type: 'connect', role: 'client', localIsn: 0x1000_0001, peerIsn: 0x2000_0002 });
const serverView = tcpEvent({
  type: 'accept',
  role: 'server',
  saddr: '10.0.0.2',
  sport: 5432,
  daddr: '10.0.0.1',
  dport: 41234,
  localIsn: 0x2000_0002,
  peerIsn: 0x1000_0001,
});

describe('connection ids', () => {
  it('are the same from both ends of a connection', () => {
    assert.deepEqual(connectionIds(serverView), connectionIds(clientView));
    assert.deepEqual(connectionIds({ ...clientView, type: 'close' }), connectionIds({ ...serverView, type: 'close' }));
  });

  it('ignore ports and addresses, which NAT rewrites', () => {
    const natted = { ...serverView, saddr: '10.244.1.7', sport: 8080, daddr: '192.168.0.9', dport: 61000 };
    assert.deepEqual(connectionIds(natted), connectionIds(clientView));
  });

  it('differ between connections, and with the order of the pair', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const got = idsFromIsns(0x1000_0000 + i, 0x2000_0000 + i);
      ids.add(got.traceId).add(got.clientSpanId).add(got.serverSpanId);
    }
    assert.equal(ids.size, 600);
    assert.notEqual(idsFromIsns(1, 2).traceId, idsFromIsns(2, 1).traceId);
  });

  it('are stable across runs: SHA-256 of the label and the two ISNs (big-endian, client first)', () => {
    const known = idsFromIsns(0x1000_0001, 0x2000_0002);
    assert.deepEqual(
      { traceId: known.traceId, clientSpanId: known.clientSpanId, serverSpanId: known.serverSpanId },
      { traceId: 'ac1ce8283a1b616cc3b715561bffbe4d', clientSpanId: 'cf7c7bae3c55f570', serverSpanId: '4f8e25d9a142e3dd' },
    );
    assert.equal(known.bytes.toString('hex'), known.traceId + known.clientSpanId + known.serverSpanId);
    const input = Buffer.concat([Buffer.from('tcptracer-otel connection ids v1\0'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 7])]);
    const hex = createHash('sha256').update(input).digest('hex');
    const other = idsFromIsns(0xffff_ffff, 7);
    assert.deepEqual([other.traceId, other.clientSpanId, other.serverSpanId], [hex.slice(0, 32), hex.slice(32, 48), hex.slice(48)]);
    assert.equal(other.bytes.toString('hex'), hex);
  });

  it('are never all zero, and valid OpenTelemetry ids', () => {
    for (const [c, s] of [[0, 1], [1, 0], [0xffff_ffff, 0xffff_ffff]] as const) {
      const ids = idsFromIsns(c, s);
      assert.match(ids.traceId, /^[0-9a-f]{32}$/);
      assert.match(ids.clientSpanId, /^[0-9a-f]{16}$/);
      assert.doesNotMatch(ids.traceId, /^0+$/);
      assert.doesNotMatch(ids.clientSpanId, /^0+$/);
      assert.doesNotMatch(ids.serverSpanId, /^0+$/);
      assert.notEqual(ids.clientSpanId, ids.serverSpanId);
    }
  });

  it('are absent for an event without ISNs', () => {
    assert.equal(connectionIds(tcpEvent({ type: 'failed', localIsn: 0, peerIsn: 0 })), undefined);
  });

  it("give each side its own span id: the client's for the client, the server's for the server", () => {
    const ids = connectionIds(clientView);
    assert.ok(ids);
    assert.equal(ownSpanId(ids, 'client'), ids.clientSpanId);
    assert.equal(ownSpanId(ids, 'server'), ids.serverSpanId);
  });
});

describe('connectionIds remembers recent connections', () => {
  it('gives the same ids again, and never another connection\'s for a shared client ISN', () => {
    const a = tcpEvent({ localIsn: 0x7777_0001, peerIsn: 0x1111_0001 });
    const sameClientIsn = tcpEvent({ localIsn: 0x7777_0001, peerIsn: 0x2222_0002 });
    const first = connectionIds(a);
    assert.equal(connectionIds({ ...a, type: 'close' }), first, 'the close reuses the connect\'s ids');
    assert.deepEqual(connectionIds(sameClientIsn), idsFromIsns(0x7777_0001, 0x2222_0002));
    assert.deepEqual(connectionIds(a), idsFromIsns(0x7777_0001, 0x1111_0001), 'recomputed after the slot was taken');
  });
});
