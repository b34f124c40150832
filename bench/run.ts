/**
 * tcptracer-otel benchmark: `npm run bench` (quick, about 2-3 minutes) or
 * `npm run bench -- --full`, as root. The npm script runs scripts/setup.sh
 * first (installs what is missing, builds); `node bench/run.ts` skips that.
 *
 * Builds bench/loadgen.c and bench/floor.c with cc into bench/out/ (every run,
 * from source; nothing binary is committed), then measures, on the same
 * loopback connect/accept/close workload, in interleaved rounds:
 * untraced, tcptracer (table), --json, --otlp -q with logs and with logs and
 * traces (to a counting receiver), the bpftrace peer (bench/tcptracer.bt) and
 * the C floor (bench/floor.c). Then the scenarios (bench/scenarios.ts: reset
 * before accept, an OTLP burst, OTLP paced), the OTLP pipeline alone (bench/pipeline.ts)
 * and a CPU profile of the CLI.
 *
 * Prints a human table, the targets with PASS/MISS, and as its LAST line one
 * JSON object with every figure; rewrites docs/benchmarks.md (unless --no-docs).
 *
 * Options: --full, --rounds N (0: no main rounds), --seconds S (workload length per run),
 * --count N (connections per run; skips calibration), --only a,b,c,
 * --scenarios a,b|none (default: all),
 * --cli PATH (the CLI to measure, default dist/src/cli.js: the installed bin, as
 * npx and the Docker image run it; src/cli.ts runs the sources, with Node's type
 * stripping loaded, ~28 MB more RSS),
 * --node-flags=FLAGS (Node/V8 flags for the measured CLI, e.g. --node-flags=--max-semi-space-size=8),
 * --no-profile, --no-pipeline, --no-docs.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONFIGS, isOtlp, LABELS, StartError, startTracer, type ConfigName, type Env, type Running } from './configs.ts';
import { summarizeProfile } from './cpuprofile.ts';
import { ReceiverClient } from './otlp-receiver.ts';
import { unavailable as pipelineUnavailable, type PipelineResult } from './pipeline.ts';
import { foreignBpfHolders, interrupt, killAll, ownPids, sampleCpu, start, waitFor } from './proc.ts';
import { humanReport, markdown } from './report.ts';
import { summarize, type BenchReport, type ConfigSummary, type ProfileReport, type RecordCost, type RunResult, type ScenarioReport } from './results.ts';
import { buildC, ensureTracefs, features, has, machine } from './setup.ts';
import { runScenario, SCENARIOS, scenarioPlans, scenarioReport } from './scenarios.ts';
import { evaluateTargets } from './targets.ts';
import { BenchError, catchUp, cpuDelta, log, runLoadgen, runOne, startWithRetry } from './workload.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const OUT = join(ROOT, 'bench', 'out');
const COMM = 'loadgen';
const EVENTS_PER_CONNECTION = 4;

interface Mode {
  name: 'quick' | 'full';
  rounds: number;
  seconds: number;
  pipelineRecords: number;
  budgetS: number;
  profileModes: ('table' | 'json' | 'otlp-traces')[];
}

function parseOptions(): {
  mode: Mode;
  count?: number;
  only?: ConfigName[];
  scenarios: string[];
  cli: string;
  nodeFlags: string[];
  profile: boolean;
  pipeline: boolean;
  docs: boolean;
} {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        full: { type: 'boolean' },
        rounds: { type: 'string' },
        seconds: { type: 'string' },
        count: { type: 'string' },
        only: { type: 'string' },
        scenarios: { type: 'string' },
        cli: { type: 'string' },
        'node-flags': { type: 'string' },
        'no-profile': { type: 'boolean' },
        'no-pipeline': { type: 'boolean' },
        'no-docs': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new BenchError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(
      `usage: npm run bench [-- --full] [--rounds N] [--seconds S] [--count N] [--only ${CONFIGS.join(',')}]\n` +
        `                     [--scenarios ${SCENARIOS.join(',')}|none] [--cli PATH (default dist/src/cli.js; e.g. src/cli.ts)]\n` +
        '                     [--node-flags=FLAGS] [--no-profile] [--no-pipeline] [--no-docs]\n',
    );
    process.exit(0);
  }
  const full = values.full ?? false;
  const mode: Mode = full
    ? { name: 'full', rounds: 5, seconds: 8, pipelineRecords: 1_000_000, budgetS: 2400, profileModes: ['table', 'json', 'otlp-traces'] }
    : { name: 'quick', rounds: 3, seconds: 1.5, pipelineRecords: 150_000, budgetS: 900, profileModes: ['table', 'json', 'otlp-traces'] };
  const pos = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(n > 0)) throw new BenchError(`--${name}: expected a positive number, got '${v}'`);
    return n;
  };
  mode.rounds = values.rounds === '0' ? 0 : Math.round(pos('rounds', values.rounds) ?? mode.rounds);
  mode.seconds = pos('seconds', values.seconds) ?? mode.seconds;
  let only: ConfigName[] | undefined;
  if (values.only !== undefined) {
    only = values.only.split(',').map((s) => s.trim()) as ConfigName[];
    for (const c of only) if (!CONFIGS.includes(c)) throw new BenchError(`--only: unknown configuration '${c}' (${CONFIGS.join(', ')})`);
    if (!only.includes('untraced')) only.unshift('untraced');
  }
  const scenarios = values.scenarios === undefined ? [...SCENARIOS] : values.scenarios === 'none' ? [] : values.scenarios.split(',').map((s) => s.trim());
  for (const sc of scenarios) if (!(SCENARIOS as readonly string[]).includes(sc)) throw new BenchError(`--scenarios: unknown scenario '${sc}' (${SCENARIOS.join(', ')}, or none)`);
  return {
    mode,
    count: pos('count', values.count),
    only,
    scenarios,
    cli: values.cli ?? join(ROOT, 'dist/src/cli.js'),
    nodeFlags: (values['node-flags'] ?? '').split(/\s+/).filter(Boolean),
    profile: !values['no-profile'],
    pipeline: !values['no-pipeline'],
    docs: !values['no-docs'],
  };
}

/** Does `tcptracer --otlp` deliver anything yet? undefined if yes, else why not. */
async function probeOtlp(env: Env): Promise<string | undefined> {
  if (!env.receiver) return 'no OTLP receiver';
  let t: Running | undefined;
  try {
    t = await startTracer('otlp', env);
    if (!t) return 'no tracer';
    await runLoadgen(env, 200, 10);
    const receiver = env.receiver;
    let got = 0;
    for (let i = 0; i < 50 && got === 0 && t.child.running(); i++) {
      got = (await receiver.stats()).matched;
      if (!got) await sleep(100);
    }
    const fin = await t.finish();
    t = undefined;
    if (fin.matched > 0) return undefined;
    return `tcptracer --otlp -q delivered no records to the receiver within 5 s (exit ${fin.exitCode}${fin.stderrTail ? `: ${fin.stderrTail}` : ''}): OTLP export not wired in the CLI yet?`;
  } catch (e) {
    return (e as Error).message;
  } finally {
    if (t) await interrupt(t.child, 5000);
  }
}

