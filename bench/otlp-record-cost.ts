/**
 * What one OTLP log record of ours costs in CPU, step by step, without the
 * network, on the path the tracer takes and on the OpenTelemetry SDK's stock
 * path as the reference, side by side in one run. Both start from the bench's
 * synthetic events (bench/pipeline.ts: C, A, X, X per connection):
 *
 *   encoder (the tracer's path: src/otlp/sink.ts -> src/otlp/wire/requests.ts)
 *     mapping   eventAttributes + logBody (src/otlp/logs/mapping.ts)
 *     ids       connectionIds (src/otlp/traces/ids.ts: SHA-256 of the ISNs, cached per connection)
 *     encode    a LogItem {resource, event, observedNs} per event, LogsEncoder.encode
 *               per batch of 512 (the export batch size); it maps and looks the
 *               ids up itself: its step is what it adds to mapping + ids
 *   sdk (stock: LoggerProvider -> ProtobufLogsSerializer, what OTLPLogExporter uses)
 *     mapping   toLogRecord without a context
 *     ids       + logContext (the connection ids and the span context)
 *     emit      + Logger.emit (LogRecordImpl) into a processor that batches by 512
 *     serialize + ProtobufLogsSerializer.serializeRequest per batch
 *
 *   node bench/otlp-record-cost.ts [--records N] [--passes P]
 *
 * Each step is timed as the difference between passes over the same events
 * (mapping; + ids; + the rest), µs of CPU (user + system) per record. One round
 * runs every pass once, the two paths interleaved; a warm-up round first, then
 * P rounds, medians. Before each pass the events' ISNs are salted anew, so that
 * every pass sees connections new to the ids cache, as the tracer does: one
 * SHA-256 per connection, then cache hits for its other records.
 *
 * Prints one JSON line: { records, passes, encoder: { mappingUs, idsUs,
 * encodeUs, totalUs, bytesPerRecord }, sdk: { mappingUs, idsUs, emitUs,
 * serializeUs, totalUs, bytesPerRecord }, ratio (encoder / sdk total),
 * sameBytes (one batch encoded both ways, byte for byte) }.
 */
import { parseArgs } from 'node:util';
import type { HrTime } from '@opentelemetry/api';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { LogsEncoder, type LogItem } from '../src/otlp/wire/requests.ts';
import { connectionIds } from '../src/otlp/traces/ids.ts';
import { logBody } from '../src/otlp/logs/record.ts';
import { eventAttributes, logContext, toLogRecord } from '../test/helpers/sdk-reference.ts';
import type { TcpEvent } from '../src/types.ts';
import { PACKAGE_NAME, packageVersion } from '../src/version.ts';
import { syntheticBatch } from './pipeline.ts';
import { spread } from './tables.ts';

const BATCH = 512;

const { values } = parseArgs({ options: { records: { type: 'string', default: '100000' }, passes: { type: 'string', default: '5' } } });
const records = Number(values.records);
const passes = Number(values.passes);
if (!Number.isInteger(records) || records < BATCH) throw new Error(`--records: an integer >= ${BATCH}, got '${values.records}'`);
if (!Number.isInteger(passes) || passes < 1) throw new Error(`--passes: a positive integer, got '${values.passes}'`);

// distinct connections for the whole pass, as the tracer sees them
const events = syntheticBatch(records, 0, 'loadgen');
const resource = resourceFromAttributes({ 'service.name': 'tcptracer' });
const scope = { name: PACKAGE_NAME, version: packageVersion() };
const observed: HrTime = [Math.floor(Date.now() / 1000), 0];
const observedNs = BigInt(observed[0]) * 1_000_000_000n;

let salt = 0;
/** New ISNs for every connection (both ends alike: the XOR keeps client local = server peer). */
function resalt(): void {
  salt = (salt + 0x61c88647) >>> 0;
  for (const e of events) {
    const m = e as { localIsn: number; peerIsn: number };
    m.localIsn = (m.localIsn ^ salt) >>> 0;
    m.peerIsn = (m.peerIsn ^ salt) >>> 0;
  }
}

let sink = 0;
let bytes = 0;
/** What the mapping passes made, kept (a ring of 1024): no allocation may be optimized away. */
const kept: unknown[] = new Array<unknown>(1024);
let k = 0;
const keep = (x: unknown): void => {
  kept[k++ & 1023] = x;
};

