/**
 * One measured run: start a configuration's tracer, run bench/out/loadgen,
 * wait until the tracer caught up, sample its CPU and memory, stop it, and
 * compare what it delivered with what the workload made. Expected, from the
 * load generator's own counts: a C and an X per connection it made, an A and
 * an X per connection its server accepted; with traces, a span per C and per A.
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOtlp, LABELS, StartError, startTracer, type ConfigName, type Env, type Final, type Running } from './configs.ts';
import { anonRssSampler, bpfMappedMB, cpuDelta, interrupt, machineBusyS, sampleCpu, start, statusMB, waitFor } from './proc.ts';

export class BenchError extends Error {}

export const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

export interface Workload {
  /** loadgen arguments besides --count, --seconds and --netns. */
  args: readonly string[];
  count: number;
  /** loadgen stops after this long whatever the count. */
  maxSeconds: number;
  /** How long the tracer may take to catch up afterwards. */
  maxCatchUpMs: number;
  /** Made before the tracer starts (what exists on the host already), started with loadgen, stopped when it is done. */
  beside?: () => { start(): void; stop(): Promise<unknown> };
  /** A command prefix the tracer runs under (e.g. a mount namespace of its own). */
  wrap?: readonly string[];
}

export type Counts = Record<'connect' | 'accept' | 'close', number>;
export type Losses = Pick<Final, 'ringbufLost' | 'sockMapFull' | 'probeMissed' | 'endsUnseen' | 'otlpDropped' | 'peerLost' | 'malformed'>;

export interface RunResult extends Losses {
  config: ConfigName;
  round: number;
  /** paced: loadgen --rate. */
  rate?: number;
  ok: boolean;
  error?: string;
  connections: number;
  accepted: number;
  /** Reset scenarios: accepted sockets already closed (TCP_CLOSE) when accept() returned them. */
  closedAtAccept: number;
  wallS: number;
  connPerSec: number;
  loadgenUsPerConn: number;
  /** CPU of everything but the workload, the tracer and the receiver while the load ran, % of all CPUs. */
  otherCpuPct: number;
  expected: Counts;
  /** The workload's events delivered, per type, and all events delivered. */
  got: Counts;
  receivedTotal: number;
  tracerUsPerEvent?: number;
  tracerSysUsPerEvent?: number;
  threadUsPerEvent?: Record<string, number>;
  spansExpected?: number;
  spansReceived?: number;
  /** --sample: log records and spans sampled out (the tracer's exit line). */
  sampledOutRecords?: number;
  sampledOutSpans?: number;
  /** churn scenarios, JSON: the churn processes' events, and those with their container id. */
  churnEvents?: number;
  churnIdentified?: number;
  peakRssMB?: number;
  /** The ring buffer's mapping in the RSS, MB. */
  ringbufRssMB?: number;
  peakAnonRssMB?: number;
  catchUpS?: number;
  /** OTLP: from the workload's start to the last record or span received, s; log records/s delivered; delays. */
  lastRecordS?: number;
  otlpRecordsPerSec?: number;
  otlpDelayP50Ms?: number;
  otlpDelayP99Ms?: number;
}

interface LoadgenResult {
  connections: number;
  accepted: number;
  closed_at_accept: number;
  wall_s: number;
  user_s: number;
  sys_s: number;
  errors: number;
  last_error: string;
}

export async function runLoadgen(env: Env, count: number, maxSeconds: number, args: readonly string[] = []): Promise<LoadgenResult> {
  const c = start(env.loadgen, ['--count', String(count), '--netns', '--seconds', String(maxSeconds), ...args]);
  if (!(await waitFor(() => !c.running(), (maxSeconds + 15) * 1000))) {
    await interrupt(c, 1000);
    throw new BenchError('loadgen did not finish in time');
  }
  try {
    const r = JSON.parse(c.stdout().trim().split('\n').at(-1) ?? '') as LoadgenResult;
    if (r.connections === 0) throw new Error(r.last_error);
    return r;
  } catch (e) {
    throw new BenchError(`loadgen failed (exit ${await c.exited}): ${c.stderr().trim() || (e as Error).message}`);
  }
}

/** Waits until the tracer delivers nothing more for its stable window; seconds until its last progress. */
export async function catchUp(t: Running, maxMs: number): Promise<number> {
  const t0 = performance.now();
  let last = await t.progress();
  let lastChange = t0;
  while (performance.now() - t0 < maxMs && t.child.running()) {
    await sleep(100);
    const p = await t.progress();
    if (p !== last) [last, lastChange] = [p, performance.now()];
    else if (performance.now() - lastChange >= t.stableMs) break;
  }
  return (lastChange - t0) / 1000;
}

/** Starts a tracer, once more after a second if it failed (a transient EAGAIN from the verifier, say). */
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

