/**
 * Scenarios: workloads other than the main loop, each run against a few
 * configurations, interleaved, after the main rounds.
 *
 *   reset-before-accept  loadgen --reset-before-accept: every client resets its
 *                        connection (SO_LINGER 0) while it waits in the accept
 *                        queue; the server accepts it afterwards. Expected
 *                        exactly C, A and 2 X per connection (issue 13).
 *   reset-racing-accept  loadgen --reset-racing-accept: every client resets its
 *                        connection at once while a server thread on the other
 *                        CPU is inside accept(): the reset races the accept
 *                        (issue 21). Expected the same: C, A and 2 X each.
 *   burst                loadgen --count 20000 --seconds 1: a one-second burst at
 *                        full loopback speed against --otlp with default settings;
 *                        every log record and span must arrive (issue 13).
 *   paced                loadgen --rate R at a few fixed rates (PACED_RATES), S s
 *                        each, against --otlp with default settings: below the
 *                        rate the tracer sustains, the p99 delay kernel ->
 *                        receiver and zero loss (issue 10); and where it stops
 *                        keeping up (the last record later than PACED_TAIL_S
 *                        after the workload's end).
 */
import { LABELS, type CliFeatures, type ConfigName, type Env } from './configs.ts';
import { PACED_TAIL_S, summarize, type ConfigSummary, type RunResult, type ScenarioReport } from './results.ts';
import { k, lossCell, rssCell, sp, spread, table } from './tables.ts';
import { log, runOne, type Workload } from './workload.ts';

export const SCENARIOS: readonly ScenarioReport['name'][] = ['reset-before-accept', 'reset-racing-accept', 'burst', 'paced'];

export interface ScenarioPlan {
  name: ScenarioReport['name'];
  workload: Workload;
  /** paced: the workload is run at each rate (conn/s, loadgen --rate) for `seconds`. */
  paced?: { rates: readonly number[]; seconds: number };
  configs: ConfigName[];
  rounds: number;
  notes: string[];
}

const BURST_CONNECTIONS = 20_000;
/** Connections per second offered in the paced scenario: 4 log records and 2 spans each. */
export const PACED_RATES: readonly number[] = [2500, 5000, 10_000, 15_000, 20_000];

/** What each scenario runs in this mode, given the configurations that can run. */
export function scenarioPlans(full: boolean, usable: (c: ConfigName) => boolean, features: CliFeatures, names: readonly string[]): ScenarioPlan[] {
  const rounds = full ? 3 : 1;
  // OTLP as a user runs it: logs and traces (the CLI's default), or logs where spans do not exist yet
  const otlp: ConfigName = usable('otlp-traces') ? 'otlp-traces' : 'otlp';
  const otlpNote = features.otlpSignals ? [] : ['the CLI has no --otlp-signals (no spans yet): OTLP runs export logs only'];
  const plans: ScenarioPlan[] = [];
  if (names.includes('reset-before-accept')) {
    const count = full ? 40_000 : 10_000;
    plans.push({
      name: 'reset-before-accept',
      workload: { scenario: 'reset-before-accept', args: ['--reset-before-accept'], count, maxSeconds: 60, maxCatchUpMs: 60_000 },
      configs: (['untraced', 'table', 'floor', otlp] as ConfigName[]).filter(usable),
      rounds,
      notes: otlpNote,
    });
  }
  if (names.includes('reset-racing-accept')) {
    plans.push({
      name: 'reset-racing-accept',
      workload: { scenario: 'reset-racing-accept', args: ['--reset-racing-accept', '--threads', '1'], count: full ? 40_000 : 20_000, maxSeconds: 60, maxCatchUpMs: 60_000 },
      configs: (['untraced', 'table', 'floor', otlp] as ConfigName[]).filter(usable),
      rounds,
      notes: otlpNote,
    });
  }
  if (names.includes('burst')) {
    plans.push({
      name: 'burst',
      workload: { scenario: 'burst', args: [], count: BURST_CONNECTIONS, maxSeconds: 1, maxCatchUpMs: 90_000 },
      configs: [otlp].filter(usable),
      rounds,
      notes: [
        ...otlpNote,
        ...(features.ringbufSize ? [] : ['the CLI has no --ringbuf-size (no backpressure from the export to the ring buffer yet): the JS queue absorbs the burst']),
      ],
    });
  }
  if (names.includes('paced')) {
    const seconds = full ? 8 : 3;
    plans.push({
      name: 'paced',
      // count: rate x seconds, set per rate; a tracer that falls behind takes the loadgen's CPU too: let it run late
      workload: { scenario: 'paced', args: [], count: 0, maxSeconds: 2 * seconds + 5, maxCatchUpMs: 120_000 },
      paced: { rates: PACED_RATES, seconds },
      configs: [otlp].filter(usable),
      rounds,
      notes: otlpNote,
    });
  }
  return plans;
}

