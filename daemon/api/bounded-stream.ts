/**
 * Streamed answers (log follow, results streams, deploy progress) for clients that may read slower
 * than lines come. Node buffers whatever a response is given; a client that never reads would make
 * the daemon hold every line. As the event stream does for a slow WebSocket (event-stream.ts), a
 * streamed answer holds at most MAX_UNSENT_BYTES for its client: past that it is cut off.
 */

/**
 * What one streamed answer may hold unsent for its client (Node's buffer and the socket's). 8 MiB
 * is many seconds of lines for a client that reads at all, and little memory for one that does not.
 */
export const MAX_UNSENT_BYTES = 8 * 1024 * 1024;

/**
 * A cut-off answer is ended, and what it holds still goes out as the client reads; a client that
 * has not taken it after this long is disconnected, so that its buffer is freed too.
 */
export const CUT_OFF_CLOSE_MS = 60_000;

/** What BoundedStream needs of a response (http.ServerResponse has it; tests pass a slow Writable). */
export interface StreamSink {
  readonly writableLength: number;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  write(chunk: string): unknown;
  end(chunk?: string): unknown;
  destroy(): unknown;
  once(event: "finish" | "close", listener: () => void): unknown;
}

export interface BoundedStreamOptions {
  maxUnsentBytes?: number;
  closeAfterMs?: number;
  /** The answer's last line when it is cut off (with its newline), or null for none. */
  farewell?: () => string | null;
  /** Called once when the answer is cut off (unsubscribe here). */
  onCutOff?: () => void;
}

export class BoundedStream {
  private cut = false;
  private readonly max: number;

  constructor(
    private readonly sink: StreamSink,
    private readonly opts: BoundedStreamOptions = {},
  ) {
    this.max = opts.maxUnsentBytes ?? MAX_UNSENT_BYTES;
  }

  /** Whether the answer was cut off for holding too much unsent. */
  get cutOff(): boolean {
    return this.cut;
  }

  /** Whether lines may still be written (not ended, cut off or closed). */
  get open(): boolean {
    return !this.cut && !this.sink.writableEnded && !this.sink.destroyed;
  }

  /** Whether the client has taken enough of what was sent for more to be written. */
  hasRoom(): boolean {
    return this.sink.writableLength <= this.max;
  }

  /** Writes `text`; when the client holds too much unsent, cuts the answer off instead. False once not open. */
  write(text: string): boolean {
    if (!this.open) return false;
    if (!this.hasRoom()) {
      this.cutOffNow();
      return false;
    }
    this.sink.write(text);
    return true;
  }

  /** Writes `text` when the client has room for it, else skips it (progress a slow client can miss). */
  offer(text: string): boolean {
    if (!this.open || !this.hasRoom()) return false;
    this.sink.write(text);
    return true;
  }

  /** Ends the answer (what was written still goes out). */
  end(): void {
    if (!this.sink.writableEnded && !this.sink.destroyed) this.sink.end();
  }

  /** Ends the answer as too slow now (its farewell line last), unless it has ended already. */
  cutOffNow(): void {
    if (!this.open) return;
    this.cut = true;
    const last = this.opts.farewell?.() ?? null;
    this.sink.end(last ?? undefined);
    // A client that takes nothing more would hold its buffer for as long as it stays connected.
    const timer = setTimeout(() => this.sink.destroy(), this.opts.closeAfterMs ?? CUT_OFF_CLOSE_MS);
    timer.unref();
    const done = () => clearTimeout(timer);
    this.sink.once("finish", done);
    this.sink.once("close", done);
    this.opts.onCutOff?.();
  }
}
