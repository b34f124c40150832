/**
 * Connection spans made the SDK's way, the reference src/otlp/wire/requests.ts is
 * compared with: a TracerProvider whose IdGenerator hands out the ids derived
 * from the connection (src/otlp/traces/ids.ts), the SERVER span a child of the
 * (remote) CLIENT span.
 */
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import type { Tracer } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { RandomIdGenerator, SamplingDecision } from '@opentelemetry/sdk-trace';
import type { IdGenerator, Sampler, SamplingResult } from '@opentelemetry/sdk-trace';
import type { ConnectionSpan } from '../../src/otlp/traces/span.ts';
import { spanOptions } from './sdk-reference.ts';

/**
 * An IdGenerator that hands out ids set just before a span is started
 * ({@link next}), once each; random ones when none are set.
 */
export class PresetIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  private traceId: string | undefined;
  private spanId: string | undefined;

  /** The ids the next startSpan() takes (the trace id only matters for a span without a parent). */
  next(traceId: string | undefined, spanId: string | undefined): void {
    this.traceId = traceId;
    this.spanId = spanId;
  }

  generateTraceId(): string {
    const id = this.traceId ?? this.random.generateTraceId();
    this.traceId = undefined;
    return id;
  }

  generateSpanId(): string {
    const id = this.spanId ?? this.random.generateSpanId();
    this.spanId = undefined;
    return id;
  }
}

/**
 * A Sampler that samples every span, with the W3C trace state set just before
 * it is started ({@link next}): as a sampler that decided gives it (the SDK
 * takes the sampling result's trace state over the parent's).
 */
export class PresetTraceStateSampler implements Sampler {
  private traceState: string | undefined;

  next(traceState: string | undefined): void {
    this.traceState = traceState;
  }

  shouldSample(): SamplingResult {
    const traceState = this.traceState === undefined ? undefined : new TraceState(this.traceState);
    return traceState === undefined ? { decision: SamplingDecision.RECORD_AND_SAMPLED } : { decision: SamplingDecision.RECORD_AND_SAMPLED, traceState };
  }

  toString(): string {
    return 'PresetTraceStateSampler';
  }
}

/**
 * Starts and ends `span` through `tracer`, whose provider uses `ids` (and
 * `sampler`, for a span with a trace state): the ended span reaches the
 * provider's span processor.
 */
export function recordSpan(tracer: Tracer, ids: PresetIdGenerator, span: ConnectionSpan, sampler?: PresetTraceStateSampler): void {
  sampler?.next(span.traceState);
  let parent = ROOT_CONTEXT;
  if (span.ids === undefined) {
    ids.next(undefined, undefined);
  } else if (span.kind === SpanKind.SERVER) {
    ids.next(undefined, span.ids.serverSpanId);
    parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: span.ids.traceId,
      spanId: span.ids.clientSpanId,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
  } else {
    ids.next(span.ids.traceId, span.ids.clientSpanId);
  }
  const { startTime, endTime, attributes } = spanOptions(span);
  const made = tracer.startSpan(span.name, { kind: span.kind, startTime, attributes }, parent);
  made.setStatus(span.status);
  made.end(endTime);
}
