/**
 * Output formats: bcc tcptracer's table (same header, columns and widths, with
 * trailing blanks trimmed) and NDJSON. In the table, COMM (which any traced
 * process sets) is made terminal-safe with {@link visible}; JSON escapes what
 * JSON requires.
 */
import { errnoName } from './errno.ts';
import { visible } from './escape.ts';
import type { DropCounters, TcpEvent, TcpEventType } from './types.ts';

export interface TableOptions {
  /** -t: TIME(s) column (TIME(ns) with -v), relative to the first event. */
  timestamp: boolean;
  /** -v: the type as a word, and a NETNS column unless -N filters on one. */
  verbose: boolean;
  /** -N was given: bcc then leaves the NETNS column out. */
  netnsFiltered: boolean;
  /** --failed: F rows appear; with -v they end with the error's name (an ERROR column). */
  failed?: boolean;
}

const LETTER: Record<TcpEventType, string> = { connect: 'C', accept: 'A', close: 'X', failed: 'F' };

const BLANKS = ' '.repeat(32);

/** printf's %-Ns; (the hot path: cheaper than String.prototype.padEnd) */
function pad(v: string | number, w: number): string {
  const s = typeof v === 'string' ? v : String(v);
  return s.length >= w ? s : s + BLANKS.slice(0, w - s.length);
}

export class TableFormatter {
  readonly #o: TableOptions;
  #startNs: bigint | undefined;

  constructor(options: TableOptions) {
    this.#o = options;
  }

  header(): string {
    const o = this.#o;
    let line = '';
    if (o.verbose) {
      if (o.timestamp) line += pad('TIME(ns)', 14);
      line += `${pad('TYPE', 12)} ${pad('PID', 6)} ${pad('COMM', 16)} ${pad('IP', 2)} ${pad('SADDR', 16)} ${pad('DADDR', 16)} ${pad('SPORT', 6)} ${pad('DPORT', 7)}`;
      if (!o.netnsFiltered) line += pad('NETNS', 11);
      if (o.failed) line += 'ERROR';
    } else {
      if (o.timestamp) line += pad('TIME(s)', 9);
      line += `${pad('T', 2)} ${pad('PID', 6)} ${pad('COMM', 16)} ${pad('IP', 2)} ${pad('SADDR', 16)} ${pad('DADDR', 16)} ${pad('SPORT', 6)} ${pad('DPORT', 6)}`;
    }
    return line.trimEnd();
  }

  /** One row, as bcc prints it but without trailing blanks (the last column is not padded). */
  row(e: TcpEvent): string {
    const o = this.#o;
    let line = '';
    if (o.timestamp) {
      this.#startNs ??= e.monotonicNs;
      const delta = e.monotonicNs - this.#startNs;
      line += o.verbose ? pad(delta.toString(), 14) : pad((Number(delta) / 1e9).toFixed(3), 9);
    }
    line += o.verbose ? pad(e.type, 12) + ' ' : LETTER[e.type] + '  ';
    const v6 = e.ip === 6;
    line +=
      pad(e.pid, 6) + ' ' + pad(visible(e.comm), 16) + ' ' + (v6 ? '6  ' : '4  ') +
      pad(v6 ? `[${e.saddr}]` : e.saddr, 16) + ' ' + pad(v6 ? `[${e.daddr}]` : e.daddr, 16) + ' ' +
      pad(e.sport, 6) + ' ';
    if (!o.verbose) return line + String(e.dport);
    line += o.netnsFiltered ? pad(e.dport, 7) : pad(e.dport, 6) + ' ' + pad(e.netns, 11);
    // -v: a failed connect's error ends the row (ERROR column); other rows end where bcc's do
    return e.type === 'failed' ? line + (errnoName(e.errno) || 'none') : line.trimEnd();
  }
}

let isoSecondStartNs = -1n;
let isoPrefix = '';

/** RFC 3339 / ISO 8601 UTC time with nanoseconds, e.g. 2026-11-25T12:00:00.123456789Z. */
export function isoTimeNs(unixNs: bigint): string {
  let frac = unixNs - isoSecondStartNs;
  if (frac < 0n || frac >= 1_000_000_000n) {
    // a new second: one division, then cheap subtractions for the rest of it
    const sec = unixNs / 1_000_000_000n;
    isoSecondStartNs = sec * 1_000_000_000n;
    isoPrefix = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
    frac = unixNs - isoSecondStartNs;
  }
  return `${isoPrefix}.${String(frac).padStart(9, '0')}Z`;
}