/** The workloads of a plan: its own, or one per rate (paced). */
function workloads(plan: ScenarioPlan): { rate?: number; workload: Workload }[] {
  const p = plan.paced;
  if (!p) return [{ workload: plan.workload }];
  return p.rates.map((rate) => ({
    rate,
    workload: { ...plan.workload, args: [...plan.workload.args, '--rate', String(rate)], count: Math.round(rate * p.seconds) },
  }));
}

/** Runs a scenario's configurations (paced: each at each rate), interleaved, `rounds` times. */
export async function runScenario(plan: ScenarioPlan, env: Env): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    for (const c of plan.configs) {
      for (const { rate, workload } of workloads(plan)) {
        const r = await runOne(c, round, env, workload);
        r.rate = rate;
        runs.push(r);
        const got = r.byType;
        log(
          `${plan.name} ${round}/${plan.rounds} ${LABELS[c]}${rate ? ` at ${rate} conn/s` : ''}: ${r.ok ? `${Math.round(r.connPerSec)} conn/s` : 'FAILED'}` +
            (r.expectedEvents ? `, C/A/X ${got.connect}/${got.accept}/${got.close} of ${r.expectedByType.connect}/${r.expectedByType.accept}/${r.expectedByType.close}` : '') +
            (r.spansExpected !== undefined ? `, spans ${r.spansReceived ?? 0}/${r.spansExpected}` : '') +
            (r.ringbufLost || r.otlpDropped ? `, lost ${r.ringbufLost ?? 0} + dropped ${r.otlpDropped ?? 0}` : '') +
            (rate && r.otlpDelayP99Ms !== undefined ? `, delay p50 ${r.otlpDelayP50Ms?.toFixed(0) ?? '?'} / p99 ${r.otlpDelayP99Ms.toFixed(0)} ms` : '') +
            (r.lastRecordS !== undefined ? `, last record after ${r.lastRecordS.toFixed(1)} s${rate ? ` (workload ${r.wallS.toFixed(1)} s)` : ''}` : '') +
            (r.error ? ` [${r.error}]` : ''),
        );
      }
    }
  }
  return runs;
}

/** paced: one rate's summary, with whether the tracer kept pace (median run). */
function pacedSummary(c: ConfigName, rate: number, runs: readonly RunResult[]): ConfigSummary {
  const s = summarize(c, `${LABELS[c]} at ${rate} conn/s`, runs, undefined, undefined);
  const tails = runs.filter((r) => r.ok).map((r) => (r.lastRecordS === undefined ? Infinity : r.lastRecordS - r.wallS));
  const tailS = spread(tails);
  s.paced = { rate, tailS, keptUp: tailS !== undefined && tailS.median <= PACED_TAIL_S };
  return s;
}

/** A scenario's report from its runs: a summary per configuration (paced: per configuration and rate). */
export function scenarioReport(plan: ScenarioPlan, runs: readonly RunResult[], unavailable: ReadonlyMap<ConfigName, string>): ScenarioReport {
  const base = summarize('untraced', LABELS.untraced, runs.filter((r) => r.config === 'untraced'), undefined, undefined);
  const of = (c: ConfigName): ConfigSummary => (c === 'untraced' ? base : summarize(c, LABELS[c], runs.filter((r) => r.config === c), undefined, base));
  const p = plan.paced;
  const w = workloads(plan)[0]?.workload ?? plan.workload;
  const args = ['loadgen', '--count', p ? `${p.seconds}xR` : String(w.count), '--seconds', String(w.maxSeconds), '--netns', ...plan.workload.args, ...(p ? ['--rate', 'R'] : [])];
  return {
    name: plan.name,
    workload: args.join(' '),
    connectionsPerRun: w.count,
    rounds: plan.rounds,
    configs: p ? plan.configs.flatMap((c) => p.rates.map((rate) => pacedSummary(c, rate, runs.filter((r) => r.config === c && r.rate === rate)))) : plan.configs.map(of),
    pacedSeconds: p?.seconds,
    notes: [...plan.notes, ...[...unavailable].filter(([c]) => c !== 'bpftrace' && !plan.configs.includes(c)).map(([c, why]) => `${LABELS[c]}: not run: ${why}`)],
  };
}

const ofExpected = (got: number, want: number): string => `${got} / ${want}${got === want ? '' : ` (${got - want > 0 ? '+' : ''}${got - want})`}`;