// stock path: the SDK's Logger, a processor batching by 512, the SDK's serializer
let serialize = false;
let batch: ReadableLogRecord[] = [];
const processor: LogRecordProcessor = {
  onEmit(record: ReadableLogRecord) {
    batch.push(record);
    if (batch.length < BATCH) return;
    if (serialize) bytes += ProtobufLogsSerializer.serializeRequest(batch)?.length ?? 0;
    batch = [];
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};
const logger = new LoggerProvider({ resource, processors: [processor] }).getLogger(scope.name, scope.version);
const encoder = new LogsEncoder(scope);

type Pass = () => void;
const PASSES: Record<string, Pass> = {
  'encoder.mapping': () => {
    for (const e of events) {
      keep(eventAttributes(e));
      sink += logBody(e).length;
    }
  },
  'encoder.ids': () => {
    for (const e of events) {
      keep(eventAttributes(e));
      sink += logBody(e).length;
      keep(connectionIds(e));
    }
  },
  'encoder.all': () => {
    let items: LogItem[] = [];
    for (const event of events) {
      items.push({ resource, event, observedNs });
      if (items.length < BATCH) continue;
      bytes += encoder.encode(items).length;
      items = [];
    }
  },
  'sdk.mapping': () => {
    for (const e of events) keep(toLogRecord(e, observed, undefined));
  },
  'sdk.ids': () => {
    for (const e of events) keep(toLogRecord(e, observed, logContext(e)));
  },
  'sdk.emit': () => {
    serialize = false;
    for (const e of events) logger.emit(toLogRecord(e, observed, logContext(e)));
    batch = [];
  },
  'sdk.all': () => {
    serialize = true;
    for (const e of events) logger.emit(toLogRecord(e, observed, logContext(e)));
    batch = [];
  },
};

/** µs of CPU per record of one pass; bytes per record encoded, where the pass encodes. */
function timed(pass: Pass): { us: number; bytes: number } {
  resalt();
  bytes = 0;
  const t0 = process.cpuUsage();
  pass();
  const t = process.cpuUsage(t0);
  return { us: (t.user + t.system) / records, bytes: bytes / (Math.floor(records / BATCH) * BATCH) };
}

const samples: Record<string, number[]> = {};
const perRecord: Record<string, number> = {};
for (let round = 0; round <= passes; round++) {
  for (const [name, pass] of Object.entries(PASSES)) {
    const r = timed(pass);
    if (round === 0) continue; // warm-up
    (samples[name] ??= []).push(r.us);
    if (r.bytes) perRecord[name] = r.bytes;
  }
}
const med = (name: string): number => spread(samples[name] ?? [])?.median ?? NaN;

/** The same batch both ways, byte for byte. */
function sameBytes(): boolean {
  const some: TcpEvent[] = events.slice(0, BATCH);
  const emitted: ReadableLogRecord[] = [];
  const capture: LogRecordProcessor = { onEmit: (r) => emitted.push(r), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
  const one = new LoggerProvider({ resource, processors: [capture] }).getLogger(scope.name, scope.version);
  for (const e of some) one.emit(toLogRecord(e, observed, logContext(e)));
  const stock = ProtobufLogsSerializer.serializeRequest(emitted);
  const ours = encoder.encode(some.map((event) => ({ resource, event, observedNs })));
  return stock !== undefined && Buffer.from(ours).equals(Buffer.from(stock));
}

const enc = { mapping: med('encoder.mapping'), ids: med('encoder.ids'), all: med('encoder.all') };
const sdk = { mapping: med('sdk.mapping'), ids: med('sdk.ids'), emit: med('sdk.emit'), all: med('sdk.all') };
process.stdout.write(
  `${JSON.stringify({
    records,
    passes,
    sink,
    encoder: {
      mappingUs: enc.mapping,
      idsUs: enc.ids - enc.mapping,
      encodeUs: enc.all - enc.ids,
      totalUs: enc.all,
      bytesPerRecord: perRecord['encoder.all'] ?? 0,
    },
    sdk: {
      mappingUs: sdk.mapping,
      idsUs: sdk.ids - sdk.mapping,
      emitUs: sdk.emit - sdk.ids,
      serializeUs: sdk.all - sdk.emit,
      totalUs: sdk.all,
      bytesPerRecord: perRecord['sdk.all'] ?? 0,
    },
    ratio: enc.all / sdk.all,
    sameBytes: sameBytes(),
  })}\n`,
);
