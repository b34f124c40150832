/**
 * A minimal counting OTLP/gRPC receiver for the bench: implements
 * opentelemetry.proto.collector.logs.v1.LogsService/Export and
 * ...trace.v1.TraceService/Export on one server with @grpc/grpc-js (raw
 * Buffers, no protobuf library). Counts log records, the ones whose
 * process.executable.name is the workload's comm, per event name, and for those
 * the delay from the record's time_unix_nano (the kernel's timestamp) to
 * receipt; and spans, the workload's ones per kind (span.client, span.server).
 *
 * Runs in a process of its own (forked by bench/run.ts, IPC messages below) so
 * that its CPU is not charged to the tracer or the bench; `ReceiverClient` is
 * the parent's side.
 *
 *   child -> parent  { type: 'ready', port }
 *   parent -> child  { cmd: 'reset' } | { cmd: 'stats' } | { cmd: 'exit' }
 *   child -> parent  { type: 'stats', stats: ReceiverStats } (answer to reset and stats)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { visitExportRequest } from './otlp-wire.ts';

const LOGS_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
const TRACES_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface ReceiverStats {
  /** Log records received since the last reset. */
  records: number;
  /** Of which with process.executable.name === the workload comm. */
  matched: number;
  /** Matched records per event name (tcp.connect, tcp.accept, tcp.close). */
  byEvent: Record<string, number>;
  /** Export calls. */
  exports: number;
  /** Wall-clock ms (Unix epoch) of the first and last matched record's receipt; 0 if none. */
  firstAtMs: number;
  lastAtMs: number;
  /** Kernel timestamp -> receipt delay of matched records, ms. */
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  /** Spans received since the last reset, of which the workload's, and those per kind. */
  spans: number;
  spansMatched: number;
  spansByKind: Record<string, number>;
  /** Wall-clock ms (Unix epoch) of the last matched span's receipt; 0 if none. */
  spansLastAtMs: number;
  /** Receiver process CPU (user + system) since reset, s. */
  cpuS: number;
}

type Message = { cmd: 'reset' } | { cmd: 'stats' } | { cmd: 'exit' };
type Reply = { type: 'ready'; port: number } | { type: 'stats'; stats: ReceiverStats };

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

class Counter {
  readonly #comm: string;
  records = 0;
  matched = 0;
  exports = 0;
  byEvent: Record<string, number> = {};
  firstAtMs = 0;
  lastAtMs = 0;
  delays = new Float64Array(1 << 16);
  nDelays = 0;
  spans = 0;
  spansMatched = 0;
  spansByKind: Record<string, number> = {};
  spansLastAtMs = 0;
  cpuAtReset = process.cpuUsage();

  constructor(comm: string) {
    this.#comm = comm;
  }

  reset(): void {
    this.records = 0;
    this.matched = 0;
    this.exports = 0;
    this.byEvent = {};
    this.firstAtMs = 0;
    this.lastAtMs = 0;
    this.nDelays = 0;
    this.spans = 0;
    this.spansMatched = 0;
    this.spansByKind = {};
    this.spansLastAtMs = 0;
    this.cpuAtReset = process.cpuUsage();
  }

  onSpans(buf: Buffer): void {
    const matched = this.spansMatched;
    this.spans += visitExportRequest(
      buf,
      (_timeNs, comm, kind) => {
        if (comm !== this.#comm) return;
        this.spansMatched++;
        this.spansByKind[kind] = (this.spansByKind[kind] ?? 0) + 1;
      },
      'traces',
    );
    if (this.spansMatched > matched) this.spansLastAtMs = performance.timeOrigin + performance.now();
  }

  onRequest(buf: Buffer): void {
    const nowMs = performance.timeOrigin + performance.now();
    this.exports++;
    this.records += visitExportRequest(buf, (timeNs, comm, eventName) => {
      if (comm !== this.#comm) return;
      this.matched++;
      this.byEvent[eventName] = (this.byEvent[eventName] ?? 0) + 1;
      if (this.nDelays === this.delays.length) {
        const bigger = new Float64Array(this.delays.length * 2);
        bigger.set(this.delays);
        this.delays = bigger;
      }
      this.delays[this.nDelays++] = nowMs - timeNs / 1e6;
    });
    if (this.matched) {
      if (!this.firstAtMs) this.firstAtMs = nowMs;
      this.lastAtMs = nowMs;
    }
  }

  stats(): ReceiverStats {
    const sorted = this.delays.slice(0, this.nDelays).sort();
    const cpu = process.cpuUsage(this.cpuAtReset);
    return {
      records: this.records,
      matched: this.matched,
      byEvent: { ...this.byEvent },
      exports: this.exports,
      firstAtMs: this.firstAtMs,
      lastAtMs: this.lastAtMs,
      delayP50Ms: percentile(sorted, 50),
      delayP99Ms: percentile(sorted, 99),
      delayMaxMs: percentile(sorted, 100),
      spans: this.spans,
      spansMatched: this.spansMatched,
      spansByKind: { ...this.spansByKind },
      spansLastAtMs: this.spansLastAtMs,
      cpuS: (cpu.user + cpu.system) / 1e6,
    };
  }
}

async function serve(comm: string): Promise<void> {
  const counter = new Counter(comm);
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  const identity = (b: Buffer): Buffer => b;
  const service = (path: string, onRequest: (b: Buffer) => void): void => {
    server.addService(
      {
        Export: {
          path,
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
          try {
            onRequest(call.request);
            done(null, Buffer.alloc(0));
          } catch (e) {
            done({ code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
          }
        },
      },
    );
  };
  service(LOGS_PATH, (b) => {
    counter.onRequest(b);
  });
  service(TRACES_PATH, (b) => {
    counter.onSpans(b);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  const send = (m: Reply): void => {
    process.send?.(m);
  };
  process.on('message', (m: Message) => {
    if (m.cmd === 'reset') {
      counter.reset();
      send({ type: 'stats', stats: counter.stats() });
    } else if (m.cmd === 'stats') {
      send({ type: 'stats', stats: counter.stats() });
    } else {
      server.forceShutdown();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port });
}

/** The bench's handle on a receiver process. */
export class ReceiverClient {
  readonly child: ChildProcess;
  readonly port: number;
  #pending: ((s: ReceiverStats) => void)[] = [];

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    child.on('message', (m: Reply) => {
      if (m.type === 'stats') this.#pending.shift()?.(m.stats);
    });
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forks a receiver counting records of processes named `comm`; resolves once it listens. */
  static async start(comm: string, timeoutMs = 15_000): Promise<ReceiverClient> {
    const child = fork(fileURLToPath(import.meta.url), ['--serve', comm], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`OTLP receiver did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      child.once('message', (m: Reply) => {
        clearTimeout(timer);
        if (m.type === 'ready') resolve(m.port);
        else reject(new Error('OTLP receiver: unexpected first message'));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`OTLP receiver exited (code ${code ?? 'signal'}) before listening`));
      });
    });
    return new ReceiverClient(child, port);
  }

  #ask(cmd: 'reset' | 'stats'): Promise<ReceiverStats> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('OTLP receiver did not answer within 10 s'));
      }, 10_000);
      this.#pending.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.child.send({ cmd } satisfies Message);
    });
  }

  reset(): Promise<ReceiverStats> {
    return this.#ask('reset');
  }

  stats(): Promise<ReceiverStats> {
    return this.#ask('stats');
  }

  stop(): void {
    if (this.child.connected) this.child.send({ cmd: 'exit' } satisfies Message);
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

if (process.argv[2] === '--serve' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await serve(process.argv[3] ?? '');
}
