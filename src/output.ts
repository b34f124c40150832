/**
 * The table or NDJSON on stdout, with back-pressure instead of a queue.
 *
 * A pipe whose reader is slow or stopped buffers every write in the process
 * (Node's stdout to a pipe is asynchronous). So the output says how many more
 * events it can take ({@link Output.room}): none once `maxBufferedBytes` wait
 * to be written, else a window of events; the CLI reads the ring buffer at that
 * pace (`TcpTracer.open({ room })`, the same pacing as the OTLP export queue),
 * and what a stalled reader cannot take waits in the ring buffer, whose losses
 * the probe counts. Memory stays bounded.
 *
 * A write error ends the output: EPIPE (the reader went away, `tcptracer |
 * head`) as a normal end, anything else (ENOSPC, EIO...) as a failure. Events
 * that never reached the stream's file (failed, still buffered at exit, or
 * refused after the shutdown deadline while the reader is behind, or once the
 * buffer holds `hardLimitBytes`) are counted: {@link Output.unwritten}.
 */
import type { Writable } from 'node:stream';
import { EnvironmentError } from './errors.ts';

export interface OutputOptions {
  /** No more room once this many bytes wait to be written. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Events the ring buffer may hand over beyond what was written, while there is room. Default 4096. */
  readonly window?: number;
  /** Writes are refused (and counted) beyond this many bytes waiting. Default 16 MiB. */
  readonly hardLimitBytes?: number;
}

export class Output {
  readonly #stream: Writable;
  readonly #maxBuffered: number;
  readonly #window: number;
  readonly #hardLimit: number;
  #unwritten = 0;
  #ended = false;
  #failed = false;
  #pastDeadline = false;
  readonly done: Promise<void>;

  constructor(stream: Writable, options: OutputOptions = {}) {
    this.#stream = stream;
    this.#maxBuffered = options.maxBufferedBytes ?? 1 << 20;
    this.#window = options.window ?? 4096;
    this.#hardLimit = options.hardLimitBytes ?? 16 << 20;
    // resolves when the reader went away (EPIPE), rejects on any other write error
    this.done = new Promise((resolve, reject) => {
      stream.on('error', (e: NodeJS.ErrnoException) => {
        this.#ended = true;
        if (e.code === 'EPIPE') {
          // the reader stopped reading on purpose (`| head`): what it did not take is not a loss
          this.#unwritten = 0;
          resolve();
        } else {
          this.#failed = true;
          reject(new EnvironmentError(`writing output: ${e.message}`));
        }
      });
    });
    // a caller that only races `done` must not see an unhandled rejection
    this.done.catch(() => undefined);
  }

  /** Events this output can take now: 0 while the reader is behind. */
  room(): number {
    if (this.#ended) return this.#window;
    return this.#stream.writableLength >= this.#maxBuffered ? 0 : this.#window;
  }

  /** `listener` runs whenever room may have grown (the buffer drained). */
  onRoom(listener: () => void): void {
    this.#stream.on('drain', listener);
  }

  /**
   * Writes `events` events, encoded by `encode` only when they can be written;
   * counted as unwritten until the stream has written them.
   */
  write(events: number, encode: () => string | Buffer): void {
    // the reader is gone (EPIPE: it wanted no more), or the output failed (counted): the CLI is stopping
    if (this.#ended && !this.#failed) return;
    const length = this.#stream.writableLength;
    if (this.#failed || length >= this.#hardLimit || (this.#pastDeadline && length > 0)) {
      this.#unwritten += events;
      return;
    }
    this.#unwritten += events;
    this.#stream.write(encode(), (err) => {
      if (!err) this.#unwritten -= events;
    });
  }

  /** The shutdown deadline passed: while the reader is still behind, events are only counted, not buffered. */
  deadlinePassed(): void {
    this.#pastDeadline = true;
  }

  /** Events not (yet) written to the stream's file. */
  get unwritten(): number {
    return this.#unwritten;
  }

  /** Resolves once everything is written, the output ended, or `ms` passed; true when nothing waits any more. */
  async flush(ms: number): Promise<boolean> {
    if (this.#ended || this.#stream.writableLength === 0) return true;
    const stream = this.#stream;
    return new Promise<boolean>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        stream.off('drain', check);
        resolve(this.#ended || stream.writableLength === 0);
      };
      const check = (): void => {
        if (stream.writableLength === 0) finish();
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      stream.on('drain', check);
      void this.done.finally(finish).catch(() => undefined);
    });
  }
}
