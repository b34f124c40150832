/**
 * CPU cost per record of the OTLP path, stage by stage and end to end.
 *
 *   node bench/otlp-sink.ts [records=200000]
 *
 * Stages (same process, CPU time = user + system):
 *   map        toLogRecord()
 *   sdk-emit   toLogRecord() + Logger.emit() into a processor that only collects
 *   serialize  protobuf serialization of 512-record batches (the exporter's serializer)
 *   e2e        OtlpSink.emit() until the collector acknowledged every record; the
 *              collector runs in a child process (it does not decode), so its CPU is not counted.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import type { HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { toLogRecord } from '../src/otlp/logs/mapping.ts';
import { OtlpSink } from '../src/otlp/sink.ts';
import type { TcpEvent } from '../src/types.ts';
import { tcpEvent, tcpEvents } from '../test/fixtures/tcp-events.ts';

const EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

if (process.argv[2] === 'collector') {
  const server = new grpc.Server();
  const raw = (b: Buffer): Buffer => b;
  server.addService(
    { Export: { path: EXPORT_PATH, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    {
      Export: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
        done(null, Buffer.alloc(0));
      },
    },
  );
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(`${port}\n`);
  });
  process.stdin.on('close', () => {
    server.forceShutdown();
  });
  process.stdin.resume();
} else {
  await main(Number(process.argv[2] ?? 200_000));
}

async function main(total: number): Promise<void> {
  const events = tcpEvents(1024);
  const eventAt = (i: number): TcpEvent => events[i & 1023] ?? tcpEvent();
  const observed: HrTime = hrTime();
  const rounds = 5;
  /** Runs `body` (which handles `total` records) `rounds` times; prints the median CPU per record. */
  const measure = async (stage: string, body: () => unknown): Promise<void> => {
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const cpu = process.cpuUsage();
      await body();
      const used = process.cpuUsage(cpu);
      samples.push((used.user + used.system) / total);
    }
    samples.sort((a, b) => a - b);
    const median = samples[Math.floor(rounds / 2)] ?? NaN;
    console.log(`${stage.padEnd(10)} ${median.toFixed(2)} us CPU/record (median of ${rounds} x ${total})`);
  };

  await measure('map', () => {
    for (let i = 0; i < total; i++) toLogRecord(eventAt(i), observed);
  });

  const collected: ReadableLogRecord[] = [];
  const collector: LogRecordProcessor = {
    onEmit: (r) => {
      if (collected.length < 512) collected.push(r);
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const logger = new LoggerProvider({ processors: [collector] }).getLogger('bench');
  await measure('sdk-emit', () => {
    for (let i = 0; i < total; i++) logger.emit(toLogRecord(eventAt(i), observed));
  });

  let bytes = 0;
  await measure('serialize', () => {
    for (let done = 0; done < total; done += collected.length) bytes = ProtobufLogsSerializer.serializeRequest(collected)?.length ?? 0;
  });
  console.log(`           ${(bytes / collected.length).toFixed(0)} bytes/record on the wire`);

  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'collector'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const cfg = resolveOtlpConfig({ endpoint: `http://127.0.0.1:${line.toString().trim()}` }, {});
  const sink = new OtlpSink(cfg);
  let expected = 0;
  /** Emits `count` records in chunks of 64 (as a ring buffer poll would), keeping at most 8 batches pending. */
  const run = async (count: number): Promise<void> => {
    for (let sent = 0; sent < count; sent += 64) {
      const offset = sent & 1023;
      sink.emit(events.slice(offset, offset + 64));
      // Polled with a 1 ms timer, not spun, so that waiting costs (almost) no CPU.
      while (sink.stats().pending > 8 * cfg.maxExportBatchSize) await sleep(1);
    }
    expected += count;
    while (sink.stats().exported < expected) await sleep(1);
  };
  await run(20_000); // connect, detect the resource, warm up
  const started = performance.now();
  await measure('e2e', () => run(total));
  const seconds = (performance.now() - started) / 1000;
  const stats = sink.stats();
  console.log(`           ${Math.round((rounds * total) / seconds)} records/s; exported ${stats.exported}, dropped ${stats.droppedQueueFull + stats.droppedExportFailed}`);
  await sink.shutdown(1000);
  child.stdin.end();
}