export async function runOne(config: ConfigName, round: number, env: Env, w: Workload, rate?: number): Promise<RunResult> {
  const none = { connect: 0, accept: 0, close: 0 };
  const r: RunResult = { config, round, rate, ok: false, connections: 0, accepted: 0, closedAtAccept: 0, wallS: 0, connPerSec: 0, loadgenUsPerConn: 0, otherCpuPct: 0, expected: none, got: none, receivedTotal: 0 };
  const receiver = isOtlp(config) ? env.receiver : undefined;
  let tracer: Running | undefined;
  let anon: ReturnType<typeof anonRssSampler> | undefined;
  let beside: ReturnType<NonNullable<Workload['beside']>> | undefined;
  try {
    beside = w.beside?.();
    tracer = await startWithRetry(config, w.wrap ? { ...env, cli: [...w.wrap, ...env.cli] } : env);
    const c0 = tracer && sampleCpu(tracer.pid);
    anon = tracer && anonRssSampler(tracer.pid);
    const rcv0 = receiver ? (await receiver.stats()).cpuS : 0;
    const busy0 = machineBusyS();
    const startMs = performance.timeOrigin + performance.now();
    beside?.start();
    const lg = await runLoadgen(env, w.count, w.maxSeconds, w.args).finally(() => beside?.stop());
    const tracerCpu = tracer ? (cpuDelta(c0, sampleCpu(tracer.pid))?.total ?? 0) : 0;
    const receiverCpu = receiver ? (await receiver.stats()).cpuS - rcv0 : 0;
    const other = machineBusyS() - busy0 - lg.user_s - lg.sys_s - tracerCpu - receiverCpu;
    r.otherCpuPct = Math.max(0, (100 * other) / (lg.wall_s * availableParallelism()));
    Object.assign(r, { connections: lg.connections, accepted: lg.accepted, closedAtAccept: lg.closed_at_accept, wallS: lg.wall_s });
    r.connPerSec = lg.connections / lg.wall_s;
    r.loadgenUsPerConn = ((lg.user_s + lg.sys_s) * 1e6) / lg.connections;
    if (lg.errors) r.error = `loadgen: ${lg.errors} errors (${lg.last_error})`;
    if (!tracer) return { ...r, ok: true };
    r.expected = { connect: lg.connections, accept: lg.accepted, close: lg.connections + lg.accepted };
    r.catchUpS = await catchUp(tracer, w.maxCatchUpMs);
    const cpu = cpuDelta(c0, sampleCpu(tracer.pid));
    r.peakRssMB = statusMB(tracer.pid, 'VmHWM');
    r.peakAnonRssMB = anon?.stop();
    r.ringbufRssMB = bpfMappedMB(tracer.pid);
    if (!tracer.child.running()) throw new BenchError(`the tracer exited during the run (${await tracer.child.exited}): ${tracer.child.stderr().trim().split('\n').slice(-2).join(' | ')}`);
    const fin = await tracer.finish();
    tracer = undefined;
    const { ringbufLost, sockMapFull, probeMissed, endsUnseen, otlpDropped, peerLost, malformed } = fin;
    Object.assign(r, { ringbufLost, sockMapFull, probeMissed, endsUnseen, otlpDropped, peerLost, malformed, receivedTotal: fin.total, churnEvents: fin.churnEvents, churnIdentified: fin.churnIdentified });
    r.got = { connect: fin.connect, accept: fin.accept, close: fin.close };
    if (fin.spans !== undefined) [r.spansReceived, r.spansExpected] = [fin.spans, lg.connections + lg.accepted];
    if (fin.sampledOut) [r.sampledOutRecords, r.sampledOutSpans] = [fin.sampledOut.records, fin.sampledOut.spans];
    if (cpu && fin.total > 0) {
      const per = (s: number): number => (s * 1e6) / fin.total;
      r.tracerUsPerEvent = per(cpu.total);
      r.tracerSysUsPerEvent = per(Math.max(0, cpu.total - cpu.user));
      r.threadUsPerEvent = Object.fromEntries(Object.entries(cpu.threads).filter(([, v]) => v > 0).map(([k, v]) => [k, per(v)]));
    }
    if (fin.otlp) {
      const s = fin.otlp;
      const last = Math.max(s.lastAtMs, s.spansLastAtMs);
      if (last > startMs) r.lastRecordS = (last - startMs) / 1000;
      if (s.lastAtMs > startMs) r.otlpRecordsPerSec = s.matched / ((s.lastAtMs - startMs) / 1000);
      [r.otlpDelayP50Ms, r.otlpDelayP99Ms] = [s.delayP50Ms, s.delayP99Ms];
    }
    if (fin.killed) r.error = `did not exit within 30 s of SIGINT (killed): ${fin.stderrTail}`;
    else if (fin.exitCode !== 0 && config !== 'bpftrace') r.error = `exit code ${fin.exitCode}: ${fin.stderrTail}`;
    if (fin.malformed) r.error = `${fin.malformed} malformed records (the probe object and src/event.ts disagree: rebuild?)`;
    r.ok = !fin.killed && fin.total > 0;
    if (!r.ok) r.error ??= `no events received: ${fin.stderrTail}`;
    return r;
  } catch (e) {
    r.error = (e as Error).message;
    return r;
  } finally {
    await beside?.stop();
    anon?.stop();
    if (tracer) await interrupt(tracer.child, 5000);
  }
}
