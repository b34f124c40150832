/**
 * One measured run: start a configuration's tracer, run bench/out/loadgen
 * (a workload: the main connect/accept/close loop, or a scenario's variant),
 * wait until the tracer caught up, sample its CPU and memory, stop it and
 * compare what it delivered with what the workload made.
 *
 * Expected events come from the load generator's own counts: a C and an X for
 * every connection it made, an A and an X for every one its server accepted
 * (in the main workload every connection is accepted: C, A, X, X); with spans,
 * one span per C and one per A.
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOtlp, LABELS, StartError, startTracer, type ConfigName, type Env, type Running } from './configs.ts';
import { anonRssSampler, bpfMappedMB, interrupt, machineBusyS, peakRssMB, sampleCpu, start, waitFor, type CpuSample } from './proc.ts';
import type { RunResult } from './results.ts';

export class BenchError extends Error {}

export const log = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`);
};

export interface LoadgenResult {
  connections: number;
  /** Connections the server accepted (all of them, except with --reset-before-accept when some never came back). */
  accepted?: number;
  /** --reset-before-accept: accepted sockets already closed (TCP_CLOSE) when accept() returned them. */
  closed_at_accept?: number;
  wall_s: number;
  user_s: number;
  sys_s: number;
  threads: number;
  errors: number;
  last_error: string;
  timed_out: boolean;
}

export interface Workload {
  /** The scenario's name; undefined for the main workload. */
  scenario?: string;
  /** loadgen arguments besides --count, --seconds and --netns. */
  args: readonly string[];
  count: number;
  /** loadgen stops after this long whatever the count. */
  maxSeconds: number;
  /** How long the tracer may take to catch up after the workload. */
  maxCatchUpMs: number;
}

export async function runLoadgen(env: Env, count: number, maxSeconds: number, args: readonly string[] = []): Promise<LoadgenResult> {
  const c = start(env.loadgen, ['--count', String(count), '--netns', '--seconds', String(maxSeconds), ...args]);
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
export async function catchUp(t: Running, maxMs: number): Promise<number> {
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

export function cpuDelta(a: CpuSample | undefined, b: CpuSample | undefined): CpuSample | undefined {
  if (!a || !b) return undefined;
  const threads: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.threads)) threads[k] = v - (a.threads[k] ?? 0);
  return { total: b.total - a.total, user: b.user - a.user, threads };
}

/** Starts a tracer, once more after a pause if the first attempt fails (e.g. a transient EAGAIN from the verifier). */
export async function startWithRetry(config: ConfigName, env: Env): Promise<Running | undefined> {
  try {
    return await startTracer(config, env);
  } catch (e) {
    if (!(e instanceof StartError)) throw e;
    log(`${LABELS[config]} did not start (${e.message}); retrying once`);
    await sleep(1000);
    return startTracer(config, env);
  }
}

export async function runOne(config: ConfigName, round: number, env: Env, w: Workload): Promise<RunResult> {
  const base: RunResult = {
    config,
    round,
    scenario: w.scenario,
    ok: false,
    connections: 0,
    wallS: 0,
    connPerSec: 0,
    loadgenUsPerConn: 0,
    expectedEvents: 0,
    expectedByType: { connect: 0, accept: 0, close: 0 },
    receivedEvents: 0,
    receivedTotal: 0,
    byType: { connect: 0, accept: 0, close: 0 },
  };
  const receiver = isOtlp(config) ? env.receiver : undefined;
  let tracer: Running | undefined;
  let anon: ReturnType<typeof anonRssSampler> | undefined;
  try {
    tracer = await startWithRetry(config, env);
    const c0 = tracer ? sampleCpu(tracer.pid) : undefined;
    anon = tracer ? anonRssSampler(tracer.pid) : undefined;
    const rcv0 = receiver ? (await receiver.stats()).cpuS : 0;
    const busy0 = machineBusyS();
    const workloadStartMs = performance.timeOrigin + performance.now();
    const lg = await runLoadgen(env, w.count, w.maxSeconds, w.args);
    const busy1 = machineBusyS();
    const tracerDuringLoad = tracer ? (cpuDelta(c0, sampleCpu(tracer.pid))?.total ?? 0) : 0;
    const receiverDuringLoad = receiver ? (await receiver.stats()).cpuS - rcv0 : 0;
    // CPU used by anything but the load generator, the tracer (and its receiver) while the load ran
    const other = busy1 - busy0 - lg.user_s - lg.sys_s - tracerDuringLoad - receiverDuringLoad;
    base.otherCpuPct = Math.max(0, (100 * other) / (lg.wall_s * availableParallelism()));
    base.connections = lg.connections;
    base.accepted = lg.accepted ?? lg.connections;
    if (w.args.includes('--reset-before-accept') || w.args.includes('--reset-racing-accept')) base.closedAtAccept = lg.closed_at_accept;
    base.wallS = lg.wall_s;
    base.connPerSec = lg.connections / lg.wall_s;
    base.loadgenUsPerConn = ((lg.user_s + lg.sys_s) * 1e6) / lg.connections;
    if (lg.errors) base.error = `loadgen: ${lg.errors} errors (${lg.last_error})`;
    if (!tracer) {
      base.ok = true;
      return base;
    }
    base.expectedByType = { connect: lg.connections, accept: base.accepted, close: lg.connections + base.accepted };
    base.expectedEvents = 2 * (lg.connections + base.accepted);
    base.catchUpS = await catchUp(tracer, w.maxCatchUpMs);
    const cpu = cpuDelta(c0, sampleCpu(tracer.pid));
    base.peakRssMB = peakRssMB(tracer.pid);
    base.peakAnonRssMB = anon?.stop();
    base.ringbufRssMB = bpfMappedMB(tracer.pid);
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
    if (fin.spans !== undefined) {
      base.spansReceived = fin.spans;
      base.spansExpected = lg.connections + base.accepted;
    }
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
      const lastAtMs = Math.max(s.lastAtMs, s.spansLastAtMs);
      if (lastAtMs > workloadStartMs) base.lastRecordS = (lastAtMs - workloadStartMs) / 1000;
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
    anon?.stop();
    if (tracer) await interrupt(tracer.child, 5000);
  }
}
