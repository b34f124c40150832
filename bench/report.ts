/**
 * From the runs to the tables: a configuration's figures over its rounds
 * (medians with their spread, counts summed), the tables of
 * docs/benchmarks.md's generated part, and the targets (the issues' goals).
 * Tables only: what they mean is written once, by hand, in the document's
 * first part, which bench/run.ts leaves as it is.
 */
import { isOtlp, LABELS, type ConfigName } from './configs.ts';
import type { RecordCost } from './otlp-record-cost.ts';
import type { ScenarioPlan } from './scenarios.ts';
import type { Counts, RunResult } from './workload.ts';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly (number | undefined)[]): Spread | undefined {
  const s = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (!s.length) return undefined;
  const mid = s.length >> 1;
  return { median: s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2, min: s[0] ?? 0, max: s.at(-1) ?? 0 };
}

/** A tracer that kept pace has delivered everything within this long of the workload's end (the batch timer is 1 s). */
export const PACED_TAIL_S = 2;

/** A configuration's figures over its runs; `base` (untraced) for the ratios. */
export function summarize(config: ConfigName, runs: readonly RunResult[], base?: { connPerSec?: Spread; loadgenUsPerConn?: Spread }, reason?: string) {
  const ok = runs.filter((r) => r.ok);
  const sum = (f: (r: RunResult) => number | undefined): number => ok.reduce((a, r) => a + (f(r) ?? 0), 0);
  const total = (f: (r: RunResult) => number | undefined): number | undefined => (ok.some((r) => f(r) !== undefined) ? sum(f) : undefined);
  const med = (f: (r: RunResult) => number | undefined): Spread | undefined => spread(ok.map(f));
  const max = (f: (r: RunResult) => number | undefined): number | undefined => spread(ok.map(f))?.max;
  const counts = (f: (r: RunResult) => Counts): Counts => ({ connect: sum((r) => f(r).connect), accept: sum((r) => f(r).accept), close: sum((r) => f(r).close) });
  const connPerSec = med((r) => r.connPerSec);
  const loadgenUsPerConn = med((r) => r.loadgenUsPerConn);
  const expected = counts((r) => r.expected);
  const got = counts((r) => r.got);
  const threads = new Set(ok.flatMap((r) => Object.keys(r.threadUsPerEvent ?? {})));
  const rate = runs[0]?.rate;
  return {
    config,
    label: `${LABELS[config]}${rate ? ` at ${rate} conn/s` : ''}`,
    rate,
    reason,
    runs: ok.length,
    failures: runs.filter((r) => !r.ok || r.error).map((r) => `round ${r.round}: ${r.error ?? 'failed'}`),
    connections: sum((r) => r.connections),
    accepted: sum((r) => r.accepted),
    closedAtAccept: sum((r) => r.closedAtAccept),
    expected,
    got,
    expectedEvents: expected.connect + expected.accept + expected.close,
    receivedEvents: got.connect + got.accept + got.close,
    spansExpected: total((r) => r.spansExpected),
    spansReceived: total((r) => r.spansReceived),
    sampledOutRecords: total((r) => r.sampledOutRecords),
    sampledOutSpans: total((r) => r.sampledOutSpans),
    ringbufLost: total((r) => r.ringbufLost),
    sockMapFull: total((r) => r.sockMapFull),
    endsUnseen: total((r) => r.endsUnseen),
    probeMissed: total((r) => r.probeMissed),
    otlpDropped: total((r) => r.otlpDropped),
    peerLost: total((r) => r.peerLost),
    malformed: total((r) => r.malformed),
    connPerSec,
    ratio: base?.connPerSec && connPerSec ? connPerSec.median / base.connPerSec.median : undefined,
    loadgenUsPerConn,
    loadgenVsUntracedPct: base?.loadgenUsPerConn && loadgenUsPerConn ? 100 * (loadgenUsPerConn.median / base.loadgenUsPerConn.median - 1) : undefined,
    otherCpuPct: med((r) => r.otherCpuPct),
    tracerUsPerEvent: med((r) => r.tracerUsPerEvent),
    tracerSysUsPerEvent: med((r) => r.tracerSysUsPerEvent),
    /** Tracer CPU per connection of the workload delivered: per event x events per connection. */
    tracerUsPerConn: med((r) => (r.tracerUsPerEvent === undefined ? undefined : (r.tracerUsPerEvent * (r.expected.connect + r.expected.accept + r.expected.close)) / r.connections)),
    threadUsPerEvent: Object.fromEntries([...threads].map((t) => [t, spread(ok.map((r) => r.threadUsPerEvent?.[t]))?.median ?? 0])),
    peakRssMB: max((r) => r.peakRssMB),
    ringbufRssMB: max((r) => r.ringbufRssMB),
    peakAnonRssMB: max((r) => r.peakAnonRssMB),
    catchUpS: med((r) => r.catchUpS),
    lastRecordS: med((r) => r.lastRecordS),
    /** From the workload's end to the last record or span received (never: Infinity). */
    tailS: isOtlp(config) ? med((r) => (r.lastRecordS ?? Infinity) - r.wallS) : undefined,
    otlpRecordsPerSec: med((r) => r.otlpRecordsPerSec),
    otlpDelayP50Ms: med((r) => r.otlpDelayP50Ms),
    otlpDelayP99Ms: med((r) => r.otlpDelayP99Ms),
  };
}
export type Summary = ReturnType<typeof summarize>;

