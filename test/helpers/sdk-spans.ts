/**
 * Connection spans made the SDK's way, the reference src/otlp/wire/requests.ts is
 * compared with: a TracerProvider whose IdGenerator hands out the ids derived
 * from the connection (src/otlp/traces/ids.ts), the SERVER span a child of the
 * (remote) CLIENT span.
 */
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import type { Tracer } from '@opentelemetry/api';
import { RandomIdGenerator } from '@opentelemetry/sdk-trace';
import type { IdGenerator } from '@opentelemetry/sdk-trace';
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
 * Starts and ends `span` through `tracer`, whose provider uses `ids`: the
 * ended span reaches the provider's span processor.
 */
export function recordSpan(tracer: Tracer, ids: PresetIdGenerator, span: ConnectionSpan): void {
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
