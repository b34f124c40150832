/**
 * The bench's OTLP/gRPC receiver: LogsService/Export, TraceService/Export and
 * MetricsService/Export on one port (@grpc/grpc-js, raw buffers). It counts log
 * records and spans, and those whose process.executable.name (the record's
 * attribute, else its resource's) is the workload's comm: log records per
 * event name, with the delay from each one's time_unix_nano (the kernel's
 * time) to its receipt. Of metrics it keeps the latest point of each series of
 * tcptracer.connections and tcptracer.connections.open (cumulative: the
 * tracer's totals since it started), summed per tcptracer.connection.role:
 * every connection of the host (metrics carry no process) but the tracer's own
 * export connection to this receiver (its server side, server.port ours).
 *
 * It reads the protobuf wire format itself, only the fields it counts, to stay
 * far cheaper than the tracer it measures (test/fixtures/otlp-collector.ts
 * decodes and keeps whole messages: several µs and hundreds of bytes a record).
 * It runs in a process of its own, so that its CPU is nobody's but its own;
 * `Receiver` is the bench's handle on it (IPC: reset, stats).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';

export interface ReceiverStats {
  /** Log records since the reset; of those, the workload's; the workload's per event name. */
  records: number;
  matched: number;
  byEvent: Record<string, number>;
  /** Wall-clock ms (epoch) of the last receipt of a workload log record, of a workload span; 0 if none. */
  lastAtMs: number;
  spansLastAtMs: number;
  /** Kernel time -> receipt of the workload's log records, ms (with stats(true) only: the sort is not cheap). */
  delayP50Ms: number;
  delayP99Ms: number;
  spans: number;
  spansMatched: number;
  /** The receiver's own CPU since the reset, s. */
  cpuS: number;
  /** Metric data points received; the latest tcptracer.connections and .open per role, summed over their series. */
  metricPoints: number;
  connections: Roles;
  open: Roles;
}

export interface Roles {
  client: number;
  server: number;
}

/** Calls fn(field, wire type, start, end) for each field of the message in b[start, end). */
function fields(b: Buffer, start: number, end: number, fn: (field: number, wire: number, s: number, e: number) => void): void {
  let p = start;
  const varint = (): number => {
    let v = 0;
    for (let mul = 1; ; mul *= 128) {
      const x = b[p++] ?? 0;
      v += (x & 0x7f) * mul;
      if (x < 0x80 || p >= end) return v;
    }
  };
  while (p < end) {
    const tag = varint();
    const wire = tag & 7;
    let s = p;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const len = varint();
      s = p;
      p += len;
    } else throw new Error(`unsupported wire type ${wire}`);
    fn(tag >>> 3, wire, s, p);
  }
}

const COMM_KEY = Buffer.from('process.executable.name');

/** The value of a KeyValue if its key is `key` (a string value). */
function valueOf(b: Buffer, s: number, e: number, key: Buffer): string | undefined {
  let is = false;
  let v: string | undefined;
  fields(b, s, e, (f, _w, vs, ve) => {
    if (f === 1) is = ve - vs === key.length && b.compare(key, 0, key.length, vs, ve) === 0;
    // AnyValue: string_value = 1, int_value = 3 (a varint: its bytes, decoded below)
    else if (f === 2 && is) fields(b, vs, ve, (g, _x, ss, se) => (v = g === 1 ? b.toString('utf8', ss, se) : g === 3 ? String(varintAt(b, ss)) : v));
  });
  return v;
}

/** The varint at b[p] (int_value: the ports and counts here are small and positive). */
function varintAt(b: Buffer, p: number): number {
  let v = 0;
  for (let mul = 1, x = 0x80; x >= 0x80; mul *= 128) {
    x = b[p++] ?? 0;
    v += (x & 0x7f) * mul;
  }
  return v;
}

/**
 * For each log record of an ExportLogsServiceRequest, or span of an
 * ExportTraceServiceRequest: visit(time ns, comm, event name). Both nest alike:
 * request.resource_* = 1 { resource = 1 { attributes = 1 }, scope_* = 2 { records = 2 } };
 * LogRecord: time_unix_nano = 1, attributes = 6, event_name = 12; Span: end_time_unix_nano = 8, attributes = 9.
 */
