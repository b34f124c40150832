/**
 * Consistent probability sampling of connections (OpenTelemetry's
 * "TraceState: Probability Sampling"): which connections' log records and
 * spans are exported.
 *
 * A connection's trace id is derived from the connection itself
 * (./traces/ids.ts), the same on the client's host and on the server's, and
 * is a SHA-256 output: its low 56 bits are the randomness value R the
 * specification takes from a W3C Level 2 trace id. A ratio p becomes the
 * rejection threshold T = (1 - p) * 2^56, rounded as the specification's
 * algorithm does (4 significant hex digits, the precision it recommends to
 * SDKs; more for tiny ratios, where leading f digits carry no precision),
 * and a connection is kept when R >= T. Two tracers with the same ratio keep
 * the same connections without talking to each other, and one with a
 * smaller ratio keeps a subset of what a larger one keeps.
 *
 * A kept connection keeps its span and all its log records. Always kept,
 * whatever the ratio (always_off included): failed connects, connections
 * reset or aborted (their close record and their span: the connect/accept
 * record went before the reset was known, and followed the ratio), and
 * connections without derived ids (no ISNs). Their spans carry
 * `ot=th:0` (kept with probability 1, counted once); spans kept by the ratio
 * carry `ot=th:<T>`, so a backend or a downstream sampler knows each one
 * stands for 1/p connections.
 *
 * There is no parent here (each connection is a root, seen on two hosts), so
 * the parentbased_* samplers act as their root sampler. The default,
 * parentbased_always_on (as the SDK's), and always_on make no decision: every
 * connection is exported and no trace state is written.
 *
 * The decision is made in one place, {@link ConnectionSampler.decide}, which
 * the sink calls for the log records and the spans; anything that must count
 * every connection (metrics) reads the events before it.
 */
import { UsageError } from '../errors.ts';
import type { TcpEvent } from '../types.ts';
import { connectionIds, TRACE_ID } from './traces/ids.ts';

/** OTEL_TRACES_SAMPLER's values this tracer implements. */
export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** The sampling setting, resolved. */
export interface SamplingConfig {
  readonly sampler: SamplerName;
  /** The ratio kept: 1 for *always_on, 0 for *always_off, OTEL_TRACES_SAMPLER_ARG or `--sample` for the ratio samplers. */
  readonly ratio: number;
  /** Where it came from: `--sample`, `OTEL_TRACES_SAMPLER`, or `default`. */
  readonly source: string;
}

export const DEFAULT_SAMPLING: SamplingConfig = { sampler: 'parentbased_always_on', ratio: 1, source: 'default' };

/** Samplers of the specification this tracer has no use for (they need a remote service). */
const UNSUPPORTED = new Set(['jaeger_remote', 'parentbased_jaeger_remote', 'xray']);

const RATIO = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i;

function parseRatio(source: string, text: string): number {
  const value = RATIO.test(text) ? Number(text) : NaN;
  if (!(value >= 0 && value <= 1)) throw new UsageError(`${source}: expected a ratio from 0 to 1, got '${text}'`);
  return value;
}

/**
 * `--sample RATIO` (the flag, over the environment), else
 * OTEL_TRACES_SAMPLER with OTEL_TRACES_SAMPLER_ARG (a ratio sampler without
 * an argument keeps everything, as the specification says; the argument of
 * a sampler that takes none is ignored). Empty variables count as unset.
 *
 * @throws UsageError naming the flag or variable whose value cannot be used
 */
export function resolveSampling(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): SamplingConfig {
  if (flag !== undefined) return { sampler: 'traceidratio', ratio: parseRatio('argument --sample', flag.trim()), source: '--sample' };
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() ?? '';
  if (name === '') return DEFAULT_SAMPLING;
  if (UNSUPPORTED.has(name)) throw new UsageError(`OTEL_TRACES_SAMPLER: '${name}' is not supported here (expected ${SAMPLERS.join(', ')})`);
  const sampler = SAMPLERS.find((s) => s === name);
  if (sampler === undefined) {
    throw new UsageError(`OTEL_TRACES_SAMPLER: unknown sampler '${env.OTEL_TRACES_SAMPLER?.trim() ?? ''}' (expected ${SAMPLERS.join(', ')})`);
  }
  const source = 'OTEL_TRACES_SAMPLER';
  if (sampler.endsWith('always_on')) return { sampler, ratio: 1, source };
  if (sampler.endsWith('always_off')) return { sampler, ratio: 0, source };
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim() ?? '';
  return { sampler, ratio: arg === '' ? 1 : parseRatio('OTEL_TRACES_SAMPLER_ARG', arg), source };
}

/** The smallest ratio the 56 bits of randomness can express; below it a ratio keeps nothing by itself. */
export const MIN_RATIO = 2 ** -56;

/**
 * The `th` value of ratio `p` (MIN_RATIO..1): the rejection threshold's hex
 * digits, trailing zeros removed (`0` for 1), rounded to `precision`
 * significant hex digits as the specification's reference algorithm does
 * (the precision grows by one digit per four halvings of p, so that the
 * leading f digits of a tiny ratio's threshold do not eat it; at most 12).
 */