/**
 * Lines of one batch encoded straight into one Buffer: no batch-sized string
 * to build and convert. `maxBytes` bounds a line's UTF-8 length.
 */
export function encodeLines<T>(items: readonly T[], line: (item: T) => string, maxBytes: number): Buffer {
  const out = Buffer.allocUnsafe(items.length * (maxBytes + 1));
  let off = 0;
  for (const item of items) {
    off += out.write(line(item), off);
    out[off++] = 0x0a;
  }
  return out.subarray(0, off);
}

/**
 * Upper bounds of a line's UTF-8 bytes: 16 comm bytes may expand to 48 when not
 * valid UTF-8 (U+FFFD each), or to 64 in the table when each is escaped (`\x1b`);
 * in JSON a control byte is 6 (`\u0001`). The widest JSON line (a close with every
 * field at its widest, identity and health included) is 773 bytes
 * (test/unit-escape.test.ts).
 */
export const MAX_TABLE_LINE_BYTES = 320;
export const MAX_JSON_LINE_BYTES = 800;

/**
 * One JSON object per event (--json). Connection health, where the event
 * carries it: `handshake_ns` on a connect (SYN_SENT -> ESTABLISHED), and on a
 * close `rtt_us` (the kernel's smoothed RTT; absent when it had no sample) and
 * `retransmits` (segments retransmitted over the connection's life).
 */
export function jsonLine(e: TcpEvent): string {
  let s =
    `{"type":"${e.type}","time":"${isoTimeNs(e.timeUnixNs)}","pid":${e.pid},"tid":${e.tid},` +
    `"comm":${JSON.stringify(e.comm)},"uid":${e.uid},"euid":${e.euid},"role":"${e.role}","ip":${e.ip},"saddr":"${e.saddr}","daddr":"${e.daddr}",` +
    `"sport":${e.sport},"dport":${e.dport},"netns":${e.netns},"cgroup_id":${e.cgroupId}`;
  if (e.containerId !== undefined) s += `,"container_id":"${e.containerId}"`;
  if (e.podUid !== undefined) s += `,"pod_uid":"${e.podUid}"`;
  if (e.type === 'close') {
    s += `,"duration_ns":${e.durationNs},"bytes_acked":${e.bytesAcked},"bytes_received":${e.bytesReceived}`;
    // rtt_us 0: the kernel had no RTT sample (the smoothed RTT is at least 1 µs once it has one)
    if (e.rttUs !== 0) s += `,"rtt_us":${e.rttUs}`;
    s += `,"retransmits":${e.retransmits},"end":"${e.end ?? 'destroyed'}"`;
    if (e.errno !== 0) s += `,"error":"${errnoName(e.errno)}","errno":${e.errno}`;
  } else if (e.type === 'connect') {
    // the probe emits a C only for a connect it saw from SYN_SENT: 0 is not a measurement
    if (e.handshakeNs !== 0) s += `,"handshake_ns":${e.handshakeNs}`;
  } else if (e.type === 'failed') {
    s += e.errno === 0 ? ',"error":null,"errno":0' : `,"error":"${errnoName(e.errno)}","errno":${e.errno}`;
  }
  return `${s}}`;
}

/**
 * What the tracer lost, as the one line printed to stderr at exit (and
 * whenever it grew): `tcptracer: 3 events lost (ring buffer full), ...`, or
 * undefined when nothing was lost.
 */
export function formatLostLine(d: DropCounters & { malformed: number }): string | undefined {
  const parts: string[] = [];
  if (d.ringbufLost) parts.push(`${d.ringbufLost} events lost (ring buffer full)`);
  if (d.sockMapFull) parts.push(`${d.sockMapFull} sockets untracked (socket map full)`);
  if (d.endsUnseen) parts.push(`${d.endsUnseen} connection ends lost (the kernel did not run the probe at a close)`);
  if (d.probeMissed) parts.push(`${d.probeMissed} probe runs skipped by the kernel (a BPF program was already running on that CPU)`);
  if (d.malformed) parts.push(`${d.malformed} malformed records`);
  return parts.length ? `tcptracer: ${parts.join(', ')}` : undefined;
}
