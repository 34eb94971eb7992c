/**
 * One stream (stdout or stderr) of a sandbox's process, kept in a file of its own so that output
 * costs the daemon no memory however much comes and whoever reads it, and can be read again from
 * any offset (Modal's readers, `gantry sandbox logs`). At most `maxBytes` are kept: the stream
 * then says so in one line and drops the rest, so a flood fills neither memory nor the disk.
 */
import { createReadStream, createWriteStream, statSync, type WriteStream } from "node:fs";
import { Writable } from "node:stream";
import { EventEmitter } from "node:events";

export class StreamFile {
  /** Bytes in the file, each flushed (readers may read up to here). */
  private size = 0;
  private dropped = false;
  private closedFlag = false;
  private closing = false;
  private readonly file: WriteStream | null;
  private readonly changes = new EventEmitter();

  /** `kept`: a file an ended process left (after a restart): read as it is, closed. */
  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    kept = false,
  ) {
    this.changes.setMaxListeners(0);
    if (kept) {
      this.file = null;
      this.closedFlag = true;
      this.size = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      return;
    }
    this.file = createWriteStream(path, { flags: "w", mode: 0o600 });
    this.file.on("error", () => undefined); // a full disk: what could not be kept is lost; the process goes on
  }

  get bytes(): number {
    return this.size;
  }

  get droppedSome(): boolean {
    return this.dropped;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** A Writable the process's stream is piped into (with backpressure from the file). */
  sink(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => this.append(chunk, done),
      final: (done) => {
        this.close();
        done();
      },
    });
  }

  private append(chunk: Buffer, done: () => void): void {
    if (this.dropped || !this.file) return done();
    // `size` counts what is flushed: writes are one at a time (the sink's), so it is exact here.
    const room = this.maxBytes - this.size;
    let part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (chunk.length > room) {
      this.dropped = true;
      part = Buffer.concat([part, Buffer.from(`\n[gantry: this stream passed ${this.maxBytes} bytes; the rest was dropped]\n`)]);
    }
    this.file.write(part, () => {
      this.size += part.length;
      this.changes.emit("change");
      done();
    });
  }

  /** No more output (the process ended); readers that follow end once they have read it all. */
  close(): void {
    if (this.closedFlag || this.closing) return;
    this.closing = true;
    this.file?.end(() => {
      this.closedFlag = true;
      this.changes.emit("change");
    });
  }

  /** Resolves once the stream is closed (all its output in the file), or after `ms`. */
  whenClosed(ms: number): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (!this.closedFlag && !timedOut) return;
        clearTimeout(timer);
        this.changes.off("change", done);
        resolve();
      };
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        done();
      }, ms);
      this.changes.on("change", done);
    });
  }

  /** Resolves once there is more than `offset`, or the stream is closed, or `signal` aborts. */
  async waitPast(offset: number, signal: AbortSignal): Promise<void> {
    if (this.size > offset || this.closedFlag || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        if (this.size > offset || this.closedFlag || signal.aborted) {
          this.changes.off("change", done);
          signal.removeEventListener("abort", done);
          resolve();
        }
      };
      this.changes.on("change", done);
      signal.addEventListener("abort", done);
    });
  }

  /** The bytes from `start` to `end` (exclusive) as a stream read from the file. */
  read(start: number, end: number): import("node:fs").ReadStream {
    return createReadStream(this.path, { start, end: end - 1 });
  }
}