export function ratioToTh(p: number, precision = 4): string {
  if (!(p >= MIN_RATIO && p <= 1)) throw new RangeError(`ratio ${p} out of [2^-56, 1]`);
  if (p === 1) return '0';
  // frexp: p = m * 2^exp with m in [0.5, 1)
  let exp = Math.floor(Math.log2(p)) + 1;
  while (2 ** exp <= p) exp++;
  while (2 ** (exp - 1) > p) exp--;
  const digits = Math.max(1, Math.min(12, precision + Math.floor(exp / -4)));
  // 1 + the rejection probability, in [1, 2), plus half of the last digit kept: its 52 fraction bits are 13 hex digits
  const rejection = 2 - p + 2 ** (-4 * digits - 1);
  const hex = rejection >= 2 ? 'fffffffffffff' : BigInt((rejection - 1) * 2 ** 52).toString(16).padStart(13, '0');
  return hex.slice(0, digits).replace(/0+$/, '') || '0';
}

/** The 56-bit rejection threshold a `th` value (1 to 14 hex digits) stands for. */
export function thToThreshold(th: string): bigint {
  if (!/^[0-9a-f]{1,14}$/.test(th)) throw new RangeError(`bad th value '${th}'`);
  return BigInt(`0x${th.padEnd(14, '0')}`);
}

/** The trace state of a span kept with probability 1 whatever the ratio. */
export const ALWAYS_KEPT_TRACE_STATE = 'ot=th:0';

/**
 * What {@link ConnectionSampler.decide} says of an event: `null`, sampled out;
 * `undefined`, kept, with no trace state to write (no decision is made);
 * a string, kept, with this trace state.
 */
export type SamplingDecision = string | null | undefined;

/** Decides, per event, whether its connection is exported (see this module's doc). */
export class ConnectionSampler {
  /** False when every connection is kept and no trace state is written (the default, always_on). */
  readonly active: boolean;
  private readonly traceState: string | undefined;
  /** False when nothing is kept by the ratio (always_off, a ratio under 2^-56). */
  private readonly byRatio: boolean = false;
  /** The 56-bit rejection threshold, as its high 48 bits and its low 8 (a JS number holds 53 bits exactly). */
  private readonly thresholdHigh: number = 0;
  private readonly thresholdLow: number = 0;

  constructor(cfg: SamplingConfig) {
    this.active = !(cfg.sampler === 'always_on' || cfg.sampler === 'parentbased_always_on');
    if (!this.active || cfg.ratio < MIN_RATIO) return;
    const th = ratioToTh(cfg.ratio);
    this.traceState = `ot=th:${th}`;
    const threshold = thToThreshold(th);
    this.byRatio = true;
    this.thresholdHigh = Number(threshold >> 8n);
    this.thresholdLow = Number(threshold & 0xffn);
  }

  /** Whether a connection whose trace id is `bytes[offset..offset+16)` is kept by the ratio: its low 56 bits >= the threshold. */
  keepsTraceId(bytes: Buffer, offset = 0): boolean {
    if (!this.byRatio) return false;
    const high = bytes.readUIntBE(offset + 9, 6);
    return high > this.thresholdHigh || (high === this.thresholdHigh && (bytes[offset + 15] ?? 0) >= this.thresholdLow);
  }

  /**
   * The decision for `event`'s connection: the ratio on its trace id, except
   * that failed connects, resets and connections without derived ids are kept
   * (with `ot=th:0`). The same for every event of a connection, on both of its
   * hosts (a reset aside: only its close is known to be one).
   */
  decide(event: TcpEvent): SamplingDecision {
    if (!this.active) return undefined;
    if (event.type === 'failed' || event.end === 'reset') return ALWAYS_KEPT_TRACE_STATE;
    const ids = connectionIds(event);
    if (ids === undefined) return ALWAYS_KEPT_TRACE_STATE;
    return this.keepsTraceId(ids.bytes, TRACE_ID) ? this.traceState : null;
  }

  /** The events whose connection is kept: `events` itself when the sampler is not active. */
  keep(events: readonly TcpEvent[]): readonly TcpEvent[] {
    if (!this.active) return events;
    return events.filter((e) => this.decide(e) !== null);
  }
}

/** For the startup line: `sampling traceidratio 0.5 (ot=th:8 ...)`, or `sampling off` when every connection is kept. */
export function describeSampling(cfg: SamplingConfig): string {
  if (cfg.sampler === 'always_on' || cfg.sampler === 'parentbased_always_on') return `sampler ${cfg.sampler} (every connection kept)`;
  const th = cfg.ratio >= MIN_RATIO ? `, ot=th:${ratioToTh(cfg.ratio)}` : '';
  return `sampler ${cfg.sampler} ${cfg.ratio} from ${cfg.source}${th} (failed and reset connections always kept)`;
}
