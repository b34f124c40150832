/**
 * Decoding of the kernel's records (struct tcptracer_event in bpf/tcptracer.h).
 *
 * EVENT_LAYOUT mirrors the C struct; test/unit-layout.test.ts checks it against the
 * offsets the compiled loader reports, so the two cannot drift apart silently.
 */
import { endianness } from 'node:os';
import type { ConnectionEnd, ConnectionRole, TcpEvent, TcpEventType } from './types.ts';

export const EVENT_LAYOUT = {
  size: 144,
  fields: {
    ts_ns: [0, 8],
    cgroup_id: [8, 8],
    duration_ns: [16, 8],
    bytes_acked: [24, 8],
    bytes_received: [32, 8],
    handshake_ns: [40, 8],
    pid: [48, 4],
    tid: [52, 4],
    uid: [56, 4],
    euid: [60, 4],
    netns: [64, 4],
    rtt_us: [68, 4],
    retransmits: [72, 4],
    saddr: [76, 16],
    daddr: [92, 16],
    sport: [108, 2],
    dport: [110, 2],
    family: [112, 2],
    type: [114, 1],
    role: [115, 1],
    comm: [116, 16],
    local_isn: [132, 4],
    peer_isn: [136, 4],
    error: [140, 2],
    end: [142, 1],
    __reserved: [143, 1],
  },
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

const F = EVENT_LAYOUT.fields;
const LE = endianness() === 'LE';
const TYPES: readonly (TcpEventType | undefined)[] = [undefined, 'connect', 'accept', 'close', 'failed'];
const ENDS: readonly (ConnectionEnd | undefined)[] = [undefined, 'fin', 'reset', 'destroyed'];
const ROLES: readonly (ConnectionRole | undefined)[] = [undefined, 'client', 'server'];
const U32 = 0x1_0000_0000;

function u64(view: DataView, off: number): number {
  return LE
    ? view.getUint32(off, true) + view.getUint32(off + 4, true) * U32
    : view.getUint32(off + 4, false) + view.getUint32(off, false) * U32;
}

export function formatIPv4(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/*
 * Hot-path caches: a host sees few distinct process names and IPv4 addresses,
 * so decoding reuses their strings instead of building new ones per event.
 */
const IPV4_CACHE_MAX = 4096;
const ipv4Cache = new Map<number, string>();

function ipv4(buf: Buffer, view: DataView, off: number): string {
  const key = view.getUint32(off, true);
  let s = ipv4Cache.get(key);
  if (s === undefined) {
    if (ipv4Cache.size >= IPV4_CACHE_MAX) ipv4Cache.clear();
    s = formatIPv4(buf, off);
    ipv4Cache.set(key, s);
  }
  return s;
}

const COMM_SLOTS = 16;
const commKeys = new Uint32Array(COMM_SLOTS * 4);
const commStrings: (string | undefined)[] = new Array<string | undefined>(COMM_SLOTS);

function comm(buf: Buffer, view: DataView, off: number): string {
  const a = view.getUint32(off, true);
  const b = view.getUint32(off + 4, true);
  const c = view.getUint32(off + 8, true);
  const d = view.getUint32(off + 12, true);
  const slot = ((a ^ (b * 31) ^ (c * 961) ^ d) >>> 0) % COMM_SLOTS;
  const k = slot * 4;
  const cached = commStrings[slot];
  if (cached !== undefined && commKeys[k] === a && commKeys[k + 1] === b && commKeys[k + 2] === c && commKeys[k + 3] === d) {
    return cached;
  }
  let end = buf.indexOf(0, off);
  if (end < 0 || end > off + 16) end = off + 16;
  const s = buf.toString('utf8', off, end);
  commKeys.set([a, b, c, d], k);
  commStrings[slot] = s;
  return s;
}

/** RFC 5952 text form: lower case, longest run (≥ 2) of zero groups as "::". */
export function formatIPv6(b: Uint8Array, off: number): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[off + i] ?? 0) << 8) | (b[off + i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  // ::ffff:a.b.c.d never reaches here: the probe reports IPv4-mapped sockets as IPv4.
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Result of decoding one batch: the events, and records that could not be decoded. */
export interface DecodedBatch {
  readonly events: TcpEvent[];
  readonly malformed: number;
}

/**
 * Decode a batch of records as handed over by the loader.
 * @param clockOffsetNs CLOCK_REALTIME - CLOCK_MONOTONIC, to turn kernel time into wall clock.
 */
export function decodeBatch(buf: Buffer, clockOffsetNs: bigint): DecodedBatch {
  const size = EVENT_LAYOUT.size;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const events: TcpEvent[] = [];
  let malformed = buf.byteLength % size === 0 ? 0 : 1;
  for (let off = 0; off + size <= buf.byteLength; off += size) {
    const type = TYPES[view.getUint8(off + F.type[0])];
    const role = ROLES[view.getUint8(off + F.role[0])];
    const family = view.getUint16(off + F.family[0], LE);
    if (type === undefined || role === undefined || (family !== AF_INET && family !== AF_INET6)) {
      malformed++;
      continue;
    }
    const v4 = family === AF_INET;
    const mono = view.getBigUint64(off + F.ts_ns[0], LE);
    events.push({
      type,
      monotonicNs: mono,
      timeUnixNs: mono + clockOffsetNs,
      pid: view.getUint32(off + F.pid[0], LE),
      tid: view.getUint32(off + F.tid[0], LE),
      uid: view.getUint32(off + F.uid[0], LE),
      euid: view.getUint32(off + F.euid[0], LE),
      role,
      comm: comm(buf, view, off + F.comm[0]),
      ip: v4 ? 4 : 6,
      saddr: v4 ? ipv4(buf, view, off + F.saddr[0]) : formatIPv6(buf, off + F.saddr[0]),
      daddr: v4 ? ipv4(buf, view, off + F.daddr[0]) : formatIPv6(buf, off + F.daddr[0]),
      sport: view.getUint16(off + F.sport[0], LE),
      dport: view.getUint16(off + F.dport[0], LE),
      netns: view.getUint32(off + F.netns[0], LE),
      cgroupId: u64(view, off + F.cgroup_id[0]),
      durationNs: u64(view, off + F.duration_ns[0]),
      bytesAcked: u64(view, off + F.bytes_acked[0]),
      bytesReceived: u64(view, off + F.bytes_received[0]),
      handshakeNs: u64(view, off + F.handshake_ns[0]),
      rttUs: view.getUint32(off + F.rtt_us[0], LE),
      retransmits: view.getUint32(off + F.retransmits[0], LE),
      errno: view.getUint16(off + F.error[0], LE),
      end: ENDS[view.getUint8(off + F.end[0])],
      localIsn: view.getUint32(off + F.local_isn[0], LE),
      peerIsn: view.getUint32(off + F.peer_isn[0], LE),
      containerId: undefined,
      podUid: undefined,
    });
  }
  return { events, malformed };
}
