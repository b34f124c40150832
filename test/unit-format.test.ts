/** The table must be bcc tcptracer's, checked against bcc's own example output. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { encodeLines, formatLostLine, isoTimeNs, jsonLine, TableFormatter } from '../src/format.ts';
import type { TcpEvent } from '../src/types.ts';

const EXAMPLE = new URL('../../shared/tcptracer_example.txt', import.meta.url);

function ev(type: TcpEvent['type'], pid: number, comm: string, saddr: string, daddr: string, sport: number, dport: number, sec = 0): TcpEvent {
  return {
    type, pid, comm, saddr, daddr, sport, dport, tid: pid, uid: 0, euid: 0, role: type === 'connect' ? 'client' : 'server', ip: saddr.includes(':') ? 6 : 4,
    monotonicNs: BigInt(Math.round(sec * 1e9)) + 10n ** 12n, timeUnixNs: 0n, netns: 4026531840,
    cgroupId: 1, durationNs: 0, bytesAcked: 0, bytesReceived: 0, handshakeNs: 0, rttUs: 0, retransmits: 0,
    errno: 0, end: type === 'close' ? 'fin' : undefined, localIsn: 1, peerIsn: 2, containerId: undefined, podUid: undefined,
  };
}

/** The output lines of the example's code block that starts with the command `cmd`. */
function exampleBlock(cmd: string): string[] {
  const text = readFileSync(EXAMPLE, 'utf8');
  const start = text.indexOf(`${cmd}\n`);
  assert.ok(start >= 0, cmd);
  const [, banner, ...lines] = text.slice(start, text.indexOf('```', start)).trimEnd().split('\n');
  assert.equal(banner, 'Tracing TCP established connections. Ctrl-C to end.');
  return lines;
}

test('table header and rows match bcc example output byte for byte', { skip: !exists() && 'shared/ not beside the repo' }, () => {
  const t = new TableFormatter({ timestamp: false, verbose: false, netnsFiltered: false });
  const events = [
    ev('connect', 28943, 'telnet', '192.168.1.2', '192.168.1.1', 59306, 23),
    ev('connect', 28818, 'curl', '::1', '::1', 55758, 80),
    ev('close', 28943, 'telnet', '192.168.1.2', '192.168.1.1', 59306, 23),
    ev('accept', 28817, 'nc', '::1', '::1', 80, 55758),
    ev('close', 28818, 'curl', '::1', '::1', 55758, 80),
    ev('close', 28817, 'nc', '::1', '::1', 80, 55758),
    ev('accept', 28978, 'nc', '10.202.210.1', '10.202.109.12', 8080, 59160),
    ev('close', 28978, 'nc', '10.202.210.1', '10.202.109.12', 8080, 59160),
  ];
  assert.deepEqual([t.header(), ...events.map((e) => t.row(e))], exampleBlock('# ./tcptracer'));
});

test('-t: TIME(s) relative to the first event, as in the example', { skip: !exists() && 'shared/ not beside the repo' }, () => {
  const t = new TableFormatter({ timestamp: true, verbose: false, netnsFiltered: false });
  const lines = exampleBlock('# ./tcptracer -t');
  assert.equal(t.header(), lines[0]);
  assert.equal(t.row(ev('connect', 31002, 'telnet', '192.168.1.2', '192.168.1.1', 42590, 23, 0)), lines[1]);
  // (the example's second row shows PID 748 right-aligned, unlike bcc's code and every other row)
  assert.equal(t.row(ev('close', 31002, 'telnet', '192.168.1.2', '192.168.1.1', 42590, 23, 4.294)), lines[3]);
});

test('-v: type as a word and the NETNS column; -N drops NETNS as bcc does', () => {
  const e = ev('accept', 17, 'nginx', '10.0.0.1', '10.0.0.2', 443, 50000);
  const v = new TableFormatter({ timestamp: false, verbose: true, netnsFiltered: false });
  assert.equal(v.header(), 'TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  NETNS');
  assert.equal(v.row(e), 'accept       17     nginx            4  10.0.0.1         10.0.0.2         443    50000  4026531840');
  const vn = new TableFormatter({ timestamp: true, verbose: true, netnsFiltered: true });
  assert.equal(vn.header(), 'TIME(ns)      TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT');
  assert.equal(vn.row(e), '0             accept       17     nginx            4  10.0.0.1         10.0.0.2         443    50000');
  assert.equal(vn.row({ ...e, monotonicNs: e.monotonicNs + 1234n }), '1234          accept       17     nginx            4  10.0.0.1         10.0.0.2         443    50000');
});

