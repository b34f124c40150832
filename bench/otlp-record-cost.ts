/**
 * CPU per OTLP log record without the network, side by side in one process:
 * the tracer's path (src/otlp/wire/requests.ts: LogsEncoder.encode of LogItems, which
 * maps each event and looks its connection ids up itself) and the
 * OpenTelemetry SDK's stock path as the reference (toLogRecord with the
 * connection's context, Logger.emit, ProtobufLogsSerializer per batch), both
 * in batches of 512 (the export batch size), from the tests' connections
 * (test/fixtures/tcp-events.ts: C, A, X, X each). Every pass salts the ISNs
 * anew, so that it sees new connections as the tracer does (one SHA-256 per
 * connection, then cache hits). A warm-up round, then medians of `passes`
 * rounds, the two paths interleaved.
 *
 *   node bench/otlp-record-cost.ts [records] [passes]
 */
import type { HrTime } from '@opentelemetry/api';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { LogsEncoder } from '../src/otlp/wire/requests.ts';
import { logContext, toLogRecord } from '../test/helpers/sdk-reference.ts';
import type { TcpEvent } from '../src/types.ts';
import { PACKAGE_NAME, packageVersion } from '../src/version.ts';
import { connections } from '../test/fixtures/tcp-events.ts';

export interface RecordCost {
  records: number;
  passes: number;
  /** CPU (user + system) µs and bytes on the wire per record. */
  encoderUs: number;
  sdkUs: number;
  encoderBytes: number;
  sdkBytes: number;
  /** One batch encoded both ways: byte for byte the same. */
  sameBytes: boolean;
}

const BATCH = 512;

export function recordCost(records = 100_000, passes = 5): RecordCost {
  const events = connections(Math.ceil(records / 4)).slice(0, records) as { -readonly [K in keyof TcpEvent]: TcpEvent[K] }[];
  const resource = resourceFromAttributes({ 'service.name': 'tcptracer' });
  const scope = { name: PACKAGE_NAME, version: packageVersion() };
  const observed: HrTime = [Math.floor(Date.now() / 1000), 0];
  const encoder = new LogsEncoder(scope);
  let batch: ReadableLogRecord[] = [];
  let bytes = 0;
  const logger = new LoggerProvider({
    resource,
    processors: [{ onEmit: (r) => batch.push(r), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() }],
  }).getLogger(scope.name, scope.version);
  const sdk = (some: readonly TcpEvent[]): Uint8Array | undefined => {
    batch = [];
    for (const e of some) logger.emit(toLogRecord(e, observed, logContext(e)));
    return ProtobufLogsSerializer.serializeRequest(batch);
  };
  const ours = (some: readonly TcpEvent[]): Uint8Array => encoder.encode(some.map((event) => ({ resource, event, observedNs: BigInt(observed[0]) * 1_000_000_000n })));
  let salt = 0;
  /** µs of CPU and bytes per record of one pass over all events. */
  const pass = (encode: (some: readonly TcpEvent[]) => Uint8Array | undefined): { us: number; bytes: number } => {
    salt = (salt + 0x61c88647) >>> 0;
    // both ends of a connection alike: the client's local ISN stays the server's peer ISN
    for (const e of events) [e.localIsn, e.peerIsn] = [(e.localIsn ^ salt) >>> 0, (e.peerIsn ^ salt) >>> 0];
    bytes = 0;
    const t0 = process.cpuUsage();
    for (let i = 0; i + BATCH <= events.length; i += BATCH) bytes += encode(events.slice(i, i + BATCH))?.length ?? 0;
    const t = process.cpuUsage(t0);
    const n = events.length - (events.length % BATCH);
    return { us: (t.user + t.system) / n, bytes: bytes / n };
  };
  const samples = { encoder: [] as number[], sdk: [] as number[] };
  const sizes = { encoder: 0, sdk: 0 };
  for (let round = 0; round <= passes; round++) {
    for (const [name, encode] of [['encoder', ours], ['sdk', sdk]] as const) {
      const r = pass(encode);
      if (round > 0) samples[name].push(r.us); // round 0: warm-up
      sizes[name] = r.bytes;
    }
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
  const first = events.slice(0, BATCH);
  const stock = sdk(first);
  return {
    records,
    passes,
    encoderUs: median(samples.encoder),
    sdkUs: median(samples.sdk),
    encoderBytes: sizes.encoder,
    sdkBytes: sizes.sdk,
    sameBytes: stock !== undefined && Buffer.from(ours(first)).equals(Buffer.from(stock)),
  };
}

if (import.meta.main) {
  const c = recordCost(Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 5));
  process.stdout.write(
    `one log record, no network (${c.records} records a pass, medians of ${c.passes} passes):\n` +
      `  tracer (LogsEncoder) ${c.encoderUs.toFixed(2)} µs CPU, ${c.encoderBytes.toFixed(1)} bytes\n` +
      `  SDK (Logger.emit + ProtobufLogsSerializer) ${c.sdkUs.toFixed(2)} µs CPU, ${c.sdkBytes.toFixed(1)} bytes\n` +
      `  tracer / SDK ${(c.encoderUs / c.sdkUs).toFixed(2)}; a batch encoded both ways: ${c.sameBytes ? 'the same bytes' : 'BYTES DIFFER'}\n`,
  );
}