function visit(b: Buffer, signal: 'logs' | 'traces', fn: (timeNs: number, comm: string, name: string) => void): number {
  const [TIME, ATTRS, NAME] = signal === 'logs' ? [1, 6, 12] : [8, 9, -1];
  let n = 0;
  fields(b, 0, b.length, (f, _w, rs, re) => {
    if (f !== 1) return;
    let resourceComm = '';
    fields(b, rs, re, (g, _x, s, e) => {
      if (g === 1) fields(b, s, e, (h, _y, as, ae) => (resourceComm = (h === 1 && valueOf(b, as, ae, COMM_KEY)) || resourceComm));
      if (g !== 2) return;
      fields(b, s, e, (h, _y, ls, le) => {
        if (h !== 2) return;
        n++;
        let time = 0;
        let comm: string | undefined;
        let name = '';
        fields(b, ls, le, (i, wire, vs, ve) => {
          if (i === TIME && wire === 1) time = b.readUInt32LE(vs) + b.readUInt32LE(vs + 4) * 2 ** 32;
          else if (i === NAME && wire === 2) name = b.toString('utf8', vs, ve);
          else if (i === ATTRS && wire === 2) comm ??= valueOf(b, vs, ve, COMM_KEY);
        });
        fn(time, comm ?? resourceComm, name);
      });
    });
  });
  return n;
}

const [CONNECTIONS, OPEN] = ['tcptracer.connections', 'tcptracer.connections.open'];
const ROLE_KEY = Buffer.from('tcptracer.connection.role');
const PORT_KEY = Buffer.from('server.port');

interface SeriesPoint {
  metric: string;
  role: string;
  port: string;
  timeNs: number;
  value: number;
}

/**
 * For each data point of a Sum metric named in `names` of an ExportMetricsServiceRequest: fn(series key, point).
 * request.resource_metrics = 1 { scope_metrics = 2 { metrics = 2 { name = 1, sum = 7 { data_points = 1 } } } };
 * NumberDataPoint: time_unix_nano = 3, as_double = 4, as_int = 6, attributes = 7. Returns the data points of every metric.
 */
function visitMetrics(b: Buffer, names: readonly string[], fn: (key: string, p: SeriesPoint) => void): number {
  let n = 0;
  const points = (ms: number, me: number, metric: string): void => {
    fields(b, ms, me, (h, _w, ps, pe) => {
      if (h !== 1) return;
      n++;
      if (!names.includes(metric)) return;
      const p: SeriesPoint = { metric, role: '', port: '', timeNs: 0, value: 0 };
      const attrs: string[] = [];
      fields(b, ps, pe, (i, wire, vs, ve) => {
        if (i === 3 && wire === 1) p.timeNs = b.readUInt32LE(vs) + b.readUInt32LE(vs + 4) * 2 ** 32;
        else if (i === 4 && wire === 1) p.value = b.readDoubleLE(vs);
        else if (i === 6 && wire === 1) p.value = Number(b.readBigInt64LE(vs));
        else if (i === 7 && wire === 2) {
          attrs.push(b.toString('latin1', vs, ve));
          p.role = valueOf(b, vs, ve, ROLE_KEY) ?? p.role;
          p.port = valueOf(b, vs, ve, PORT_KEY) ?? p.port;
        }
      });
      fn(`${metric}\0${attrs.sort().join('\0')}`, p);
    });
  };
  fields(b, 0, b.length, (f, _w, rs, re) => {
    if (f !== 1) return;
    fields(b, rs, re, (g, _x, ss, se) => {
      if (g !== 2) return;
      fields(b, ss, se, (h, _y, ms, me) => {
        if (h !== 2) return;
        let name = '';
        const data: [number, number, number][] = [];
        fields(b, ms, me, (i, _z, vs, ve) => {
          if (i === 1) name = b.toString('utf8', vs, ve);
          else if ([5, 7, 9, 10, 11].includes(i)) data.push([i, vs, ve]);
        });
        for (const [kind, vs, ve] of data) {
          if (kind === 7) points(vs, ve, name);
          else {
            // gauge, histograms, summary: counted only
            fields(b, vs, ve, (j) => {
              if (j === 1) n++;
            });
          }
        }
      });
    });
  });
  return n;
}

