/**
 * A sandbox's process as the daemon holds it (issue 24): its output files, its stdin (writes in
 * order, EOF once), its end. The main command and each exec are one of these.
 */
import { EventEmitter } from "node:events";
import type { Writable } from "node:stream";
import type { ProcessView } from "../../protocol/sandboxes.js";
import type { AttachedProcess } from "../docker/sandbox-engine.js";
import { ServiceError, ServiceErrorCode } from "./errors.js";
import { StreamFile } from "./sandbox-output.js";

export class SandboxProcess {
  readonly stdout: StreamFile;
  readonly stderr: StreamFile;
  returncode: number | null = null;
  endedAt: number | null = null;
  private stdin: Writable | null = null;
  private stdinClosed = false;
  private writes: Promise<unknown> = Promise.resolve();
  private readonly ended = new EventEmitter();
  /** Set once it runs: resizes its terminal. */
  resize: ((cols: number, rows: number) => Promise<void>) | null = null;
  /** Kills it (an exec); null for the main command, which ends with its container. */
  kill: (() => Promise<void>) | null = null;

  constructor(
    readonly id: string,
    readonly sandboxId: string,
    readonly command: string[],
    readonly pty: boolean,
    readonly startedAt: number,
    files: { stdout: string; stderr: string },
    maxBytes: number,
    /** Files an ended process left (after a restart): read as they are. */
    kept = false,
  ) {
    this.stdout = new StreamFile(files.stdout, maxBytes, kept);
    this.stderr = new StreamFile(files.stderr, maxBytes, kept);
    this.ended.setMaxListeners(0);
  }

  /** Connects the running process: its output flows into the files, its stdin is held for writes. */
  attach(io: AttachedProcess): void {
    io.stdout.pipe(this.stdout.sink());
    io.stderr.pipe(this.stderr.sink());
    this.stdin = io.stdin;
    this.resize = io.resize;
  }

  get running(): boolean {
    return this.returncode === null;
  }

  /** Resolves once its output is all in the files (its pipes ended), or after `ms`. */
  async drained(ms: number): Promise<void> {
    await Promise.all([this.stdout.whenClosed(ms), this.stderr.whenClosed(ms)]);
  }

  /** Records its end once (the first code wins: a timeout's 124 before the kill's own code). */
  finish(code: number, at: number): void {
    if (this.returncode !== null) return;
    this.returncode = code;
    this.endedAt = at;
    this.stdinClosed = true;
    this.stdin?.end();
    // Output still in flight reaches the files; the streams close when their pipes end. A process whose
    // pipes never end (its container removed under it) is closed here after a moment.
    setTimeout(() => {
      this.stdout.close();
      this.stderr.close();
    }, 2000).unref();
    this.ended.emit("end");
  }

  /** Resolves once it ended, or after `ms`. */
  waitEnd(ms: number): Promise<void> {
    if (!this.running || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.ended.once("end", done);
    });
  }

  /** Writes to its stdin in order; `eof` closes it after. Refused once closed or ended. */
  writeStdin(bytes: Buffer, eof: boolean): Promise<number> {
    if (this.stdinClosed || !this.stdin) {
      return Promise.reject(new ServiceError(ServiceErrorCode.conflict, `the stdin of ${this.describe()} is closed${this.running ? " (write_eof was sent)" : " (it has ended)"}`));
    }
    const stdin = this.stdin;
    if (eof) this.stdinClosed = true;
    const write = this.writes.then(
      () =>
        new Promise<number>((resolve, reject) => {
          const done = (err?: Error | null) => (err ? reject(new ServiceError(ServiceErrorCode.conflict, `writing to the stdin of ${this.describe()} failed: ${err.message}`)) : resolve(bytes.length));
          if (!bytes.length) {
            if (eof) stdin.end();
            return done();
          }
          stdin.write(bytes, (err) => {
            if (eof) stdin.end();
            done(err);
          });
        }),
    );
    this.writes = write.catch(() => undefined);
    return write;
  }

  describe(): string {
    return this.id === "main" ? `sandbox ${this.sandboxId}` : `exec ${this.id} of sandbox ${this.sandboxId}`;
  }

  view(): ProcessView {
    return {
      id: this.id,
      sandbox_id: this.sandboxId,
      command: this.command,
      running: this.running,
      returncode: this.returncode,
      pty: this.pty,
      started_at: new Date(this.startedAt).toISOString(),
      ended_at: this.endedAt === null ? null : new Date(this.endedAt).toISOString(),
      stdout_bytes: this.stdout.bytes,
      stderr_bytes: this.stderr.bytes,
      dropped: this.stdout.droppedSome || this.stderr.droppedSome,
    };
  }
}