export interface ScenarioReport {
  plan: ScenarioPlan;
  configs: Summary[];
  runs: RunResult[];
}

export interface BenchReport {
  run: Record<string, string>;
  configs: Summary[];
  scenarios: ScenarioReport[];
  recordCost?: RecordCost;
  targets: string[][];
  runs: RunResult[];
}

/** 12345 -> 12.3k; below 10000 an integer. */
const k = (v: number): string => (v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));
const fixed = (d: number) => (v: number): string => (Number.isFinite(v) ? v.toFixed(d) : 'never');
/** "median (min–max)", or '-'. */
const sp = (s: Spread | undefined, fmt: (v: number) => string): string => (!s ? '-' : s.min === s.max ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`);
const ofExpected = (got: number, want: number): string => `${got} / ${want}${got === want ? '' : ` (${got > want ? '+' : ''}${got - want})`}`;

export function mdTable(t: readonly (readonly string[])[]): string {
  const row = (r: readonly string[]): string => `| ${r.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  const [head = [], ...body] = t;
  return [row(head), row(head.map(() => '---')), ...body.map(row)].join('\n');
}

/** Peak RSS, with the ring buffer's mapping and the anonymous peak in brackets. */
function rss(s: Summary): string {
  if (s.peakRssMB === undefined) return '-';
  const parts = [s.ringbufRssMB ? `ring ${s.ringbufRssMB.toFixed(0)}` : '', s.peakAnonRssMB ? `anon ${s.peakAnonRssMB.toFixed(0)}` : ''].filter(Boolean);
  return `${s.peakRssMB.toFixed(0)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** The losses in one cell: the ring buffer's count, then whatever else is not zero. */
function losses(s: Summary): string {
  const named = [['probe runs skipped', s.probeMissed], ['sockets untracked', s.sockMapFull], ['connection ends lost', s.endsUnseen], ['otlp dropped', s.otlpDropped], ['bpftrace lost', s.peerLost], ['malformed', s.malformed]] as const;
  return [s.ringbufLost === undefined ? '' : String(s.ringbufLost), ...named.map(([n, v]) => (v ? `${n} ${v}` : ''))].filter(Boolean).join(', ') || '-';
}

/**
 * What did not arrive, or arrived beyond the expected: events per type, and spans. Sampled: the
 * shortfall once what was sampled out is added, plus any excess. The tracer's sampled-out count is
 * of every process (the receiver's side of the tracer's own export connection is one), while
 * received counts only loadgen's: more sampled out than the shortfall is not a loss.
 */
const shortfall = (expected: number, received: number, sampledOut: number): number => Math.max(0, expected - received - sampledOut) + Math.max(0, received - expected);
const missing = (s: Summary): number =>
  s.sampledOutRecords !== undefined
    ? shortfall(s.expectedEvents, s.receivedEvents, s.sampledOutRecords) + shortfall(s.spansExpected ?? 0, s.spansReceived ?? 0, s.sampledOutSpans ?? 0)
    : Math.abs(s.expected.connect - s.got.connect) + Math.abs(s.expected.accept - s.got.accept) + Math.abs(s.expected.close - s.got.close) + Math.abs((s.spansExpected ?? 0) - (s.spansReceived ?? 0));

/** Received / expected; sampled: received + sampled out / expected. */
function received(s: Summary): string {
  if (s.sampledOutRecords === undefined) return ofExpected(s.receivedEvents, s.expectedEvents);
  const spans = s.spansExpected === undefined ? '' : `; spans ${s.spansReceived ?? 0} + ${s.sampledOutSpans ?? 0} / ${s.spansExpected}`;
  return `${s.receivedEvents} + ${s.sampledOutRecords} sampled out / ${s.expectedEvents}${spans}${missing(s) ? ` (off by ${missing(s)})` : ''}`;
}

function mainTable(configs: readonly Summary[]): string[][] {
  const t = [['configuration', 'conn/s', 'x untraced', 'loadgen µs/conn (vs untraced)', 'events received / expected', 'lost (ring buffer, other)', 'tracer µs/event, of which system', 'by thread, µs/event', 'peak RSS MB (ring, anon)', 'catch-up s', 'other CPU %']];
  for (const s of configs) {
    if (!s.runs) {
      if (s.reason || s.failures.length) t.push([s.label, s.reason ? `unavailable: ${s.reason}` : 'failed (below)']);
      continue;
    }
    const traced = s.config !== 'untraced';
    const vs = traced && s.loadgenVsUntracedPct !== undefined ? ` (${s.loadgenVsUntracedPct >= 0 ? '+' : ''}${s.loadgenVsUntracedPct.toFixed(0)}%)` : '';
    const threads = Object.entries(s.threadUsPerEvent).sort((a, b) => b[1] - a[1]).map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ');
    t.push([
      s.label,
      sp(s.connPerSec, k),
      s.ratio?.toFixed(2) ?? '-',
      sp(s.loadgenUsPerConn, fixed(1)) + vs,
      traced ? received(s) : '-',
      traced ? losses(s) : '-',
      traced ? `${sp(s.tracerUsPerEvent, fixed(2))}, sys ${s.tracerSysUsPerEvent?.median.toFixed(2) ?? '-'}` : '-',
      threads || '-',
      traced ? rss(s) : '-',
      traced ? sp(s.catchUpS, fixed(1)) : '-',
      sp(s.otherCpuPct, fixed(0)),
    ]);
  }
  return t;
}

/** OTLP with logs only against logs and traces (and sampled), in the same rounds: end to end, and what spans cost. */
function otlpTable(configs: readonly Summary[]): string[][] {
  const o = configs.filter((s) => isOtlp(s.config) && s.config !== 'otlp-metrics' && s.runs);
  if (!o.length) return [];
  const row = (name: string, f: (s: Summary) => string): string[] => [name, ...o.map(f)];
  return [
    ['', ...o.map((s) => s.label)],
    row('tracer CPU per connection delivered, µs', (s) => sp(s.tracerUsPerConn, fixed(1))),
    row('log records delivered / expected', (s) => ofExpected(s.receivedEvents, s.expectedEvents)),
    row('spans delivered / expected', (s) => (s.spansExpected === undefined ? '-' : ofExpected(s.spansReceived ?? 0, s.spansExpected))),
    row('sampled out: log records / spans', (s) => (s.sampledOutRecords === undefined ? '-' : `${s.sampledOutRecords} / ${s.sampledOutSpans ?? 0}`)),
    row('lost in the ring buffer / otlp dropped', (s) => `${s.ringbufLost ?? '?'} / ${s.otlpDropped ?? '?'}`),
    row('log records not delivered and not counted lost', (s) => String(Math.max(0, s.expectedEvents - s.receivedEvents - (s.sampledOutRecords ?? 0) - (s.ringbufLost ?? 0) - (s.otlpDropped ?? 0)))),
    row('log records delivered per second', (s) => sp(s.otlpRecordsPerSec, k)),
    row('delay kernel -> receiver p50 / p99, ms', (s) => `${sp(s.otlpDelayP50Ms, fixed(0))} / ${sp(s.otlpDelayP99Ms, fixed(0))}`),
    row('peak RSS MB (ring, anon)', rss),
  ];
}

function recordCostTable(c: RecordCost): string[][] {
  return [
    ['one log record, no network', 'the tracer (LogsEncoder)', 'the SDK (Logger.emit, ProtobufLogsSerializer)', 'tracer / SDK'],
    ['CPU µs', c.encoderUs.toFixed(2), c.sdkUs.toFixed(2), (c.encoderUs / c.sdkUs).toFixed(2)],
    ['bytes', c.encoderBytes.toFixed(1), c.sdkBytes.toFixed(1), c.sameBytes ? 'a batch both ways: the same bytes' : 'a batch both ways: BYTES DIFFER'],
  ];
}

function resetTable(sc: ScenarioReport): string[][] {
  const t = [['configuration', 'conn/s', 'x untraced', 'accepted (of which closed at accept)', 'C received / expected', 'A', 'X', 'spans', 'lost', 'exact']];
  for (const s of sc.configs) {
    if (!s.runs) t.push([s.label, 'failed (below)']);
    else if (s.config === 'untraced') t.push([s.label, sp(s.connPerSec, k), '-', `${s.accepted} (${s.closedAtAccept})`]);
    else {
      const { expected: e, got: g } = s;
      const spans = s.spansExpected === undefined ? '-' : ofExpected(s.spansReceived ?? 0, s.spansExpected);
      t.push([s.label, sp(s.connPerSec, k), s.ratio?.toFixed(2) ?? '-', `${s.accepted} (${s.closedAtAccept})`, ofExpected(g.connect, e.connect), ofExpected(g.accept, e.accept), ofExpected(g.close, e.close), spans, losses(s), missing(s) ? 'NO' : 'yes']);
    }
  }
  return t;
}

/** burst and paced: OTLP with its defaults. */
function otlpScenarioTable(sc: ScenarioReport): string[][] {
  const t = [['rate conn/s', 'achieved conn/s', 'records + spans delivered / expected', 'lost / otlp dropped', 'delay p50 / p99 ms', 'last record after the start, s', 'after the workload, s', 'kept up', 'tracer µs/conn', 'peak RSS MB (ring, anon)', 'other CPU %']];
  for (const s of sc.configs) {
    const rate = s.rate ? String(s.rate) : 'as fast as it goes';
    if (!s.runs) {
      t.push([rate, 'failed (below)']);
      continue;
    }
    const delivered = `${s.receivedEvents} + ${s.spansReceived ?? 0} / ${s.expectedEvents} + ${s.spansExpected ?? 0}${missing(s) ? ` MISSING ${s.expectedEvents + (s.spansExpected ?? 0) - s.receivedEvents - (s.spansReceived ?? 0)}` : ''}`;
    const keptUp = s.tailS ? (s.tailS.median <= PACED_TAIL_S ? 'yes' : 'NO') : '-';
    const delay = `${sp(s.otlpDelayP50Ms, fixed(0))} / ${sp(s.otlpDelayP99Ms, fixed(0))}`;
    t.push([rate, sp(s.connPerSec, k), delivered, `${s.ringbufLost ?? '?'} / ${s.otlpDropped ?? '?'}`, delay, sp(s.lastRecordS, fixed(1)), sp(s.tailS, fixed(1)), keptUp, sp(s.tracerUsPerConn, fixed(1)), rss(s), sp(s.otherCpuPct, fixed(0))]);
  }
  return t;
}

/**
 * churn scenarios: what identity costs, --json against --json --no-identity
 * of the same rounds (run one after the other): the median over rounds of the
 * CPU per event's ratio, and of the peak RSS's difference.
 */
export function identityCost(sc: ScenarioReport): { cpuPct: number; rssMB: number; rounds: number } | undefined {
  const of = (c: ConfigName, round: number): RunResult | undefined => sc.runs.find((r) => r.config === c && r.round === round && r.ok);
  const pairs = [...new Set(sc.runs.map((r) => r.round))].flatMap((round) => {
    const [id, noid] = [of('json', round), of('json-noid', round)];
    return id?.tracerUsPerEvent && noid?.tracerUsPerEvent && id.peakRssMB !== undefined && noid.peakRssMB !== undefined ? [{ cpu: id.tracerUsPerEvent / noid.tracerUsPerEvent, rss: id.peakRssMB - noid.peakRssMB }] : [];
  });
  const cpu = spread(pairs.map((p) => p.cpu));
  const rss = spread(pairs.map((p) => p.rss));
  return cpu && rss ? { cpuPct: 100 * (cpu.median - 1), rssMB: rss.median, rounds: pairs.length } : undefined;
}

/** The issues' goals, one row each: status, goal, configuration, value, limit, margin (and the losses behind a count). */
export function targets(configs: readonly Summary[], scenarios: readonly ScenarioReport[]): string[][] {
  const out = [['', 'target', 'config', 'value', 'goal', 'margin']];
  const by = (c: ConfigName): Summary | undefined => configs.find((s) => s.config === c && s.runs);
  const add = (name: string, config: string, value: number | undefined, op: '>=' | '<=', limit: number, fmt: (v: number) => string, note = ''): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    const diff = value - limit;
    const rel = limit ? ` (${diff >= 0 ? '+' : ''}${((100 * diff) / limit).toFixed(0)}%)` : '';
    const pass = op === '>=' ? value >= limit : value <= limit;
    out.push([pass ? 'PASS' : 'MISS', name, config, fmt(value), `${op} ${fmt(limit)}`, `${diff >= 0 ? '+' : ''}${fmt(diff)}${rel}${note ? `; ${note}` : ''}`]);
  };
  const x = (v: number): string => `${v.toFixed(2)}x`;
  const us = (v: number): string => `${v.toFixed(2)} µs`;
  const pct = (v: number): string => `${v.toFixed(1)}%`;
  const n = (v: number): string => v.toFixed(0);
  const lossNote = (s: Summary): string => `ring buffer lost ${s.ringbufLost ?? '?'}, probe runs skipped ${s.probeMissed ?? '?'}${s.otlpDropped === undefined ? '' : `, otlp dropped ${s.otlpDropped}`}`;
  const lost = (s: Summary): number => Math.max(missing(s), (s.ringbufLost ?? 0) + (s.otlpDropped ?? 0));
  const floor = by('floor')?.tracerUsPerEvent?.median;
  for (const c of ['table', 'json', 'otlp', 'otlp-traces'] as const) add('traced throughput vs untraced', c, by(c)?.ratio, '>=', isOtlp(c) ? 0.65 : 0.85, x);
  // issue 4: 2 µs an event in table and JSON; issue 10: 6 µs an OTLP log record
  for (const c of ['table', 'json', 'otlp'] as const) add(`tracer CPU per ${c === 'otlp' ? 'record' : 'event'}`, c, by(c)?.tracerUsPerEvent?.median, '<=', c === 'otlp' ? 6 : 2, us, floor === undefined ? '' : `C floor ${us(floor)}`);
  for (const c of ['floor', 'table', 'json', 'otlp', 'otlp-traces'] as const) add('probe kernel cost: loadgen CPU/conn vs untraced', c, by(c)?.loadgenVsUntracedPct, '<=', 10, pct);
  for (const c of ['floor', 'table', 'json', 'otlp', 'otlp-traces', 'otlp-metrics'] as const) {
    const s = by(c);
    if (s) add('zero lost events', c, lost(s), '<=', 0, n, lossNote(s));
  }
  // issue 19: metrics only, its own budget
  const metrics = by('otlp-metrics');
  add('metrics-only tracer CPU per event', 'otlp-metrics', metrics?.tracerUsPerEvent?.median, '<=', 1.5, us);
  add('metrics-only peak RSS under full load', 'otlp-metrics', metrics?.peakRssMB, '<=', 100, (v) => `${v.toFixed(0)} MB`, metrics ? `ring buffer mapping ${metrics.ringbufRssMB?.toFixed(0) ?? '?'} MB, anonymous peak ${metrics.peakAnonRssMB?.toFixed(0) ?? '?'} MB` : '');
  for (const c of ['otlp', 'otlp-traces'] as const) {
    const s = by(c);
    // the ring buffer's data area is mapped once (bpf/loader/ring.c): its RSS is the kernel memory it holds
    add('OTLP peak RSS under full load', c, s?.peakRssMB, '<=', 150, (v) => `${v.toFixed(0)} MB`, s ? `ring buffer mapping ${s.ringbufRssMB?.toFixed(0) ?? '?'} MB, anonymous peak ${s.peakAnonRssMB?.toFixed(0) ?? '?'} MB` : '');
    add('OTLP p99 delay kernel -> receiver (full load)', c, s?.otlpDelayP99Ms?.median, '<=', 2000, (v) => `${v.toFixed(0)} ms`);
  }
  const peer = by('bpftrace')?.connPerSec?.median;
  for (const c of ['table', 'json', 'otlp', 'otlp-traces'] as const) {
    const mine = by(c)?.connPerSec?.median;
    add('traced throughput vs bpftrace peer', c, peer && mine !== undefined ? mine / peer : undefined, '>=', 2, x);
  }
  for (const sc of scenarios) {
    const id = sc.plan.name.startsWith('churn') ? identityCost(sc) : undefined;
    if (id) {
      // issue 19: identity under 10% of the event path and 20 MB, on a node whose containers come and go
      add(`${sc.plan.name}: identity CPU per event vs --no-identity`, 'json', id.cpuPct, '<=', 10, pct, `median of ${id.rounds} rounds`);
      add(`${sc.plan.name}: identity peak RSS vs --no-identity`, 'json', id.rssMB, '<=', 20, (v) => `${v.toFixed(1)} MB`, `median of ${id.rounds} rounds`);
    }
    for (const s of sc.configs.filter((c) => c.config !== 'untraced' && c.runs)) {
      if (!s.rate) {
        add(`${sc.plan.name}: every event${s.spansExpected === undefined ? '' : ' and span'} delivered`, s.config, lost(s), '<=', 0, n, lossNote(s));
        continue;
      }
      // paced (issue 10): at the rates it keeps up with (and the lowest in any case), p99 delay <= 1 s and nothing lost
      const config = `${s.config} at ${s.rate}/s`;
      if ((s.tailS?.median ?? Infinity) > PACED_TAIL_S && s.rate !== Math.min(...sc.configs.map((c) => c.rate ?? Infinity))) out.push(['N/A', `paced: p99 delay <= 1 s, zero loss`, config, `did not keep up: last record ${sp(s.tailS, fixed(1))} s after the workload`, '', `p99 ${sp(s.otlpDelayP99Ms, fixed(0))} ms, lost ${lost(s)}`]);
      else {
        add('paced: p99 delay kernel -> receiver', config, s.otlpDelayP99Ms?.median, '<=', 1000, (v) => `${v.toFixed(0)} ms`);
        add('paced: zero loss (logs + spans)', config, lost(s), '<=', 0, n, lossNote(s));
      }
    }
  }
  return out;
}

/** docs/benchmarks.md's generated part: tables, and the runs that failed. */
export function markdown(r: BenchReport): string {
  const out = ['### Run', '', mdTable([['', ''], ...Object.entries(r.run)]), '', '### Configurations side by side', '', mdTable(mainTable(r.configs)), ''];
  const otlp = otlpTable(r.configs);
  if (otlp.length) out.push('### OTLP: logs only, logs and traces', '', mdTable(otlp), '');
  if (r.recordCost) out.push('### One OTLP log record', '', mdTable(recordCostTable(r.recordCost)), '');
  for (const sc of r.scenarios) {
    const churn = sc.plan.name.startsWith('churn');
    const table = sc.plan.name.startsWith('reset') ? resetTable(sc) : churn || sc.plan.name === 'graceful' ? mainTable(sc.configs) : otlpScenarioTable(sc);
    out.push(`### Scenario ${sc.plan.name}: \`${sc.plan.command}\``, '', mdTable(table), '');
    const id = churn ? identityCost(sc) : undefined;
    const churnOf = (f: (r: RunResult) => number | undefined): number => sc.runs.filter((r) => r.config === 'json' && r.ok).reduce((a, r) => a + (f(r) ?? 0), 0);
    if (id) {
      out.push(
        `Identity against --no-identity, medians of ${id.rounds} rounds: ${id.cpuPct >= 0 ? '+' : ''}${id.cpuPct.toFixed(1)}% tracer CPU per event, ${id.rssMB >= 0 ? '+' : ''}${id.rssMB.toFixed(1)} MB peak RSS; ` +
          `events of the churn's processes that carry their container id: ${churnOf((r) => r.churnIdentified)} of ${churnOf((r) => r.churnEvents)}.`,
        '',
      );
    }
  }
  out.push('### Targets', '', mdTable(r.targets), '');
  const failures = [...r.configs, ...r.scenarios.flatMap((sc) => sc.configs)].flatMap((s) => s.failures.map((f) => `- ${s.label}: ${f}`));
  if (failures.length) out.push('### Failures', '', ...failures, '');
  return out.join('\n');
}