function resetBeforeAccept(sc: ScenarioReport, md: boolean): string[] {
  const t = [['configuration', 'conn/s', 'x untraced', 'C received / expected', 'A', 'X', 'spans', 'lost (ringbuf)', 'exact']];
  for (const s of sc.configs) {
    if (!s.runs) {
      t.push([s.label, 'failed (see below)', '', '', '', '', '', '', '']);
      continue;
    }
    if (s.config === 'untraced') {
      t.push([s.label, sp(s.connPerSec, k), '-', '-', '-', '-', '-', '-', '-']);
      continue;
    }
    const e = s.expectedByType;
    const g = s.byType;
    const exact = e.connect === g.connect && e.accept === g.accept && e.close === g.close && (s.spansExpected ?? 0) === (s.spansReceived ?? 0);
    t.push([
      s.label,
      sp(s.connPerSec, k),
      s.ratioToUntraced === undefined ? '-' : s.ratioToUntraced.toFixed(2),
      ofExpected(g.connect, e.connect),
      ofExpected(g.accept, e.accept),
      ofExpected(g.close, e.close),
      s.spansExpected === undefined ? '-' : ofExpected(s.spansReceived ?? 0, s.spansExpected),
      lossCell(s) || '-',
      exact ? 'yes' : 'NO',
    ]);
  }
  const traced = sc.configs.find((s) => s.config !== 'untraced' && s.runs);
  const intro = md
    ? [
        `\`${sc.workload}\`: ${sc.name === 'reset-racing-accept'
          ? 'a client thread on one CPU connects and closes each connection at once with SO_LINGER 0 (an RST) while a server thread on the other CPU, woken by the handshake, is inside accept() for it and then closes it: the reset races the accept. '
          : 'each loadgen thread connects 64 clients, each closing at once with SO_LINGER 0 (an RST) while its connection still waits in the listener\'s accept queue, then the server accepts the batch (accept() returns those sockets, already closed) and closes them: what load-balancer and Kubernetes TCP health checks do. '}` +
          `Expected, from the workload's own counts: per connection a C and an X (client), and per connection the server accepted an A and an X (server, both at accept()): C, A and 2 X${traced?.spansExpected !== undefined ? ', and with traces one span per C and per A' : ''}. ` +
          `${sc.connectionsPerRun} connections per run, ${sc.rounds} run(s) per configuration, interleaved; counts summed over the runs${traced ? ` (${traced.connections} connections, ${traced.accepted} accepted, of which ${traced.closedAtAccept ?? '?'} already closed (TCP_CLOSE, from tcp_info) when accept() returned them: the reset came first)` : ''}, conn/s as median (min–max).`,
        '',
      ]
    : [];
  return [...intro, table(t, md)];
}

function burst(sc: ScenarioReport, md: boolean): string[] {
  const t = [['configuration', 'conn/s', 'records expected (logs + spans)', 'delivered', 'lost (ringbuf)', 'last record after s', 'peak RSS MB (ring buffer mapping, anonymous peak)', 'tracer µs/conn']];
  for (const s of sc.configs) {
    if (!s.runs) {
      t.push([s.label, 'failed (see below)', '', '', '', '', '', '']);
      continue;
    }
    const expected = s.expectedEvents + (s.spansExpected ?? 0);
    const delivered = s.receivedEvents + (s.spansReceived ?? 0);
    t.push([
      s.label,
      sp(s.connPerSec, k),
      `${expected} (${s.expectedEvents} + ${s.spansExpected ?? 0})`,
      `${delivered} (${s.receivedEvents} + ${s.spansReceived ?? 0})${delivered === expected ? '' : ` MISSING ${expected - delivered}`}`,
      lossCell(s) || '-',
      sp(s.lastRecordS, (v) => v.toFixed(1)),
      rssCell(s),
      sp(s.tracerUsPerConn, (v) => v.toFixed(1)),
    ]);
  }
  const intro = md
    ? [
        `\`${sc.workload}\`: ${sc.connectionsPerRun} connections as fast as loopback goes (C, A, X, X each; the loadgen stops at 1 s if not done), against the tracer with every setting at its default but the endpoint, exporting to the bench's receiver. ` +
          'Expected: 4 log records per connection, plus 2 spans (one per connection end) when traces are on. "last record after" runs from the start of the burst to the receipt of the last log record or span. ' +
          `${sc.rounds} run(s); counts summed over the runs, times as median (min–max), peak RSS the highest.`,
        '',
      ]
    : [];
  return [...intro, table(t, md)];
}

