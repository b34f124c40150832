/**
 * Just enough of the protobuf wire format to count the log records of an OTLP
 * ExportLogsServiceRequest (or the spans of an ExportTraceServiceRequest), read
 * each one's time, name and process.executable.name, without building objects
 * (the bench's receiver must stay far cheaper than the tracer it measures;
 * test/fixtures/otlp-collector.ts decodes whole messages with protobufjs, which
 * costs several µs per record).
 *
 * Field numbers (opentelemetry/proto, OTLP 1.x); logs and traces nest alike:
 *   Export{Logs,Trace}ServiceRequest.resource_{logs,spans} = 1
 *   Resource{Logs,Spans}.resource = 1, scope_{logs,spans} = 2; Resource.attributes = 1
 *   Scope{Logs,Spans}.{log_records,spans} = 2
 *   LogRecord.time_unix_nano = 1 (fixed64), attributes = 6, event_name = 12
 *   Span.kind = 6 (varint), end_time_unix_nano = 8 (fixed64), attributes = 9
 *   KeyValue.key = 1, value = 2; AnyValue.string_value = 1
 * process.executable.name is taken from the record's attributes, else from its
 * resource's (spans may be exported under a resource describing the process).
 */

export interface RecordVisitor {
  /**
   * time (a log record's time_unix_nano, a span's end_time_unix_nano) as a
   * Number of ns (exact to ~256 ns, plenty for delays), comm, and the log
   * record's event name or the span's kind (`span.client`, `span.server`, ...).
   */
  (timeUnixNs: number, comm: string, eventName: string): void;
}

export type Signal = 'logs' | 'traces';

const SPAN_KINDS = ['span.unspecified', 'span.internal', 'span.server', 'span.client', 'span.producer', 'span.consumer'];

/** Where a record's fields are, per signal. */
const FIELDS = {
  logs: { time: 1, attributes: 6, name: 12, kind: 0 },
  traces: { time: 8, attributes: 9, name: 0, kind: 6 },
} as const;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++] ?? 0;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  }

  /** Skips a field's value of the given wire type. */
  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) {
      const len = this.varint();
      this.pos += len;
    }
    else if (wire === WIRE_I32) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new Error('truncated field');
  }
}

/** Iterates over the length-delimited fields numbered `field` in [pos, end): calls fn(start, end). */
function eachMessage(buf: Buffer, pos: number, end: number, field: number, fn: (start: number, end: number) => void): void {
  const r = new Reader(buf, pos, end);
  while (r.pos < r.end) {
    const tag = r.varint();
    const wire = tag & 7;
    if (tag >>> 3 === field && wire === WIRE_LEN) {
      const len = r.varint();
      fn(r.pos, r.pos + len);
      r.pos += len;
    } else {
      r.skip(wire);
    }
  }
}

function stringField(buf: Buffer, pos: number, end: number, field: number): string | undefined {
  let out: string | undefined;
  eachMessage(buf, pos, end, field, (s, e) => {
    out = buf.toString('utf8', s, e);
  });
  return out;
}

const COMM_KEY = Buffer.from('process.executable.name');

function keyIs(buf: Buffer, s: number, e: number, key: Buffer): boolean {
  return e - s === key.length && buf.compare(key, 0, key.length, s, e) === 0;
}

/** The comm of one KeyValue in [pos, end) if its key is process.executable.name, else undefined. */
function commOf(buf: Buffer, pos: number, end: number): string | undefined {
  // KeyValue: key = 1 comes first in every encoder we know; check it before decoding the value
  const kv = new Reader(buf, pos, end);
  if (kv.varint() !== ((1 << 3) | WIRE_LEN)) return undefined;
  const kLen = kv.varint();
  if (!keyIs(buf, kv.pos, kv.pos + kLen, COMM_KEY)) return undefined;
  let comm: string | undefined;
  eachMessage(buf, kv.pos + kLen, end, 2, (s, e) => {
    comm = stringField(buf, s, e, 1) ?? comm;
  });
  return comm;
}

function visitRecord(buf: Buffer, pos: number, end: number, f: (typeof FIELDS)[Signal], resourceComm: string, visit: RecordVisitor): void {
  const r = new Reader(buf, pos, end);
  let time = 0;
  let comm: string | undefined;
  let eventName = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === f.time && wire === WIRE_I64) {
      time = buf.readUInt32LE(r.pos) + buf.readUInt32LE(r.pos + 4) * 0x1_0000_0000;
      r.pos += 8;
    } else if (field === f.name && wire === WIRE_LEN) {
      const len = r.varint();
      eventName = buf.toString('utf8', r.pos, r.pos + len);
      r.pos += len;
    } else if (field === f.kind && wire === WIRE_VARINT) {
      const kind = r.varint();
      eventName = SPAN_KINDS[kind] ?? `span.kind${kind}`;
    } else if (field === f.attributes && wire === WIRE_LEN) {
      const len = r.varint();
      comm ??= commOf(buf, r.pos, r.pos + len);
      r.pos += len;
    } else {
      r.skip(wire);
    }
  }
  visit(time, comm ?? resourceComm, eventName);
}

/** process.executable.name among the attributes of the Resource in [pos, end), or ''. */
function resourceCommOf(buf: Buffer, pos: number, end: number): string {
  let comm = '';
  eachMessage(buf, pos, end, 1, (s, e) => {
    eachMessage(buf, s, e, 1, (as, ae) => {
      comm = commOf(buf, as, ae) ?? comm;
    });
  });
  return comm;
}

/**
 * Calls `visit` once per log record of an encoded ExportLogsServiceRequest
 * (signal 'logs') or per span of an ExportTraceServiceRequest ('traces'); returns the count.
 */
export function visitExportRequest(buf: Buffer, visit: RecordVisitor, signal: Signal = 'logs'): number {
  let n = 0;
  const f = FIELDS[signal];
  eachMessage(buf, 0, buf.length, 1, (rs, re) => {
    const resourceComm = resourceCommOf(buf, rs, re);
    eachMessage(buf, rs, re, 2, (ss, se) => {
      eachMessage(buf, ss, se, 2, (ls, le) => {
        n++;
        visitRecord(buf, ls, le, f, resourceComm, visit);
      });
    });
  });
  return n;
}