function serve(comm: string): void {
  let ownPort = '';
  let s: ReceiverStats;
  let delays: number[];
  let cpu0: NodeJS.CpuUsage;
  let series: Map<string, SeriesPoint>;
  const reset = (): void => {
    const roles = (): Roles => ({ client: 0, server: 0 });
    s = { records: 0, matched: 0, byEvent: {}, lastAtMs: 0, spansLastAtMs: 0, delayP50Ms: 0, delayP99Ms: 0, spans: 0, spansMatched: 0, cpuS: 0, metricPoints: 0, connections: roles(), open: roles() };
    series = new Map();
    delays = [];
    cpu0 = process.cpuUsage();
  };
  reset();
  const onLogs = (b: Buffer): void => {
    const now = performance.timeOrigin + performance.now();
    s.records += visit(b, 'logs', (t, c, name) => {
      if (c !== comm) return;
      s.matched++;
      s.byEvent[name] = (s.byEvent[name] ?? 0) + 1;
      s.lastAtMs = now;
      delays.push(now - t / 1e6);
    });
  };
  const onSpans = (b: Buffer): void => {
    const now = performance.timeOrigin + performance.now();
    s.spans += visit(b, 'traces', (_t, c) => {
      if (c !== comm) return;
      s.spansMatched++;
      s.spansLastAtMs = now;
    });
  };
  const onMetrics = (b: Buffer): void => {
    s.metricPoints += visitMetrics(b, [CONNECTIONS, OPEN], (key, p) => {
      const last = series.get(key);
      // the tracer's own export connection, accepted here, is not the workload's
      if ((last && last.timeNs > p.timeNs) || (p.role === 'server' && p.port === ownPort)) return;
      const sums = p.metric === CONNECTIONS ? s.connections : s.open;
      if (p.role === 'client' || p.role === 'server') sums[p.role] += p.value - (last?.value ?? 0);
      series.set(key, p);
    });
  };
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  const raw = (x: Buffer): Buffer => x;
  for (const [path, on] of [['logs.v1.LogsService', onLogs], ['trace.v1.TraceService', onSpans], ['metrics.v1.MetricsService', onMetrics]] as const) {
    const method = { path: `/opentelemetry.proto.collector.${path}/Export`, requestStream: false, responseStream: false };
    server.addService(
      { Export: { ...method, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
          try {
            on(call.request);
            done(null, Buffer.alloc(0));
          } catch (e) {
            done({ code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
          }
        },
      },
    );
  }
  process.on('message', (m: 'reset' | 'stats' | 'final') => {
    if (m === 'reset') reset();
    const sorted = m === 'final' ? Float64Array.from(delays).sort() : new Float64Array();
    const at = (q: number): number => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0;
    const cpu = process.cpuUsage(cpu0);
    process.send?.({ ...s, delayP50Ms: at(0.5), delayP99Ms: at(0.99), cpuS: (cpu.user + cpu.system) / 1e6 });
  });
  process.on('disconnect', () => process.exit(0));
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    ownPort = String(port);
    process.send?.(port);
  });
}

/** The bench's handle on a receiver process counting the records of processes named `comm`. */
export class Receiver {
  readonly #child: ChildProcess;
  readonly endpoint: string;
  #pending: ((s: ReceiverStats) => void)[] = [];

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.endpoint = `http://127.0.0.1:${port}`;
    child.on('message', (m: ReceiverStats) => this.#pending.shift()?.(m));
  }

  static async start(comm: string): Promise<Receiver> {
    const child = fork(fileURLToPath(import.meta.url), ['--serve', comm], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => {
        reject(new Error(`the OTLP receiver exited (${code ?? 'signal'}) before listening`));
      });
      setTimeout(() => {
        reject(new Error('the OTLP receiver did not listen within 15 s'));
      }, 15_000).unref();
    });
    return new Receiver(child, port);
  }

  #ask(m: 'reset' | 'stats' | 'final'): Promise<ReceiverStats> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('the OTLP receiver did not answer within 10 s'));
      }, 10_000);
      this.#pending.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.#child.send(m);
    });
  }

  reset(): Promise<ReceiverStats> {
    return this.#ask('reset');
  }

  /** With `delays`, the delay percentiles too. */
  stats(delays = false): Promise<ReceiverStats> {
    return this.#ask(delays ? 'final' : 'stats');
  }

  stop(): void {
    if (this.#child.connected) this.#child.disconnect();
  }
}

if (process.argv[2] === '--serve' && import.meta.main) serve(process.argv[3] ?? '');
