/**
 * Just enough of the protobuf wire format to count the log records of an OTLP
 * ExportLogsServiceRequest, read each record's time_unix_nano, event_name and
 * process.executable.name, without building objects (the bench's receiver must
 * stay far cheaper than the tracer it measures; test/fixtures/otlp-collector.ts
 * decodes whole messages with protobufjs, which costs several µs per record).
 *
 * Field numbers (opentelemetry/proto, OTLP 1.x):
 *   ExportLogsServiceRequest.resource_logs = 1
 *   ResourceLogs.scope_logs = 2
 *   ScopeLogs.log_records = 2
 *   LogRecord.time_unix_nano = 1 (fixed64), attributes = 6, event_name = 12
 *   KeyValue.key = 1, value = 2; AnyValue.string_value = 1
 */

export interface RecordVisitor {
  /** time_unix_nano as a Number of ns (exact to ~256 ns, plenty for delays), comm, event name. */
  (timeUnixNs: number, comm: string, eventName: string): void;
}

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

function visitRecord(buf: Buffer, pos: number, end: number, visit: RecordVisitor): void {
  const r = new Reader(buf, pos, end);
  let time = 0;
  let comm = '';
  let eventName = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_I64) {
      time = buf.readUInt32LE(r.pos) + buf.readUInt32LE(r.pos + 4) * 0x1_0000_0000;
      r.pos += 8;
    } else if (field === 12 && wire === WIRE_LEN) {
      const len = r.varint();
      eventName = buf.toString('utf8', r.pos, r.pos + len);
      r.pos += len;
    } else if (field === 6 && wire === WIRE_LEN) {
      const len = r.varint();
      const kvEnd = r.pos + len;
      // KeyValue: key = 1 comes first in every encoder we know; check it before decoding the value
      const kv = new Reader(buf, r.pos, kvEnd);
      const kTag = kv.varint();
      if (kTag === ((1 << 3) | WIRE_LEN)) {
        const kLen = kv.varint();
        if (keyIs(buf, kv.pos, kv.pos + kLen, COMM_KEY)) {
          kv.pos += kLen;
          eachMessage(buf, kv.pos, kvEnd, 2, (s, e) => {
            comm = stringField(buf, s, e, 1) ?? comm;
          });
        }
      }
      r.pos = kvEnd;
    } else {
      r.skip(wire);
    }
  }
  visit(time, comm, eventName);
}

/** Calls `visit` once per log record of an encoded ExportLogsServiceRequest; returns the count. */
export function visitExportRequest(buf: Buffer, visit: RecordVisitor): number {
  let n = 0;
  eachMessage(buf, 0, buf.length, 1, (rs, re) => {
    eachMessage(buf, rs, re, 2, (ss, se) => {
      eachMessage(buf, ss, se, 2, (ls, le) => {
        n++;
        visitRecord(buf, ls, le, visit);
      });
    });
  });
  return n;
}
