/**
 * Medians with their spread, number formats and text/markdown tables, shared
 * by the report (bench/report.ts), the targets and the scenarios.
 */
import type { LossCounts } from './results.ts';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly number[]): Spread | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? 0, max: s.at(-1) ?? 0 };
}

/** 12345 -> 12.3k; below 10000 as an integer. */
export const k = (v: number): string => (v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));
export const f1 = (v: number | undefined, d = 1): string => (v === undefined ? '-' : v.toFixed(d));
/** "median (min–max)", or '-'. */
export const sp = (s: Spread | undefined, fmt: (v: number) => string): string =>
  s ? (s.min === s.max ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`) : '-';

export function textTable(t: string[][]): string {
  const widths = t[0]?.map((_, i) => Math.max(...t.map((r) => (r[i] ?? '').length))) ?? [];
  return t.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function mdTable(t: string[][]): string {
  const [head, ...body] = t;
  if (!head) return '';
  const esc = (c: string): string => c.replaceAll('|', '\\|');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Peak RSS in MB, with the part that is the BPF ring buffer's mapping and the peak of the anonymous part. */
export const rssCell = (s: { peakRssMB?: number; ringbufRssMB?: number; peakAnonRssMB?: number }): string =>
  s.peakRssMB === undefined
    ? '-'
    : `${s.peakRssMB.toFixed(0)}${s.ringbufRssMB || s.peakAnonRssMB ? ` (${[s.ringbufRssMB ? `ring ${s.ringbufRssMB.toFixed(0)}` : '', s.peakAnonRssMB ? `anon ${s.peakAnonRssMB.toFixed(0)}` : ''].filter(Boolean).join(', ')})` : ''}`;

export const table = (t: string[][], md: boolean): string => (md ? mdTable(t) : textTable(t));

/** The losses of a configuration in one cell: ring buffer count first, then whatever else is non-zero. */
export function lossCell(s: LossCounts): string {
  return [
    s.ringbufLost !== undefined ? String(s.ringbufLost) : '',
    s.probeMissed ? `probe runs skipped ${s.probeMissed}` : '',
    s.otlpDropped ? `otlp dropped ${s.otlpDropped}` : '',
    s.peerLost ? `bpftrace lost ${s.peerLost}` : '',
    s.malformed ? `malformed ${s.malformed}` : '',
  ]
    .filter(Boolean)
    .join(', ');
}