/** paced: where the tracer stopped keeping up, in words. */
export function pacedVerdict(sc: ScenarioReport): string {
  const rates = sc.configs.filter((s) => s.paced && s.runs);
  const kept = rates.filter((s) => s.paced?.keptUp).map((s) => s.paced?.rate ?? 0);
  const first = rates.find((s) => !s.paced?.keptUp);
  if (!rates.length) return 'no rate could be measured';
  const tail = first?.paced?.tailS ? `: its last record or span arrived ${sp(first.paced.tailS, (v) => v.toFixed(1))} s after the workload ended` : '';
  if (!first) return `the tracer kept up at every rate measured (up to ${kept.at(-1) ?? 0} conn/s)`;
  return `${kept.length ? `the tracer kept up at ${kept.join(', ')} conn/s; it` : 'the tracer'} did not keep up at ${first.paced?.rate ?? 0} conn/s${kept.length ? '' : ', the lowest rate measured'}${tail}`;
}

function paced(sc: ScenarioReport, md: boolean): string[] {
  const t = [
    ['rate conn/s', 'achieved conn/s', 'records expected (logs + spans)', 'delivered', 'lost (ringbuf) / dropped', 'delay p50 ms', 'delay p99 ms', 'last record after the workload, s', 'kept up', 'tracer µs/conn', 'peak RSS MB (ring, anon)', 'other CPU %'],
  ];
  for (const s of sc.configs) {
    const rate = String(s.paced?.rate ?? '?');
    if (!s.runs) {
      t.push([rate, 'failed (see below)', '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    const expected = s.expectedEvents + (s.spansExpected ?? 0);
    const delivered = s.receivedEvents + (s.spansReceived ?? 0);
    const ms = (v: number): string => v.toFixed(0);
    t.push([
      rate,
      sp(s.connPerSec, ms),
      `${expected} (${s.expectedEvents} + ${s.spansExpected ?? 0})`,
      `${delivered}${delivered === expected ? '' : ` MISSING ${expected - delivered}`}`,
      `${s.ringbufLost ?? '?'} / ${s.otlpDropped ?? '?'}`,
      sp(s.otlpDelayP50Ms, ms),
      sp(s.otlpDelayP99Ms, ms),
      sp(s.paced?.tailS, (v) => (Number.isFinite(v) ? v.toFixed(1) : 'never')),
      s.paced?.keptUp ? 'yes' : 'NO',
      sp(s.tracerUsPerConn, (v) => v.toFixed(1)),
      rssCell(s),
      sp(s.otherCpuPct, ms),
    ]);
  }
  const label = sc.configs[0]?.label.replace(/ at \d+ conn\/s$/, '') ?? 'the tracer';
  const intro = md
    ? [
        `\`${sc.workload}\`: for ${sc.pacedSeconds ?? '?'} s at each rate R (R x ${sc.pacedSeconds ?? '?'} connections, C, A, X, X each, paced by the load generator to absolute deadlines: connection j at t0 + j/R), against ${label}, every setting at its default but the endpoint. ` +
          'Expected: 4 log records and 2 spans per connection. Delay: from each log record\'s kernel timestamp to its receipt by the bench\'s receiver, percentiles over the run\'s records. Tracer CPU: from the workload\'s start until it caught up, per connection (at low rates its fixed costs, timers and polling, weigh more). ' +
          `"Kept up": the last record or span arrived within ${PACED_TAIL_S} s of the workload's end (the export batch timer is 1 s), i.e. the tracer exported as fast as the workload made events; beyond its rate the ring buffer (64 MiB) holds the backlog and the delay grows with the run's length. ` +
          `${sc.rounds} run(s) per rate, rates interleaved; counts summed over the runs, times and CPU as median (min–max), peak RSS the highest.`,
        '',
      ]
    : [];
  return [...intro, table(t, md), '', `${md ? '**' : ''}Where it stopped keeping up${md ? '**' : ''}: ${pacedVerdict(sc)}.`];
}

const TITLES: Record<ScenarioReport['name'], string> = {
  'reset-before-accept': 'Reset before accept',
  'reset-racing-accept': 'Reset racing accept',
  burst: 'OTLP burst',
  paced: 'OTLP at a paced rate',
};

/** A scenario's section: its table, then what could not run. */
export function scenarioSection(sc: ScenarioReport, md: boolean): string[] {
  const out = [md ? `### ${TITLES[sc.name]}` : `Scenario ${sc.name} (${sc.workload}):`];
  if (md) out.push('');
  out.push(...(sc.name === 'burst' ? burst(sc, md) : sc.name === 'paced' ? paced(sc, md) : resetBeforeAccept(sc, md)));
  const notes = [...sc.notes, ...sc.configs.flatMap((s: ConfigSummary) => (s.failures.length ? [`${s.label}: ${s.failures.join('; ')}`] : []))];
  if (notes.length) out.push('', ...notes.map((n) => `${md ? '- ' : ''}${n}`));
  out.push('');
  return out;
}