test('--failed: F rows; with -v the type word and an ERROR column that only failed rows fill', () => {
  const f = { ...ev('failed', 4242, 'psql', '10.0.0.1', '10.0.0.2', 41234, 5432), role: 'client' as const, errno: 111 };
  const t = new TableFormatter({ timestamp: false, verbose: false, netnsFiltered: false, failed: true });
  assert.equal(t.header(), 'T  PID    COMM             IP SADDR            DADDR            SPORT  DPORT');
  assert.equal(t.row(f), 'F  4242   psql             4  10.0.0.1         10.0.0.2         41234  5432');
  const v = new TableFormatter({ timestamp: false, verbose: true, netnsFiltered: false, failed: true });
  assert.equal(v.header(), 'TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  NETNS      ERROR');
  assert.equal(v.row(f), 'failed       4242   psql             4  10.0.0.1         10.0.0.2         41234  5432   4026531840 ECONNREFUSED');
  assert.equal(v.row({ ...f, errno: 0 }), 'failed       4242   psql             4  10.0.0.1         10.0.0.2         41234  5432   4026531840 none');
  assert.equal(v.row({ ...f, type: 'connect' }), 'connect      4242   psql             4  10.0.0.1         10.0.0.2         41234  5432   4026531840');
  const vn = new TableFormatter({ timestamp: false, verbose: true, netnsFiltered: true, failed: true });
  assert.equal(vn.header(), 'TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  ERROR');
  assert.equal(vn.row({ ...f, errno: 110 }), 'failed       4242   psql             4  10.0.0.1         10.0.0.2         41234  5432   ETIMEDOUT');
});

