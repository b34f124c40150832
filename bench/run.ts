/**
 * tcptracer-otel benchmark: `npm run bench` (quick, about 2-3 minutes) or
 * `npm run bench -- --full`, as root. The npm script runs scripts/setup.sh
 * first (installs what is missing, builds); `node bench/run.ts` skips that.
 *
 * Builds bench/loadgen.c and bench/floor.c with cc into bench/out/ (every run,
 * from source; nothing binary is committed), then measures, on the same
 * loopback connect/accept/close workload, in interleaved rounds:
 * untraced, tcptracer (table), --json, --otlp -q (to a counting receiver),
 * the bpftrace peer (bench/tcptracer.bt) and the C floor (bench/floor.c).
 * Also the OTLP pipeline alone (bench/pipeline.ts) and a CPU profile of the CLI.
 *
 * Prints a human table, the targets with PASS/MISS, and as its LAST line one
 * JSON object with every figure; rewrites docs/benchmarks.md (unless --no-docs).
 *
 * Options: --full, --rounds N, --seconds S (workload length per run),
 * --count N (connections per run; skips calibration), --only a,b,c,
 * --cli PATH (the CLI to measure, default dist/src/cli.js: the installed bin, as
 * npx and the Docker image run it; src/cli.ts runs the sources, with Node's type
 * stripping loaded, ~28 MB more RSS),
 * --node-flags=FLAGS (Node/V8 flags for the measured CLI, e.g. --node-flags=--max-semi-space-size=8),
 * --no-profile, --no-pipeline, --no-docs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONFIGS, LABELS, StartError, startTracer, type ConfigName, type Env, type Running } from './configs.ts';
import { summarizeProfile } from './cpuprofile.ts';
import { ReceiverClient } from './otlp-receiver.ts';
import { unavailable, type PipelineResult } from './pipeline.ts';
import { foreignBpfHolders, interrupt, killAll, machineBusyS, ownPids, peakRssMB, sampleCpu, start, waitFor, type CpuSample } from './proc.ts';
import {
  evaluateTargets,
  humanReport,
  markdown,
  summarize,
  type BenchReport,
  type ConfigSummary,
  type Machine,
  type ProfileReport,
  type RunResult,
} from './report.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const OUT = join(ROOT, 'bench', 'out');
const COMM = 'loadgen';
const EVENTS_PER_CONNECTION = 4;

class BenchError extends Error {}

const log = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`);
};

interface Mode {
  name: 'quick' | 'full';
  rounds: number;
  seconds: number;
  pipelineRecords: number;
  budgetS: number;
  profileModes: ('table' | 'json')[];
}

function parseOptions(): {
  mode: Mode;
  count?: number;
  only?: ConfigName[];
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
      'usage: npm run bench [-- --full] [--rounds N] [--seconds S] [--count N] [--only untraced,table,json,otlp,bpftrace,floor]\n' +
        '                     [--cli PATH (default src/cli.ts; e.g. dist/src/cli.js)] [--no-profile] [--no-pipeline] [--no-docs]\n',
    );
    process.exit(0);
  }
  const full = values.full ?? false;
  const mode: Mode = full
    ? { name: 'full', rounds: 7, seconds: 8, pipelineRecords: 1_000_000, budgetS: 1800, profileModes: ['table', 'json'] }
    : { name: 'quick', rounds: 3, seconds: 1.5, pipelineRecords: 150_000, budgetS: 175, profileModes: ['table', 'json'] };
  const pos = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(n > 0)) throw new BenchError(`--${name}: expected a positive number, got '${v}'`);
    return n;
  };
  mode.rounds = Math.round(pos('rounds', values.rounds) ?? mode.rounds);
  mode.seconds = pos('seconds', values.seconds) ?? mode.seconds;
  let only: ConfigName[] | undefined;
  if (values.only !== undefined) {
    only = values.only.split(',').map((s) => s.trim()) as ConfigName[];
    for (const c of only) if (!CONFIGS.includes(c)) throw new BenchError(`--only: unknown configuration '${c}' (${CONFIGS.join(', ')})`);
    if (!only.includes('untraced')) only.unshift('untraced');
  }
  return {
    mode,
    count: pos('count', values.count),
    only,
    cli: values.cli ?? join(ROOT, 'dist/src/cli.js'),
    nodeFlags: (values['node-flags'] ?? '').split(/\s+/).filter(Boolean),
    profile: !values['no-profile'],
    pipeline: !values['no-pipeline'],
    docs: !values['no-docs'],
  };
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function has(cmd: string): boolean {
  try {
    sh('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Compiles the bench's C programs; returns the reason when the floor cannot be built. */
