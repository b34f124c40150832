/**
 * Scenarios: workloads other than the main loop, each run against a few
 * configurations, interleaved, after the main rounds (docs/benchmarks.md's
 * method says what each one is for):
 *
 *   reset-before-accept  loadgen --reset-before-accept: clients reset (SO_LINGER 0)
 *                        while their connection waits in the accept queue
 *   reset-racing-accept  loadgen --reset-racing-accept: clients reset while a server
 *                        thread on the other CPU is inside accept()
 *   burst                20000 connections at full speed within 1 s, OTLP defaults
 *   paced                OTLP defaults at PACED_RATES conn/s (loadgen --rate)
 *   graceful             loadgen --graceful: clients close with a FIN, not a reset, so that
 *                        sampling (--sample 0.1) has connections to leave out: OTLP
 *                        logs,traces against sampled and against metrics only
 *   churn                --json with identity and without (--no-identity) under an RST
 *                        churn at CHURN_RATE conn/s, beside CHURN_CGROUPS short-lived
 *                        container cgroups a second (bench/churn.ts) on this host's
 *                        cgroup layout (hybrid: v1 controllers + cgroup2)
 *   churn-unified        the same, the tracer in a mount namespace where cgroup2 is
 *                        /sys/fs/cgroup and nothing else (the unified layout), the
 *                        cgroups made in cgroup2 only
 */
import { Churn, type Layout } from './churn.ts';
import { LABELS, type ConfigName, type Env } from './configs.ts';
import { log, runOne, type RunResult, type Workload } from './workload.ts';

export const SCENARIOS = ['reset-before-accept', 'reset-racing-accept', 'burst', 'paced', 'graceful', 'churn', 'churn-unified'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const PACED_RATES = [2500, 5000, 10_000, 15_000, 20_000];
export const CHURN_RATE = 10_000;
export const CHURN_CGROUPS = 7;
/** The unified layout for the tracer: its own mount namespace, /sys/fs/cgroup a cgroup2 mount and nothing under it. */
const UNIFIED = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', 'sh'];

export interface ScenarioPlan {
  name: ScenarioName;
  configs: ConfigName[];
  rounds: number;
  /** One workload, or one per rate (paced). */
  workloads: { rate?: number; workload: Workload }[];
  /** The loadgen command line, for the report. */
  command: string;
}

export function scenarioPlan(name: ScenarioName, full: boolean, usable: (c: ConfigName) => boolean, loadgen = ''): ScenarioPlan {
  if (name === 'churn' || name === 'churn-unified') return churnPlan(name, full, loadgen);
  const otlp: ConfigName[] = ['otlp-traces'];
  const [configs, args, count, maxSeconds]: [ConfigName[], string[], number, number] =
    name === 'reset-before-accept' ? [['untraced', 'table', 'floor', 'otlp-traces'], ['--reset-before-accept'], full ? 40_000 : 10_000, 60]
    : name === 'reset-racing-accept' ? [['untraced', 'table', 'floor', 'otlp-traces'], ['--reset-racing-accept', '--threads', '1'], full ? 40_000 : 20_000, 60]
    : name === 'burst' ? [otlp, [], 20_000, 1]
    : name === 'graceful' ? [['untraced', 'otlp-traces', 'otlp-sampled', 'otlp-metrics'], ['--graceful'], full ? 40_000 : 20_000, 60]
    : [otlp, [], 0, 0];
  const seconds = full ? 8 : 3;
  const workloads =
    name === 'paced'
      ? // a tracer that falls behind takes the loadgen's CPU too: let it run late
        PACED_RATES.map((rate) => ({ rate, workload: { args: ['--rate', String(rate)], count: rate * seconds, maxSeconds: 2 * seconds + 5, maxCatchUpMs: 120_000 } }))
      : [{ workload: { args, count, maxSeconds, maxCatchUpMs: name === 'burst' ? 90_000 : 60_000 } }];
  const shown = name === 'paced' ? ['--count', `${seconds}xR`, '--seconds', String(2 * seconds + 5), '--rate', 'R'] : ['--count', String(count), '--seconds', String(maxSeconds), ...args];
  return { name, configs: configs.filter(usable), rounds: full ? 3 : 1, workloads, command: ['loadgen', '--netns', ...shown].join(' ') };
}

function churnPlan(name: 'churn' | 'churn-unified', full: boolean, loadgen: string): ScenarioPlan {
  const layout: Layout = name === 'churn' ? 'hybrid' : 'unified';
  const seconds = full ? 8 : 4;
  const workload: Workload = {
    args: ['--rate', String(CHURN_RATE)],
    count: CHURN_RATE * seconds,
    maxSeconds: 2 * seconds + 5,
    maxCatchUpMs: 60_000,
    beside: () => {
      const churn = new Churn(layout, loadgen, CHURN_CGROUPS);
      return {
        start: () => {
          churn.start();
        },
        stop: () => churn.stop(),
      };
    },
    wrap: layout === 'unified' ? UNIFIED : undefined,
  };
  const command = ['loadgen', '--netns', '--count', String(workload.count), '--seconds', String(workload.maxSeconds), ...workload.args, `+ ${CHURN_CGROUPS} cgroups/s (${layout})`].join(' ');
  return { name, configs: ['json', 'json-noid'], rounds: full ? 5 : 3, workloads: [{ workload }], command };
}

/** Runs a scenario's configurations (paced: each at each rate), interleaved, its rounds. */
export async function runScenario(plan: ScenarioPlan, env: Env): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    for (const c of plan.configs) {
      for (const { rate, workload } of plan.workloads) {
        const r = await runOne(c, round, env, workload, rate);
        runs.push(r);
        const e = r.expected;
        log(
          `${plan.name} ${round}/${plan.rounds} ${LABELS[c]}${rate ? ` at ${rate} conn/s` : ''}: ${r.ok ? `${Math.round(r.connPerSec)} conn/s` : 'FAILED'}` +
            (e.connect ? `, C/A/X ${r.got.connect}/${r.got.accept}/${r.got.close} of ${e.connect}/${e.accept}/${e.close}` : '') +
            (r.spansExpected !== undefined ? `, spans ${r.spansReceived ?? 0}/${r.spansExpected}` : '') +
            (r.otlpDelayP99Ms !== undefined ? `, delay p99 ${r.otlpDelayP99Ms.toFixed(0)} ms` : '') +
            (r.lastRecordS !== undefined ? `, last record after ${r.lastRecordS.toFixed(1)} s (workload ${r.wallS.toFixed(1)} s)` : '') +
            (r.error ? ` [${r.error}]` : ''),
        );
      }
    }
  }
  return runs;
}
