/**
 * Scenarios: workloads other than the main loop, each run against a few
 * configurations, interleaved, after the main rounds.
 *
 *   reset-before-accept  loadgen --reset-before-accept: every client resets its
 *                        connection (SO_LINGER 0) while it waits in the accept
 *                        queue; the server accepts it afterwards. Expected
 *                        exactly C, A and 2 X per connection (issue 13).
 *   burst                loadgen --count 20000 --seconds 1: a one-second burst at
 *                        full loopback speed against --otlp with default settings;
 *                        every log record and span must arrive (issue 13).
 */
import { LABELS, type CliFeatures, type ConfigName, type Env } from './configs.ts';
import type { ConfigSummary, RunResult, ScenarioReport } from './results.ts';
import { k, lossCell, rssCell, sp, table } from './tables.ts';
import { log, runOne, type Workload } from './workload.ts';

export const SCENARIOS: readonly ScenarioReport['name'][] = ['reset-before-accept', 'burst'];

export interface ScenarioPlan {
  name: ScenarioReport['name'];
  workload: Workload;
  configs: ConfigName[];
  rounds: number;
  notes: string[];
}

const BURST_CONNECTIONS = 20_000;

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
  return plans;
}

/** Runs a scenario's configurations, interleaved, `rounds` times. */
export async function runScenario(plan: ScenarioPlan, env: Env): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    for (const c of plan.configs) {
      const r = await runOne(c, round, env, plan.workload);
      runs.push(r);
      const got = r.byType;
      log(
        `${plan.name} ${round}/${plan.rounds} ${LABELS[c]}: ${r.ok ? `${Math.round(r.connPerSec)} conn/s` : 'FAILED'}` +
          (r.expectedEvents ? `, C/A/X ${got.connect}/${got.accept}/${got.close} of ${r.expectedByType.connect}/${r.expectedByType.accept}/${r.expectedByType.close}` : '') +
          (r.spansExpected !== undefined ? `, spans ${r.spansReceived ?? 0}/${r.spansExpected}` : '') +
          (r.lastRecordS !== undefined ? `, last record after ${r.lastRecordS.toFixed(1)} s` : '') +
          (r.error ? ` [${r.error}]` : ''),
      );
    }
  }
  return runs;
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
        `\`${sc.workload}\`: each loadgen thread connects 64 clients, each closing at once with SO_LINGER 0 (an RST) while its connection still waits in the listener's accept queue, then the server accepts the batch (accept() returns those sockets, already closed) and closes them: what load-balancer and Kubernetes TCP health checks do. ` +
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

const TITLES: Record<ScenarioReport['name'], string> = {
  'reset-before-accept': 'Reset before accept',
  burst: 'OTLP burst',
};

/** A scenario's section: its table, then what could not run. */
export function scenarioSection(sc: ScenarioReport, md: boolean): string[] {
  const out = [md ? `### ${TITLES[sc.name]}` : `Scenario ${sc.name} (${sc.workload}):`];
  if (md) out.push('');
  out.push(...(sc.name === 'burst' ? burst(sc, md) : resetBeforeAccept(sc, md)));
  const notes = [...sc.notes, ...sc.configs.flatMap((s: ConfigSummary) => (s.failures.length ? [`${s.label}: ${s.failures.join('; ')}`] : []))];
  if (notes.length) out.push('', ...notes.map((n) => `${md ? '- ' : ''}${n}`));
  out.push('');
  return out;
}
