/**
 * Follows a Docker engine through its event stream, so the daemon notices by itself when the engine
 * goes away (a restart, a crash) and when it answers again. While the stream is open the engine is
 * up; when it breaks, the engine is down until a ping answers, with backoff, and the stream is
 * opened again. Calls that fail because the engine does not answer say so (EngineUnreachableError).
 */
import type Docker from "dockerode";
import { EventEmitter } from "node:events";
import type { Logger } from "../logger.js";
import { EngineUnreachableError, type EngineHealth } from "./types.js";

const PING_FIRST_MS = 200;
const PING_MAX_MS = 5_000;

/** Error codes of a socket that nobody answers on (or that broke mid-answer). */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOENT", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH"]);

/** Whether an error from a Docker call means the engine did not answer (rather than refused). */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof EngineUnreachableError) return true;
  const e = err as { code?: string; message?: string; statusCode?: number };
  if (e?.statusCode !== undefined) return false;
  return (e?.code !== undefined && UNREACHABLE.has(e.code)) || /socket hang up|connect (ECONNREFUSED|ENOENT)/.test(e?.message ?? "");
}

export class EngineWatch implements EngineHealth {
  down: { sinceMs: number; reason: string } | null = null;
  private readonly changes = new EventEmitter();
  private stream: NodeJS.ReadableStream | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingDelayMs = PING_FIRST_MS;
  private closed = false;

  constructor(
    private readonly docker: Docker,
    /** The event filters: the stream only has to stay open, so a narrow one is best. */
    private readonly filters: Record<string, string[]>,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.changes.setMaxListeners(0);
  }

  /** Opens the event stream; a failure to open it marks the engine down (and keeps trying). */
  async start(): Promise<void> {
    if (this.closed) return;
    try {
      const stream = (await this.docker.getEvents({ filters: this.filters })) as NodeJS.ReadableStream;
      if (this.closed) return (stream as unknown as { destroy(): void }).destroy();
      this.stream = stream;
      // A late event of a stream already replaced changes nothing.
      const broken = (reason: string) => this.stream === stream && this.broken(reason);
      stream.on("data", () => undefined); // events only keep it open; containers' ends come from their waits
      stream.on("error", (err: Error) => broken(`the engine's event stream failed: ${err.message}`));
      stream.once("end", () => broken("the engine closed its event stream"));
      stream.once("close", () => broken("the engine closed its event stream"));
      this.markUp();
    } catch (err) {
      this.broken(`the engine does not answer: ${(err as Error).message}`);
    }
  }

  /** A Docker call failed: when it is because the engine does not answer, the engine is down. */
  noteFailure(err: unknown): void {
    if (isUnreachable(err)) this.broken(`the engine does not answer: ${(err as Error).message}`);
  }

  whenUp(): Promise<void> {
    if (!this.down) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = (up: boolean) => {
        if (!up) return;
        this.changes.off("change", listener);
        resolve();
      };
      this.changes.on("change", listener);
    });
  }

  onChange(listener: (up: boolean) => void): () => void {
    this.changes.on("change", listener);
    return () => this.changes.off("change", listener);
  }

  close(): void {
    this.closed = true;
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.dropStream();
    this.changes.removeAllListeners();
  }

  private dropStream(): void {
    const s = this.stream as unknown as { destroy?: () => void } | null;
    this.stream = null;
    s?.destroy?.();
  }

  private broken(reason: string): void {
    if (this.closed) return;
    this.dropStream();
    if (!this.down) {
      this.down = { sinceMs: this.clock(), reason };
      this.log.warn("the Docker engine went away; waiting for it to come back", { reason });
      this.changes.emit("change", false);
    }
    this.schedulePing();
  }

  private schedulePing(): void {
    if (this.pingTimer || this.closed) return;
    this.pingTimer = setTimeout(() => void this.ping(), this.pingDelayMs);
    this.pingTimer.unref();
    this.pingDelayMs = Math.min(PING_MAX_MS, this.pingDelayMs * 2);
  }

  private async ping(): Promise<void> {
    this.pingTimer = null;
    try {
      await this.docker.ping();
    } catch {
      return this.schedulePing();
    }
    await this.start();
  }

  private markUp(): void {
    this.pingDelayMs = PING_FIRST_MS;
    if (!this.down) return;
    const downMs = this.clock() - this.down.sinceMs;
    this.down = null;
    this.log.info("the Docker engine answers again", { down_s: Math.round(downMs / 100) / 10 });
    this.changes.emit("change", true);
  }
}
