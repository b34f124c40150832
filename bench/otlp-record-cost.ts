/**
 * What one OTLP log record of ours costs inside the OpenTelemetry SDK, step by
 * step, without the network: the bench's synthetic events (bench/pipeline.ts)
 * made into records by src/otlp/mapping.ts with the context that points at
 * their connection's span (src/otlp/spans.ts logContext: the trace and span
 * ids derived from the ISNs, src/otlp/ids.ts), emitted through the SDK's Logger
 * (LogRecordImpl), and serialized by the SDK's ProtobufLogsSerializer (the one
 * OTLPLogExporter uses) in batches of 512, the export batch size.
 *
 *   node bench/otlp-record-cost.ts [--records N]
 *
 * Prints one JSON line: µs of CPU (user + system) per record for each step
 * (mapping; the connection ids; Logger.emit; serialization) and the protobuf
 * bytes per record. Each step is timed as the difference between passes over
 * the same events (mapping only; + ids; + emit; + emit and serialize), each
 * after a warm-up pass.
 */
import { parseArgs } from 'node:util';
import type { HrTime, LogRecord } from '@opentelemetry/api';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { toLogRecord } from '../src/otlp/mapping.ts';
import { logContext } from '../src/otlp/spans.ts';
import { syntheticBatch } from './pipeline.ts';

const BATCH = 512;

const { values } = parseArgs({ options: { records: { type: 'string', default: '300000' } } });
const records = Number(values.records);
if (!Number.isInteger(records) || records < BATCH) throw new Error(`--records: an integer >= ${BATCH}, got '${values.records}'`);

const events = syntheticBatch(4096, 0, 'loadgen');
const observed: HrTime = [Math.floor(Date.now() / 1000), 0];
let serialize = false;
let bytes = 0;
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
const provider = new LoggerProvider({ resource: resourceFromAttributes({ 'service.name': 'tcptracer' }), processors: [processor] });
const logger = provider.getLogger('tcptracer-otel');

/** µs of CPU per record for `step` over `records` events (with their span context or not), after one warm-up pass. */
function measure(step: (record: LogRecord) => void, ids = true): number {
  const pass = (): void => {
    for (let i = 0; i < records; i++) {
      const event = events[i % events.length];
      if (event) step(toLogRecord(event, observed, ids ? logContext(event) : undefined));
    }
  };
  pass();
  bytes = 0;
  const t0 = process.cpuUsage();
  pass();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / records;
}

let sink = 0;
const mapping = measure((r) => {
  sink += r.body === undefined ? 0 : 1;
}, false);
const withIds = measure((r) => {
  sink += r.body === undefined ? 0 : 1;
});
serialize = false;
const emit = measure((r) => {
  logger.emit(r);
});
serialize = true;
const all = measure((r) => {
  logger.emit(r);
});
const serialized = Math.floor(records / BATCH) * BATCH;
process.stdout.write(
  `${JSON.stringify({
    records,
    sink,
    mappingUs: mapping,
    idsUs: withIds - mapping,
    emitUs: emit - withIds,
    serializeUs: all - emit,
    totalUs: all,
    bytesPerRecord: bytes / serialized,
  })}\n`,
);
