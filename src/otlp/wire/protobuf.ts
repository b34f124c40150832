/**
 * A protobuf writer for the OTLP messages this tracer sends: one pass, into
 * one growing buffer, with the attribute keys encoded once per process.
 *
 * The SDK's serializer (otlp-transformer's ProtobufWriter) walks each request
 * twice, once to size it and once to write it, and encodes every attribute
 * key of every record anew; keys are most of a record's bytes. Here a
 * length-delimited field reserves the bytes its length usually needs and
 * moves its content only when the length needs more (or fewer) bytes, and a
 * KeyValue's key comes from a cache (keys are the fixed attribute names of
 * src/otlp/logs/mapping.ts and the resource's). The bytes are the ones the SDK
 * writes for the same data: test/unit-otlp-encode.test.ts compares them.
 *
 * AnyValue encoding follows the SDK's: string, bool, an integer in the int64
 * range as int_value, any other number as double_value, Uint8Array as
 * bytes_value, arrays, and plain objects as kvlist_value.
 */

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/** protobuf wire types */
export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const I32 = 5;

/** Bytes the varint encoding of non-negative `v` (below 2^53) takes. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let size = 5;
  for (let rest = Math.floor(v / 0x800000000); rest > 0; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

export class ProtoWriter {
  buf: Buffer;
  pos = 0;
  /** Over buf: DataView.setBigUint64 is several times faster than Buffer.writeBigUInt64LE. */
  private view: DataView;

  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  }

  /** The bytes written so far (a view: the writer must not be used afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A field's tag (field number and wire type). */
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** A non-negative integer below 2^53, as a varint. */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    if (v < 0x80) {
      buf[this.pos++] = v;
      return;
    }
    if (v <= 0xffffffff) {
      let x = v >>> 0;
      while (x > 0x7f) {
        buf[this.pos++] = (x & 0x7f) | 0x80;
        x >>>= 7;
      }
      buf[this.pos++] = x;
      return;
    }
    let x = v;
    while (x > 0x7f) {
      buf[this.pos++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
    }
    buf[this.pos++] = x;
  }

  /** Any integer in the int64 range as an int64 varint (negative: ten bytes, two's complement). */
  int64(v: number): void {
    if (v >= 0) {
      this.varint(v);
      return;
    }
    this.ensure(10);
    let x = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }

  /** An unsigned 64-bit value, little-endian (fixed64: timestamps in ns). */
  fixed64(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Bytes as they are (an already encoded part). */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.raw(bytes);
  }

  /** Length-prefixed bytes `start` to `end` of `bytes` (at most 127 of them: ids). */
  bytesRange(bytes: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n + 1);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = n;
    for (let i = start; i < end; i++) buf[pos++] = bytes[i] as number;
    this.pos = pos;
  }

  /** A length-prefixed UTF-8 string. ASCII (all of ours but a few comms) is copied in one pass. */
  string(s: string): void {
    const n = s.length;
    this.ensure(n + 5);
    const start = this.pos;
    this.varint(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        this.pos = start;
        this.utf8(s);
        return;
      }
      buf[pos++] = c;
    }
    this.pos = pos;
  }

  private utf8(s: string): void {
    const length = Buffer.byteLength(s, 'utf8');
    this.varint(length);
    this.ensure(length);
    this.pos += this.buf.write(s, this.pos, length, 'utf8');
  }

  /**
   * Starts a length-delimited field's content, reserving `reserve` bytes for
   * its length; returns the mark {@link end} needs.
   */
  begin(reserve = 1): number {
    this.ensure(reserve);
    this.pos += reserve;
    return this.pos * 8 + reserve;
  }

  /** Ends the field {@link begin} started: writes its length, moving the content if the length needs another number of bytes. */
  end(mark: number): void {
    const reserve = mark & 7;
    const contentStart = (mark - reserve) / 8;
    const length = this.pos - contentStart;
    const size = varintSize(length);
    let at = contentStart - reserve;
    if (size !== reserve) {
      this.ensure(size - reserve);
      this.buf.copyWithin(at + size, contentStart, this.pos);
      this.pos += size - reserve;
    }
    const buf = this.buf;
    let x = length;
    while (x > 0x7f) {
      buf[at++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    buf[at] = x;
  }
}

/** A KeyValue's bytes up to its value's length: key (field 1), then the value's tag (field 2); cached per key. */
const keyPrefixes = new Map<string, Buffer>();

export function keyPrefix(key: string): Buffer {
  let prefix = keyPrefixes.get(key);
  if (prefix === undefined) {
    const w = new ProtoWriter(key.length * 3 + 16);
    w.tag(1, LEN);
    w.string(key);
    w.tag(2, LEN);
    prefix = Buffer.from(w.finish());
    if (keyPrefixes.size < 4096) keyPrefixes.set(key, prefix);
  }
  return prefix;
}

/** An AnyValue's content, as the SDK writes it (see the module doc); anything else writes nothing (an empty AnyValue). */
export function writeAnyValue(w: ProtoWriter, value: unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, LEN);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, VARINT);
      w.varint(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        w.tag(3, VARINT);
        w.int64(value);
      } else {
        w.tag(4, I64);
        w.double(value);
      }
      return;
    case 'object':
      break;
    default:
      return;
  }
  if (value === null) return;
  if (value instanceof Uint8Array) {
    w.tag(7, LEN);
    w.bytes(value);
    return;
  }
  if (Array.isArray(value)) {
    w.tag(5, LEN);
    const array = w.begin();
    for (const item of value as unknown[]) {
      w.tag(1, LEN);
      const v = w.begin();
      writeAnyValue(w, item);
      w.end(v);
    }
    w.end(array);
    return;
  }
  w.tag(6, LEN);
  const list = w.begin();
  writeAttributes(w, value as Record<string, unknown>, 1, false);
  w.end(list);
}

/**
 * Attributes as repeated KeyValue in field `field`, in the object's key order.
 * `skipUndefined`: leave out undefined and null values, as the SDK's log
 * records and spans do when they are set (a resource's or a kvlist's are
 * written by the SDK as empty AnyValues, and so here); it is for our own
 * object literals, whose keys are all their own (others are checked).
 */
export function writeAttributes(w: ProtoWriter, attributes: Readonly<Record<string, unknown>>, field: number, skipUndefined: boolean): void {
  for (const key in attributes) {
    const value = attributes[key];
    if (skipUndefined ? value === undefined || value === null : !Object.hasOwn(attributes, key)) continue;
    w.tag(field, LEN);
    writeKeyValue(w, keyPrefix(key), value);
  }
}

/** One KeyValue, length-prefixed (its field's tag is the caller's): `prefix` ({@link keyPrefix}), then the value. */
export function writeKeyValue(w: ProtoWriter, prefix: Buffer, value: unknown): void {
  const kv = w.begin();
  w.raw(prefix);
  const v = w.begin();
  writeAnyValue(w, value);
  w.end(v);
  w.end(kv);
}
