/**
 * A sandbox process's stdio (protocol/sandboxes.ts): stdout and stderr read from the daemon's copy
 * by byte offset, following the process as it writes; stdin written in order, closed with EOF.
 */
import type { IncomingMessage } from "node:http";
import { StringDecoder } from "node:string_decoder";
import { SANDBOX_LIMITS } from "../protocol/sandboxes.js";
import { GantryError, InvalidArgumentError } from "./errors.js";
import type { Transport } from "./transport.js";

/**
 * A process's stdout or stderr. It reads from where its last read ended (the start at first):
 * `readText()` and `readBytes()` return the rest up to the process's end (waiting for it), and
 * `for await (const chunk of sb.stdout)` yields text as it comes; `lines()` yields whole lines
 * (each with its "\n"), `chunks()` raw bytes. One read at a time per stream.
 */
export class SandboxReadStream implements AsyncIterable<string> {
  private offset = 0;
  private reading = false;

  /** @internal `route`: the stream's path, e.g. /v1/sandboxes/sb-…/procs/main/stdout. */
  constructor(
    private readonly transport: Transport,
    private readonly route: string,
    private readonly what: string,
  ) {}

  /** Bytes read so far (where the next read starts). */
  get position(): number {
    return this.offset;
  }

  /**
   * The bytes as they come, until the process closed the stream. A follow answer that ends before
   * the daemon said the stream is closed (a cut connection) is asked again from where it stopped.
   */
  async *chunks(): AsyncGenerator<Buffer> {
    if (this.reading) throw new InvalidArgumentError(`${this.what} is already being read: read it once at a time`);
    this.reading = true;
    try {
      for (let cuts = 0; ; ) {
        const res = await this.transport.request("GET", `${this.route}?offset=${this.offset}&follow=1`);
        const closed = res.headers["x-gantry-closed"] === "1";
        let cut = false;
        try {
          for await (const chunk of res as AsyncIterable<Buffer>) {
            this.offset += chunk.length;
            cuts = 0;
            yield chunk;
          }
        } catch (err) {
          if (++cuts > 3) throw new GantryError(`reading ${this.what} failed: ${(err as Error).message}`, "transport");
          cut = true;
        } finally {
          destroyUnread(res);
        }
        if (closed && !cut) return;
      }
    } finally {
      this.reading = false;
    }
  }

  /** Text as it comes (UTF-8; a character split across chunks is kept whole). */
  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    const decoder = new StringDecoder("utf8");
    for await (const chunk of this.chunks()) {
      const text = decoder.write(chunk);
      if (text) yield text;
    }
    const rest = decoder.end();
    if (rest) yield rest;
  }

  /** Whole lines as they come, each with its "\n" (the last one without, if the stream ends mid-line). */
  async *lines(): AsyncGenerator<string> {
    let pending = "";
    for await (const text of this) {
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        yield pending.slice(0, nl + 1);
        pending = pending.slice(nl + 1);
      }
    }
    if (pending) yield pending;
  }

  /**
   * What the process has written so far past the last read, without waiting; `closed` says whether
   * the stream had ended (the process exited) when answered.
   */
  async readAvailable(): Promise<{ data: Buffer; closed: boolean }> {
    if (this.reading) throw new InvalidArgumentError(`${this.what} is already being read: read it once at a time`);
    const res = await this.transport.request("GET", `${this.route}?offset=${this.offset}&follow=0`);
    const parts: Buffer[] = [];
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) parts.push(chunk);
    } catch (err) {
      throw new GantryError(`reading ${this.what} failed: ${(err as Error).message}`, "transport");
    }
    const data = Buffer.concat(parts);
    this.offset += data.length;
    return { data, closed: res.headers["x-gantry-closed"] === "1" };
  }

  /** The rest of the stream, once the process has closed it. */
  async readBytes(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks()) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** The rest of the stream as UTF-8 text, once the process has closed it. */
  async readText(): Promise<string> {
    return (await this.readBytes()).toString("utf8");
  }
}

/** Ends an answer left before its end (a reader that stopped early) so its connection is freed. */
function destroyUnread(res: IncomingMessage): void {
  if (!res.complete) res.destroy();
}

/**
 * A process's stdin: `writeText` and `writeBytes` send at once (in the order called, even unawaited),
 * `close()` sends EOF. Writes after close are refused.
 */
export class SandboxWriteStream {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** @internal `route`: the stdin path, e.g. /v1/sandboxes/sb-…/procs/main/stdin. */
  constructor(
    private readonly transport: Transport,
    private readonly route: string,
    private readonly what: string,
  ) {}

  writeText(text: string): Promise<void> {
    if (typeof text !== "string") throw new InvalidArgumentError(`${this.what}.writeText takes a string, got ${typeof text}`);
    return this.writeBytes(Buffer.from(text, "utf8"));
  }

  /** Sends bytes (past SANDBOX_LIMITS.stdinBytes, as several writes). */
  writeBytes(bytes: Uint8Array): Promise<void> {
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`${this.what}.writeBytes takes a Uint8Array or Buffer, got ${typeof bytes}`);
    if (this.closed) return Promise.reject(new InvalidArgumentError(`${this.what} is closed: nothing more can be written`));
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return this.enqueue(async () => {
      for (let at = 0; at < data.length; at += SANDBOX_LIMITS.stdinBytes) await this.post(data.subarray(at, at + SANDBOX_LIMITS.stdinBytes), false);
    });
  }

  /** Sends EOF: the process reads the end of its input. Closing twice does nothing more. */
  close(): Promise<void> {
    if (this.closed) return this.queue.then(() => undefined);
    this.closed = true;
    return this.enqueue(() => this.post(Buffer.alloc(0), true));
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined); // a failed write fails its own promise, not the ones after it
    return next;
  }

  private async post(body: Buffer, eof: boolean): Promise<void> {
    const res = await this.transport.request("POST", `${this.route}?eof=${eof ? 1 : 0}`, { body });
    res.resume();
  }
}