test('--json: one object per event, ISO 8601 time with nanoseconds, no brackets', () => {
  const e = { ...ev('close', 5, 'a"b', '::1', '::2', 1, 2), timeUnixNs: 1_764_072_000_000_000_007n, durationNs: 9, bytesAcked: 3, bytesReceived: 4 };
  assert.deepEqual(JSON.parse(jsonLine(e)), {
    type: 'close', time: '2025-11-25T12:00:00.000000007Z', pid: 5, tid: 5, comm: 'a"b', uid: 0, euid: 0, role: 'server', ip: 6,
    saddr: '::1', daddr: '::2', sport: 1, dport: 2, netns: 4026531840, cgroup_id: 1,
    duration_ns: 9, bytes_acked: 3, bytes_received: 4, retransmits: 0, end: 'fin',
  });
  const reset = JSON.parse(jsonLine({ ...e, end: 'reset', errno: 104 })) as Record<string, unknown>;
  assert.deepEqual([reset.end, reset.error, reset.errno], ['reset', 'ECONNRESET', 104]);
  const connect = JSON.parse(jsonLine({ ...e, type: 'connect', end: undefined })) as Record<string, unknown>;
  assert.deepEqual([connect.duration_ns, connect.end, connect.error], [undefined, undefined, undefined]);
  assert.ok(!('rtt_us' in connect) && !('retransmits' in connect) && !('handshake_ns' in connect), 'no health fields on a C without a handshake');
  const failed = JSON.parse(jsonLine({ ...e, type: 'failed', end: undefined, errno: 111 })) as Record<string, unknown>;
  assert.deepEqual([failed.type, failed.error, failed.errno, failed.duration_ns], ['failed', 'ECONNREFUSED', 111, undefined]);
  const id = 'a'.repeat(64);
  const inPod = JSON.parse(jsonLine({ ...e, containerId: id, podUid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' })) as Record<string, unknown>;
  assert.deepEqual([inPod.container_id, inPod.pod_uid], [id, '1b4e28ba-2fa1-11d2-883f-0016d3cca427']);
  const docker = JSON.parse(jsonLine({ ...e, containerId: id })) as Record<string, unknown>;
  assert.ok(!('pod_uid' in docker) && docker.container_id === id, 'pod_uid only when known');
  const gaveUp = JSON.parse(jsonLine({ ...e, type: 'failed', end: undefined, errno: 0 })) as Record<string, unknown>;
  assert.deepEqual([gaveUp.error, gaveUp.errno], [null, 0]);
  assert.equal(isoTimeNs(1_764_072_001_123_456_789n), '2025-11-25T12:00:01.123456789Z');
  assert.equal(isoTimeNs(1_764_072_000_999_999_999n), '2025-11-25T12:00:00.999999999Z');
});

test('--json: handshake_ns on C, rtt_us (when sampled) and retransmits on X, nothing on A or F', () => {
  const base = { ...ev('connect', 5, 'curl', '10.0.0.1', '10.0.0.2', 41234, 80), handshakeNs: 40_123_456, rttUs: 40_321, retransmits: 7 };
  const keys = (type: TcpEvent['type'], extra: Partial<TcpEvent> = {}): Record<string, unknown> => {
    const o = JSON.parse(jsonLine({ ...base, type, end: type === 'close' ? 'fin' : undefined, ...extra })) as Record<string, unknown>;
    return { handshake_ns: o.handshake_ns, rtt_us: o.rtt_us, retransmits: o.retransmits };
  };
  // the fields a C or X carries; the others are absent even where the event holds a value
  assert.deepEqual(keys('connect'), { handshake_ns: 40_123_456, rtt_us: undefined, retransmits: undefined });
  assert.deepEqual(keys('close'), { handshake_ns: undefined, rtt_us: 40_321, retransmits: 7 });
  assert.deepEqual(keys('accept'), { handshake_ns: undefined, rtt_us: undefined, retransmits: undefined });
  assert.deepEqual(keys('failed', { errno: 111 }), { handshake_ns: undefined, rtt_us: undefined, retransmits: undefined });
  // no RTT sample: rtt_us absent; no retransmission: retransmits 0, present
  assert.deepEqual(keys('close', { rttUs: 0, retransmits: 0 }), { handshake_ns: undefined, rtt_us: undefined, retransmits: 0 });
  assert.deepEqual(keys('close', { retransmits: 2 ** 32 - 1 }).retransmits, 2 ** 32 - 1);
  const line = jsonLine({ ...base, type: 'close', end: 'reset', errno: 104 });
  assert.match(line, /,"bytes_received":0,"rtt_us":40321,"retransmits":7,"end":"reset","error":"ECONNRESET","errno":104\}$/);
});

function exists(): boolean {
  try {
    readFileSync(EXAMPLE);
    return true;
  } catch {
    return false;
  }
}

test('a batch of lines is encoded into one buffer, UTF-8 and newlines included', () => {
  const lines = ['a', 'ünïcødé', '', 'x'.repeat(200)];
  const buf = encodeLines(lines, (s) => s, 256);
  assert.equal(buf.toString('utf8'), `${lines.join('\n')}\n`);
  // isoTimeNs across second boundaries, backwards too
  assert.equal(isoTimeNs(1_764_072_005_000_000_001n), '2025-11-25T12:00:05.000000001Z');
  assert.equal(isoTimeNs(1_764_072_004_999_999_999n), '2025-11-25T12:00:04.999999999Z');
  assert.equal(isoTimeNs(1_764_072_005_999_999_999n), '2025-11-25T12:00:05.999999999Z');
});

test('the exit line names every kind of loss, and nothing when nothing was lost', () => {
  const none = { ringbufLost: 0, sockMapFull: 0, probeMissed: 0, endsUnseen: 0, malformed: 0 };
  assert.equal(formatLostLine(none), undefined);
  assert.equal(
    formatLostLine({ ringbufLost: 3, sockMapFull: 2, probeMissed: 5, endsUnseen: 4, malformed: 1 }),
    'tcptracer: 3 events lost (ring buffer full), 2 sockets untracked (socket map full), ' +
      '4 connection ends lost (the kernel did not run the probe at a close), ' +
      '5 probe runs skipped by the kernel (a BPF program was already running on that CPU), 1 malformed records',
  );
  assert.equal(formatLostLine({ ...none, endsUnseen: 1 }), 'tcptracer: 1 connection ends lost (the kernel did not run the probe at a close)');
  assert.equal(
    formatLostLine({ ...none, probeMissed: 7 }),
    'tcptracer: 7 probe runs skipped by the kernel (a BPF program was already running on that CPU)',
  );
});
