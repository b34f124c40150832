/**
 * Output formats: bcc tcptracer's table (same header, columns and widths, with
 * trailing blanks trimmed) and NDJSON.
 */
import type { TcpEvent, TcpEventType } from './types.ts';

export interface TableOptions {
  /** -t: TIME(s) column (TIME(ns) with -v), relative to the first event. */
  timestamp: boolean;
  /** -v: the type as a word, and a NETNS column unless -N filters on one. */
  verbose: boolean;
  /** -N was given: bcc then leaves the NETNS column out. */
  netnsFiltered: boolean;
}

const LETTER: Record<TcpEventType, string> = { connect: 'C', accept: 'A', close: 'X' };

const pad = (s: string | number, w: number): string => String(s).padEnd(w);

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
      if (!o.netnsFiltered) line += pad('NETNS', 8);
    } else {
      if (o.timestamp) line += pad('TIME(s)', 9);
      line += `${pad('T', 2)} ${pad('PID', 6)} ${pad('COMM', 16)} ${pad('IP', 2)} ${pad('SADDR', 16)} ${pad('DADDR', 16)} ${pad('SPORT', 6)} ${pad('DPORT', 6)}`;
    }
    return line.trimEnd();
  }

  row(e: TcpEvent): string {
    const o = this.#o;
    let line = '';
    if (o.timestamp) {
      this.#startNs ??= e.monotonicNs;
      const delta = e.monotonicNs - this.#startNs;
      line += o.verbose ? pad(delta.toString(), 14) : pad((Number(delta) / 1e9).toFixed(3), 9);
    }
    line += o.verbose ? `${pad(e.type, 12)} ` : `${pad(LETTER[e.type], 2)} `;
    const [s, d] = e.ip === 6 ? [`[${e.saddr}]`, `[${e.daddr}]`] : [e.saddr, e.daddr];
    line += `${pad(e.pid, 6)} ${pad(e.comm, 16)} ${pad(e.ip, 2)} ${pad(s, 16)} ${pad(d, 16)} ${pad(e.sport, 6)} ${pad(e.dport, 6)}`;
    if (o.verbose && !o.netnsFiltered) line += ` ${pad(e.netns, 8)}`;
    return line.trimEnd();
  }
}

let isoSecond = -1n;
let isoPrefix = '';

/** RFC 3339 / ISO 8601 UTC time with nanoseconds, e.g. 2026-11-25T12:00:00.123456789Z. */
export function isoTimeNs(unixNs: bigint): string {
  const sec = unixNs / 1_000_000_000n;
  if (sec !== isoSecond) {
    isoSecond = sec;
    isoPrefix = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  }
  return `${isoPrefix}.${(unixNs - sec * 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

/** One JSON object per event (--json). */
export function jsonLine(e: TcpEvent): string {
  let s =
    `{"type":"${e.type}","time":"${isoTimeNs(e.timeUnixNs)}","pid":${e.pid},"tid":${e.tid},` +
    `"comm":${JSON.stringify(e.comm)},"uid":${e.uid},"euid":${e.euid},"role":"${e.role}","ip":${e.ip},"saddr":"${e.saddr}","daddr":"${e.daddr}",` +
    `"sport":${e.sport},"dport":${e.dport},"netns":${e.netns},"cgroup_id":${e.cgroupId}`;
  if (e.type === 'close') {
    s += `,"duration_ns":${e.durationNs},"bytes_acked":${e.bytesAcked},"bytes_received":${e.bytesReceived}`;
  }
  return `${s}}`;
}