function buildC(): { floorError?: string } {
  mkdirSync(OUT, { recursive: true });
  const cc = has('cc') ? 'cc' : has('clang') ? 'clang' : undefined;
  if (!cc) throw new BenchError('no C compiler (cc or clang) found: install build-essential or clang');
  try {
    sh(cc, ['-O2', '-Wall', '-pthread', join(ROOT, 'bench/loadgen.c'), '-o', join(OUT, 'loadgen')]);
  } catch (e) {
    throw new BenchError(`building bench/loadgen.c failed: ${((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n')[0] ?? ''}`);
  }
  try {
    sh(cc, ['-O2', '-Wall', `-I${join(ROOT, 'bpf')}`, join(ROOT, 'bench/floor.c'), '-o', join(OUT, 'floor'), '-lbpf', '-lelf', '-lz']);
    return {};
  } catch (e) {
    return { floorError: `building bench/floor.c failed (libbpf-dev installed?): ${((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n')[0] ?? ''}` };
  }
}

function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // keep os.cpus()'s
  }
  let bpftrace = 'absent';
  try {
    bpftrace = sh('bpftrace', ['--version']).replace(/^bpftrace\s*/, '');
  } catch {
    // absent
  }
  return {
    cpu,
    cores: availableParallelism(),
    memoryGB: totalmem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    bpftrace,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

function ensureTracefs(): void {
  if (existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events')) return;
  try {
    sh('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  } catch (e) {
    throw new BenchError(`tracefs is not mounted and mounting it failed: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
}

interface LoadgenResult {
  connections: number;
  wall_s: number;
  user_s: number;
  sys_s: number;
  threads: number;
  errors: number;
  last_error: string;
  timed_out: boolean;
}

async function loadgen(count: number, maxSeconds: number): Promise<LoadgenResult> {
  const c = start(join(OUT, 'loadgen'), ['--count', String(count), '--netns', '--seconds', String(maxSeconds)]);
  const done = await waitFor(() => !c.running(), (maxSeconds + 15) * 1000);
  if (!done) {
    await interrupt(c, 1000);
    throw new BenchError('loadgen did not finish in time');
  }
  const code = await c.exited;
  const line = c.stdout().trim().split('\n').at(-1) ?? '';
  try {
    const r = JSON.parse(line) as LoadgenResult;
    if (r.connections === 0) throw new Error(r.last_error);
    return r;
  } catch (e) {
    throw new BenchError(`loadgen failed (exit ${code}): ${c.stderr().trim() || (e as Error).message}`);
  }
}

/** Waits until the tracer delivers nothing more for its stable window; returns seconds until its last progress. */
async function catchUp(t: Running, maxMs: number): Promise<number> {
  const t0 = performance.now();
  let last = await t.progress();
  let lastChange = t0;
  while (performance.now() - t0 < maxMs && t.child.running()) {
    await sleep(100);
    const p = await t.progress();
    const now = performance.now();
    if (p !== last) {
      last = p;
      lastChange = now;
    } else if (now - lastChange >= t.stableMs) {
      break;
    }
  }
  return (lastChange - t0) / 1000;
}

function cpuDelta(a: CpuSample | undefined, b: CpuSample | undefined): CpuSample | undefined {
  if (!a || !b) return undefined;
  const threads: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.threads)) threads[k] = v - (a.threads[k] ?? 0);
  return { total: b.total - a.total, user: b.user - a.user, threads };
}

/** Starts a tracer, once more after a pause if the first attempt fails (e.g. a transient EAGAIN from the verifier). */
async function startWithRetry(config: ConfigName, env: Env): Promise<Running | undefined> {
  try {
    return await startTracer(config, env);
  } catch (e) {
    if (!(e instanceof StartError)) throw e;
    log(`${LABELS[config]} did not start (${e.message}); retrying once`);
    await sleep(1000);
    return startTracer(config, env);
  }
}

async function runOne(config: ConfigName, round: number, env: Env, count: number, maxSeconds: number, maxCatchUpMs: number): Promise<RunResult> {
  const base: RunResult = {
    config,
    round,
    ok: false,
    connections: 0,
    wallS: 0,
    connPerSec: 0,
    loadgenUsPerConn: 0,
    expectedEvents: 0,
    receivedEvents: 0,
    receivedTotal: 0,
    byType: { connect: 0, accept: 0, close: 0 },
  };
  let tracer: Running | undefined;
  try {
    tracer = await startWithRetry(config, env);
    const c0 = tracer ? sampleCpu(tracer.pid) : undefined;
    const rcv0 = config === 'otlp' && env.receiver ? (await env.receiver.stats()).cpuS : 0;
    const busy0 = machineBusyS();
    const workloadStartMs = performance.timeOrigin + performance.now();
    const lg = await loadgen(count, maxSeconds);
    const busy1 = machineBusyS();
    const tracerDuringLoad = tracer ? (cpuDelta(c0, sampleCpu(tracer.pid))?.total ?? 0) : 0;
    const receiverDuringLoad = config === 'otlp' && env.receiver ? (await env.receiver.stats()).cpuS - rcv0 : 0;
    // CPU used by anything but the load generator, the tracer (and its receiver) while the load ran
    const other = busy1 - busy0 - lg.user_s - lg.sys_s - tracerDuringLoad - receiverDuringLoad;
    base.otherCpuPct = Math.max(0, (100 * other) / (lg.wall_s * availableParallelism()));
    base.connections = lg.connections;
    base.wallS = lg.wall_s;
    base.connPerSec = lg.connections / lg.wall_s;
    base.loadgenUsPerConn = ((lg.user_s + lg.sys_s) * 1e6) / lg.connections;
    if (lg.errors) base.error = `loadgen: ${lg.errors} errors (${lg.last_error})`;
    if (!tracer) {
      base.ok = true;
      return base;
    }
    base.expectedEvents = lg.connections * EVENTS_PER_CONNECTION;
    base.catchUpS = await catchUp(tracer, maxCatchUpMs);
    const cpu = cpuDelta(c0, sampleCpu(tracer.pid));
    base.peakRssMB = peakRssMB(tracer.pid);
    if (!tracer.child.running()) {
      const code = await tracer.child.exited;
      throw new BenchError(`tracer exited during the run (exit ${code}): ${tracer.child.stderr().trim().split('\n').slice(-2).join(' | ')}`);
    }
    const fin = await tracer.finish();
    tracer = undefined;
    base.receivedEvents = fin.matched;
    base.receivedTotal = fin.total;
    base.byType = { connect: fin.connect, accept: fin.accept, close: fin.close };
    base.ringbufLost = fin.ringbufLost;
    base.sockMapFull = fin.sockMapFull;
    base.probeMissed = fin.probeMissed;
    base.otlpDropped = fin.otlpDropped;
    base.peerLost = fin.peerLost;
    base.malformed = fin.malformed;
    base.exitCode = fin.exitCode;
    if (cpu && fin.total > 0) {
      base.tracerCpuS = cpu.total;
      base.tracerUsPerEvent = (cpu.total * 1e6) / fin.total;
      base.tracerSysUsPerEvent = ((cpu.total - cpu.user) * 1e6) / fin.total;
      base.threadUsPerEvent = Object.fromEntries(
        Object.entries(cpu.threads)
          .filter(([, v]) => v > 0)
          .map(([k, v]) => [k, (v * 1e6) / fin.total]),
      );
    }
    if (fin.otlp) {
      const s = fin.otlp;
      base.otlpRecordsPerSec = s.lastAtMs > workloadStartMs ? s.matched / ((s.lastAtMs - workloadStartMs) / 1000) : 0;
      base.otlpDelayP50Ms = s.delayP50Ms;
      base.otlpDelayP99Ms = s.delayP99Ms;
      base.receiverCpuS = s.cpuS;
    }
    if (fin.killed) base.error = `did not exit within 30 s of SIGINT (killed)${fin.stderrTail ? `: ${fin.stderrTail}` : ''}`;
    else if (fin.exitCode !== 0 && config !== 'bpftrace') base.error = `exit code ${fin.exitCode}: ${fin.stderrTail}`;
    base.ok = !fin.killed && fin.total > 0;
    if (fin.malformed) base.error = `${fin.malformed} malformed records (probe object and src/event.ts disagree on the layout: rebuild?)${base.error ? `; ${base.error}` : ''}`;
    if (!base.ok && !base.error) base.error = `no events received${fin.stderrTail ? `: ${fin.stderrTail}` : ''}`;
    return base;
  } catch (e) {
    base.error = (e as Error).message;
    return base;
  } finally {
    if (tracer) await interrupt(tracer.child, 5000);
  }
}

/** Does `tcptracer --otlp` deliver anything yet? undefined if yes, else why not. */
async function probeOtlp(env: Env): Promise<string | undefined> {
  if (!env.receiver) return 'no OTLP receiver';
  let t: Running | undefined;
  try {
    t = await startTracer('otlp', env);
    if (!t) return 'no tracer';
    await loadgen(200, 10);
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

async function runPipelineChild(records: number): Promise<PipelineResult> {
  const c = start(process.execPath, [join(ROOT, 'bench/pipeline.ts'), '--count', String(records), '--comm', COMM]);
  const finished = await waitFor(() => !c.running(), 150_000);
  if (!finished) await interrupt(c, 1000);
  const line = c.stdout().trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as PipelineResult;
  } catch {
    const why = finished ? c.stderr().trim().split('\n').slice(-2).join(' | ') : 'timed out';
    return unavailable(`bench/pipeline.ts failed: ${why}`);
  }
}

async function profile(mode: 'table' | 'json', env: Env, count: number, maxSeconds: number): Promise<ProfileReport | string> {
  const file = join(OUT, `tcptracer-${mode}.cpuprofile`);
  rmSync(file, { force: true });
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
    await loadgen(count, maxSeconds);
    await catchUp(t, 20_000);
    const cpu = cpuDelta(c0, sampleCpu(t.pid));
    t.child.proc.kill('SIGUSR2'); // stop profiling, write the file
    const written = await waitFor(() => existsSync(file), 15_000, () => t?.child.running() ?? false, 50);
    const fin = await t.finish();
    t = undefined;
    if (!written) return `no profile written (exit ${fin.exitCode})`;
    await sleep(200); // the file is written in one call; let it land
    return {
      mode: mode === 'table' ? 'table' : '--json',
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
  const bpfObject = join(ROOT, 'build/Release/tcptracer.bpf.o');
  if (!existsSync(bpfObject) || !existsSync(join(ROOT, 'build/Release/tcptracer_loader.node'))) {
    throw new BenchError('build/Release/tcptracer.bpf.o or tcptracer_loader.node missing: run "./scripts/setup.sh" (or "npm run build") first');
  }
  if (!existsSync(opts.cli)) throw new BenchError(`--cli ${opts.cli}: no such file (for dist/src/cli.js run "npm run build" first)`);
  const budget = setTimeout(() => {
    log(`exceeded the time budget of ${mode.budgetS} s; stopping`);
    killAll();
    process.exit(1);
  }, mode.budgetS * 1000);

  ensureTracefs();
  const { floorError } = buildC();
  const unavailable = new Map<ConfigName, string>();
  if (floorError) unavailable.set('floor', floorError);
  if (!has('bpftrace')) unavailable.set('bpftrace', 'bpftrace not installed');
  const configs = CONFIGS.filter((c) => !opts.only || opts.only.includes(c));

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
    bpfObject,
    btScript: join(ROOT, 'bench/tcptracer.bt'),
    receiver: undefined,
    startTimeoutMs: 30_000,
  };

  const interference = foreignBpfHolders(ownPids());
  if (interference.length) log(`WARNING: other processes hold BPF programs (results will be skewed): ${interference.join('; ')}`);
  const m = machine();
  log(`${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}; ${mode.name} mode, ${mode.rounds} rounds`);

  // connections per run: from a short untraced warm-up unless given
  let count = opts.count ?? 0;
  let calibrated: number | undefined;
  if (!count) {
    const warm = await loadgen(1_000_000_000, Math.min(2, mode.seconds));
    calibrated = warm.connections / warm.wall_s;
    count = Math.max(5000, Math.round((calibrated * mode.seconds) / 1000) * 1000);
    log(`calibration: untraced ${Math.round(calibrated)} conn/s -> ${count} connections per run`);
  }
  const maxSeconds = Math.max(30, mode.seconds * 10);
  const maxCatchUpMs = Math.max(15_000, mode.seconds * 5000);

  if (configs.includes('otlp') || opts.pipeline) {
    try {
      env.receiver = await ReceiverClient.start(COMM);
    } catch (e) {
      unavailable.set('otlp', (e as Error).message);
    }
  }
  if (configs.includes('otlp') && !unavailable.has('otlp')) {
    const why = await probeOtlp(env);
    if (why) unavailable.set('otlp', why);
    log(why ? `otlp unavailable: ${why}` : 'otlp: export works');
  }

  const runs: RunResult[] = [];
  for (let round = 1; round <= mode.rounds; round++) {
    for (const c of configs) {
      if (unavailable.has(c)) continue;
      const r = await runOne(c, round, env, count, maxSeconds, maxCatchUpMs);
      runs.push(r);
      log(
        `round ${round}/${mode.rounds} ${LABELS[c]}: ${r.ok ? `${Math.round(r.connPerSec)} conn/s` : 'FAILED'}` +
          (r.expectedEvents ? `, events ${r.receivedEvents}/${r.expectedEvents}` : '') +
          (r.tracerUsPerEvent !== undefined ? `, ${r.tracerUsPerEvent.toFixed(2)} µs/event` : '') +
          (r.error ? ` [${r.error}]` : ''),
      );
    }
  }

  let pipeline: PipelineResult;
  if (opts.pipeline) {
    log('OTLP pipeline alone...');
    pipeline = await runPipelineChild(mode.pipelineRecords);
  } else {
    pipeline = { available: false, reason: 'skipped (--no-pipeline)', records: 0, delivered: 0, seconds: 0, recordsPerSec: 0, cpuUsPerRecord: 0, peakRssMB: 0, droppedQueueFull: 0, droppedExportFailed: 0, delayP50Ms: 0, delayP99Ms: 0, receiverCpuS: 0 };
  }
  env.receiver?.stop();

  const profiles: ProfileReport[] = [];
  if (opts.profile) {
    for (const pm of mode.profileModes) {
      if (!configs.includes(pm)) continue;
      log(`profiling tcptracer ${pm === 'json' ? '--json' : '(table)'}...`);
      const p = await profile(pm, env, count, maxSeconds);
      if (typeof p === 'string') log(`profile ${pm}: ${p}`);
      else profiles.push(p);
    }
  }

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
    interference,
    configs: summaries,
    runs,
    targets: evaluateTargets(summaries, pipeline),
    pipeline,
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
