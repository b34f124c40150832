/** The table / NDJSON output: room while the reader keeps up, none while it is behind; write errors end it, counted. */
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { EnvironmentError } from '../src/errors.ts';
import { Output } from '../src/output.ts';

const line = Buffer.alloc(100, 0x61);

test('room: a window of events while the reader keeps up, none once the buffer is full, back on drain', async () => {
  const pipe = new PassThrough({ highWaterMark: 1024 });
  const out = new Output(pipe, { maxBufferedBytes: 4096, window: 64 });
  assert.equal(out.room(), 64);
  for (let i = 0; i < 100; i++) out.write(1, () => line);
  assert.equal(out.room(), 0, 'nobody reads: no room');
  assert.ok(out.unwritten > 0 && out.unwritten <= 100, `counted until written: ${out.unwritten}`);
  let roomAgain = false;
  out.onRoom(() => { roomAgain = true; });
  pipe.resume(); // the reader catches up
  assert.equal(await out.flush(5000), true);
  assert.ok(roomAgain);
  assert.equal(out.room(), 64);
  assert.equal(out.unwritten, 0);
});

test('a reader that never catches up: flush gives up at its deadline; past the deadline nothing more is buffered, only counted', async () => {
  const pipe = new PassThrough({ highWaterMark: 1024 });
  const out = new Output(pipe, { maxBufferedBytes: 4096 });
  for (let i = 0; i < 100; i++) out.write(1, () => line);
  const before = pipe.writableLength;
  assert.equal(await out.flush(50), false);
  out.deadlinePassed();
  let encoded = 0;
  out.write(1000, () => { encoded++; return line; });
  assert.equal(encoded, 0, 'not even encoded');
  assert.equal(pipe.writableLength, before);
  assert.ok(out.unwritten >= 1000, String(out.unwritten));
});

test('a write error (ENOSPC on /dev/full) ends it: done rejects with one line, and what is left is counted', async () => {
  const out = new Output(createWriteStream('/dev/full'));
  out.write(3, () => line);
  await assert.rejects(out.done, (e: unknown) => e instanceof EnvironmentError && /^writing output: ENOSPC[^\n]*$/.test(e.message));
  out.write(5, () => line);
  assert.equal(out.unwritten, 8);
  assert.ok(out.room() > 0, 'the ring buffer drains (into the count) while the tracer stops');
});

test('EPIPE (the reader went away, `| head`): done resolves, nothing is counted', async () => {
  const gone = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const out = new Output(gone);
  out.write(1, () => line);
  await out.done;
  out.write(7, () => line);
  assert.equal(out.unwritten, 0, 'what a reader that left did not want is no loss');
});