/** Runs a bench script that prints one JSON line last; the parsed line, or why not. */
async function jsonChild(script: string, args: string[]): Promise<unknown> {
  const c = start(process.execPath, [join(ROOT, script), ...args]);
  const finished = await waitFor(() => !c.running(), 150_000);
  if (!finished) await interrupt(c, 1000);
  const line = c.stdout().trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return `${script} failed: ${finished ? c.stderr().trim().split('\n').slice(-2).join(' | ') : 'timed out'}`;
  }
}

/** OTLP exports far slower than the workload makes events: profile a shorter workload there. */
const OTLP_PROFILE_CONNECTIONS = 40_000;

async function profile(mode: 'table' | 'json' | 'otlp-traces', env: Env, count: number, maxSeconds: number): Promise<ProfileReport | string> {
  const file = join(OUT, `tcptracer-${mode}.cpuprofile`);
  // the CLI runs as an unprivileged user once attached (--user, default nobody): it can write an existing 0666 file only
  writeFileSync(file, '');
  chmodSync(file, 0o666);
  const [node, ...rest] = env.cli;
  const penv: Env = { ...env, cli: [node ?? process.execPath, '--import', join(ROOT, 'bench/prof-hook.ts'), ...rest] };
  process.env.TCPTRACER_BENCH_PROF = file;
  let t: Running | undefined;
  try {
    t = await startWithRetry(mode, penv);
    if (!t) return 'no tracer';
    const c0 = sampleCpu(t.pid);
    t.child.proc.kill('SIGUSR2'); // start profiling
    await sleep(50);
    const otlp = mode === 'otlp-traces';
    await runLoadgen(env, otlp ? Math.min(count, OTLP_PROFILE_CONNECTIONS) : count, maxSeconds);
    await catchUp(t, otlp ? 90_000 : 20_000);
    const cpu = cpuDelta(c0, sampleCpu(t.pid));
    t.child.proc.kill('SIGUSR2'); // stop profiling, write the file
    const written = await waitFor(() => statSync(file).size > 0, 15_000, () => t?.child.running() ?? false, 50);
    const fin = await t.finish();
    t = undefined;
    if (!written) return `no profile written (exit ${fin.exitCode})`;
    await sleep(200); // the file is written in one call; let it land
    return {
      mode: mode === 'table' ? 'table' : mode === 'json' ? '--json' : '--otlp -q --otlp-signals logs,traces',
      file: `bench/out/tcptracer-${mode}.cpuprofile`,
      events: fin.total,
      tracerCpuS: cpu?.total ?? 0,
      threadCpuS: cpu?.threads ?? {},
      summary: summarizeProfile(file, 12),
    };
  } catch (e) {
    return (e as Error).message;
  } finally {
    delete process.env.TCPTRACER_BENCH_PROF;
    if (t) await interrupt(t.child, 5000);
  }
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const opts = parseOptions();
  const { mode } = opts;
  if (process.getuid?.() !== 0) throw new BenchError('must run as root (it loads BPF programs and creates a network namespace): sudo npm run bench');
  const skeleton = join(ROOT, 'build/Release/obj/gen/tcptracer.skel.h'); // the floor is compiled against it
  if (!existsSync(skeleton) || !existsSync(join(ROOT, 'build/Release/tcptracer_loader.node'))) {
    throw new BenchError('build/Release/obj/gen/tcptracer.skel.h or tcptracer_loader.node missing: run "./scripts/setup.sh" (or "npm run build") first');
  }
  if (!existsSync(opts.cli)) throw new BenchError(`--cli ${opts.cli}: no such file (for dist/src/cli.js run "npm run build" first)`);
  const budget = setTimeout(() => {
    log(`exceeded the time budget of ${mode.budgetS} s; stopping`);
    killAll();
    process.exit(1);
  }, mode.budgetS * 1000);

  ensureTracefs();
  const { floorError } = buildC(ROOT, OUT);
  const unavailable = new Map<ConfigName, string>();
  const configs = CONFIGS.filter((c) => !opts.only || opts.only.includes(c));
  if (floorError) unavailable.set('floor', floorError);
  if (!has('bpftrace')) unavailable.set('bpftrace', 'bpftrace not installed');

  const tmp = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'tcptracer-bench-'));
  process.on('exit', () => {
    rmSync(tmp, { recursive: true, force: true });
  });
  const env: Env = {
    root: ROOT,
    tmp,
    comm: COMM,
    cli: [process.execPath, ...opts.nodeFlags, opts.cli],
    floor: join(OUT, 'floor'),
    loadgen: join(OUT, 'loadgen'),
    btScript: join(ROOT, 'bench/tcptracer.bt'),
    receiver: undefined,
    startTimeoutMs: 30_000,
    features: features(process.execPath, opts.cli),
  };
  if (!env.features.otlpSignals) unavailable.set('otlp-traces', 'the CLI has no --otlp-signals: no spans to measure yet');
  log(`CLI flags: ${Object.entries(env.features).map(([f, on]) => `${f} ${on ? 'yes' : 'no'}`).join(', ')}`);

  const interference = foreignBpfHolders(ownPids());
  if (interference.length) log(`WARNING: other processes hold BPF programs (results will be skewed): ${interference.join('; ')}`);
  const m = machine();
  log(`${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}; ${mode.name} mode, ${mode.rounds} rounds`);

  // connections per run: from a short untraced warm-up unless given
  let count = opts.count ?? 0;
  let calibrated: number | undefined;
  if (!count) {
    const warm = await runLoadgen(env, 1_000_000_000, Math.min(2, mode.seconds));
    calibrated = warm.connections / warm.wall_s;
    count = Math.max(5000, Math.round((calibrated * mode.seconds) / 1000) * 1000);
    log(`calibration: untraced ${Math.round(calibrated)} conn/s -> ${count} connections per run`);
  }
  const maxSeconds = Math.max(30, mode.seconds * 10);
  // with --otlp the ring buffer is the export queue: after the workload the tracer still exports what it holds
  const mainWorkload = { args: [], count, maxSeconds, maxCatchUpMs: Math.max(60_000, mode.seconds * 10_000) };

  if (configs.some(isOtlp) || opts.pipeline || opts.scenarios.length) {
    try {
      env.receiver = await ReceiverClient.start(COMM);
    } catch (e) {
      unavailable.set('otlp', (e as Error).message);
    }
  }
  if (!unavailable.has('otlp')) {
    const why = await probeOtlp(env);
    if (why) unavailable.set('otlp', why);
    log(why ? `otlp unavailable: ${why}` : 'otlp: export works');
  }
  const otlpWhy = unavailable.get('otlp');
  if (otlpWhy && !unavailable.has('otlp-traces')) unavailable.set('otlp-traces', otlpWhy);

  const runs: RunResult[] = [];
  for (let round = 1; round <= mode.rounds; round++) {
    for (const c of configs) {
      if (unavailable.has(c)) continue;
      const r = await runOne(c, round, env, mainWorkload);
      runs.push(r);
      log(
        `round ${round}/${mode.rounds} ${LABELS[c]}: ${r.ok ? `${Math.round(r.connPerSec)} conn/s` : 'FAILED'}` +
          (r.expectedEvents ? `, events ${r.receivedEvents}/${r.expectedEvents}` : '') +
          (r.spansExpected !== undefined ? `, spans ${r.spansReceived ?? 0}/${r.spansExpected}` : '') +
          (r.tracerUsPerEvent !== undefined ? `, ${r.tracerUsPerEvent.toFixed(2)} µs/event` : '') +
          (r.catchUpS !== undefined ? `, catch-up ${r.catchUpS.toFixed(1)} s` : '') +
          (r.error ? ` [${r.error}]` : ''),
      );
    }
  }

  const scenarios: ScenarioReport[] = [];
  for (const plan of scenarioPlans(mode.name === 'full', (c) => !unavailable.has(c), env.features, opts.scenarios)) {
    scenarios.push(scenarioReport(plan, await runScenario(plan, env), unavailable));
  }

  let pipeline: PipelineResult;
  let recordCost: RecordCost | undefined;
  if (opts.pipeline) {
    log('OTLP pipeline alone...');
    const p = await jsonChild('bench/pipeline.ts', ['--count', String(mode.pipelineRecords), '--comm', COMM]);
    pipeline = typeof p === 'string' ? pipelineUnavailable(p) : (p as PipelineResult);
    log('OTLP record cost, encoder and SDK...');
    const c = await jsonChild('bench/otlp-record-cost.ts', []);
    if (typeof c === 'string') log(c);
    else recordCost = c as RecordCost;
  } else {
    pipeline = pipelineUnavailable('skipped (--no-pipeline)');
  }

  const profiles: ProfileReport[] = [];
  if (opts.profile) {
    for (const pm of mode.profileModes) {
      if (!configs.includes(pm) || unavailable.has(pm)) continue;
      log(`profiling ${LABELS[pm]}...`);
      const p = await profile(pm, env, count, maxSeconds);
      if (typeof p === 'string') log(`profile ${pm}: ${p}`);
      else profiles.push(p);
    }
  }
  env.receiver?.stop();

  const later = foreignBpfHolders(ownPids());
  for (const l of later) if (!interference.includes(l)) interference.push(l);

  const summaries: ConfigSummary[] = [];
  const untraced = summarize('untraced', LABELS.untraced, runs.filter((r) => r.config === 'untraced'), undefined, undefined);
  for (const c of configs) {
    summaries.push(c === 'untraced' ? untraced : summarize(c, LABELS[c], runs.filter((r) => r.config === c), unavailable.get(c), untraced));
  }
  const report: BenchReport = {
    mode: mode.name,
    machine: m,
    workload: {
      connectionsPerRun: count,
      threads: availableParallelism(),
      rounds: mode.rounds,
      eventsPerConnection: EVENTS_PER_CONNECTION,
      calibratedConnPerSec: calibrated,
      netns: true,
      cli: ['node', ...opts.nodeFlags, relative(ROOT, opts.cli)].join(' '),
    },
    features: env.features,
    interference,
    configs: summaries,
    runs,
    targets: evaluateTargets(summaries, pipeline, scenarios),
    scenarios,
    pipeline,
    recordCost,
    profiles,
    durationS: (performance.now() - t0) / 1000,
  };
  clearTimeout(budget);
  if (opts.docs) {
    const command = mode.name === 'full' ? 'npm run bench -- --full' : 'npm run bench';
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    writeFileSync(join(ROOT, 'docs/benchmarks.md'), markdown(report, command));
    log('wrote docs/benchmarks.md');
  }
  process.stdout.write(`${humanReport(report)}\n`);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  killAll();
  if (e instanceof BenchError || e instanceof StartError) {
    process.stderr.write(`bench: error: ${e.message}\n`);
  } else {
    process.stderr.write(`bench: internal error: ${(e as Error).stack ?? String(e)}\n`);
  }
  process.exitCode = 1;
}
// the receiver's IPC channel or gRPC handles must not keep the bench alive
setTimeout(() => process.exit(), 3000).unref();
