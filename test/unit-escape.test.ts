/** What a traced process names itself never reaches a terminal as a control sequence. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errnoName } from '../src/errno.ts';
import { visible } from '../src/escape.ts';
import { encodeLines, jsonLine, MAX_JSON_LINE_BYTES, MAX_TABLE_LINE_BYTES, TableFormatter } from '../src/format.ts';
import type { TcpEvent } from '../src/types.ts';

function ev(comm: string, type: TcpEvent['type'] = 'connect'): TcpEvent {
  return {
    type, pid: 4242, comm, saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 41234, dport: 5432, tid: 4242, uid: 0, euid: 0,
    role: 'client', ip: 4, monotonicNs: 10n ** 12n, timeUnixNs: 0n, netns: 4026531840, cgroupId: 1, durationNs: 0,
    bytesAcked: 0, bytesReceived: 0, handshakeNs: 0, rttUs: 0, retransmits: 0, errno: type === 'failed' ? 111 : 0, end: undefined, localIsn: 1, peerIsn: 2,
    containerId: undefined, podUid: undefined,
  };
}

/** Anything a terminal acts on: C0, DEL, C1, line/paragraph separators, bidi and other format characters. */
const CONTROL = /[\p{Cc}\p{Cf}\u2028\u2029]/u;

const HOSTILE = [
  'a\nC  1 fake 4 ', // a forged row
  '\x1b[2J\x1b[31mred', // clear screen, colour
  '\x1b]0;title\x07', // OSC: window title
  'ok\rX', // carriage return over the row
  'abc\b\b\bxyz', // backspaces
  'del\x7f', // DEL
  '\u009b2J', // C1 CSI
  'evil\u202etxt.exe', // right-to-left override
  '\u2028line', // line separator
  'tab\there',
];

test('visible(): C-style escapes, a backslash doubled, printable text unchanged', () => {
  assert.equal(visible('curl'), 'curl');
  assert.equal(visible('ünïcødé 名前'), 'ünïcødé 名前');
  assert.equal(visible('a\nC  1 fake 4 '), 'a\\nC  1 fake 4 ');
  assert.equal(visible('\x1b[2J'), '\\x1b[2J');
  assert.equal(visible('ok\rX\t\b\x7f'), 'ok\\rX\\t\\x08\\x7f');
  assert.equal(visible('\u009b2J'), '\\u009b2J');
  assert.equal(visible('evil\u202etxt'), 'evil\\u202etxt');
  assert.equal(visible('\u2028'), '\\u2028');
  assert.equal(visible('a\\nb'), 'a\\\\nb', 'a literal backslash cannot forge an escape');
  assert.equal(visible('\u{e0001}'), '\\u{e0001}');
});

test('table rows: a hostile COMM is escaped, with and without -v, and stays one row', () => {
  for (const verbose of [false, true]) {
    for (const timestamp of [false, true]) {
      const t = new TableFormatter({ timestamp, verbose, netnsFiltered: false, failed: true });
      for (const comm of HOSTILE) {
        for (const type of ['connect', 'failed'] as const) {
          const row = t.row(ev(comm, type));
          assert.doesNotMatch(row, CONTROL, JSON.stringify({ comm, verbose, timestamp, row }));
          assert.ok(row.includes(visible(comm)), row);
        }
      }
    }
  }
  const t = new TableFormatter({ timestamp: false, verbose: false, netnsFiltered: false });
  assert.equal(t.row(ev('a\nC  1 fake 4 ')), 'C  4242   a\\nC  1 fake 4   4  10.0.0.1         10.0.0.2         41234  5432');
  const lines = encodeLines(HOSTILE.map((c) => ev(c)), (e) => t.row(e), MAX_TABLE_LINE_BYTES).toString('utf8').split('\n');
  assert.equal(lines.length, HOSTILE.length + 1, 'one line per event');
});

test('the longest escaped row fits the table line bound', () => {
  const t = new TableFormatter({ timestamp: true, verbose: true, netnsFiltered: false, failed: true });
  const e = { ...ev('\x01'.repeat(16), 'failed'), ip: 6 as const, saddr: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', daddr: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', pid: 4194304, monotonicNs: 10n ** 12n + 10n ** 13n, errno: 113 };
  t.row({ ...e, monotonicNs: 10n ** 12n });
  assert.ok(Buffer.byteLength(t.row(e)) <= MAX_TABLE_LINE_BYTES, t.row(e));
});

test('the longest JSON line fits the JSON line bound', () => {
  const v6 = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255';
  const widest = {
    ...ev('\x01'.repeat(15), 'close'), ip: 6 as const, saddr: v6, daddr: v6, sport: 65535, dport: 65535, pid: 4194304, tid: 4194304,
    uid: 2 ** 32 - 1, euid: 2 ** 32 - 1, netns: 2 ** 32 - 1, cgroupId: 2 ** 64, durationNs: 2 ** 64, bytesAcked: 2 ** 64, bytesReceived: 2 ** 64,
    rttUs: 2 ** 32 - 1, retransmits: 2 ** 32 - 1, end: 'destroyed' as const, timeUnixNs: 2n ** 64n - 1n,
    containerId: 'c'.repeat(64), podUid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
  };
  // the longest error text any errno gets
  const names = Array.from({ length: 65536 }, (_, n) => n);
  const errno = names.reduce((a, b) => (errnoName(b).length > errnoName(a).length ? b : a), 1);
  widest.errno = errno;
  for (const e of [widest, { ...widest, type: 'connect' as const, handshakeNs: 2 ** 64 }, { ...widest, type: 'failed' as const }]) {
    const line = jsonLine(e);
    assert.ok(Buffer.byteLength(line) <= MAX_JSON_LINE_BYTES, `${Buffer.byteLength(line)} bytes: ${line}`);
  }
});

test('--json keeps the comm as it is, in valid JSON', () => {
  for (const comm of HOSTILE) {
    const line = jsonLine(ev(comm));
    assert.ok(Array.from(line).every((c) => c >= ' '), 'JSON escapes C0 controls');
    assert.equal((JSON.parse(line) as { comm: string }).comm, comm);
  }
});
