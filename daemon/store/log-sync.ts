import { closeSync, fdatasync, fdatasyncSync, fstatSync, open, openSync } from "node:fs";

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

/**
 * Syncs SQLite's write-ahead log to disk in libuv's thread pool, so the event loop goes on while
 * the disk works. A transaction committed at `synchronous=NORMAL` is in the log (the OS has it: a
 * daemon crash loses nothing) but not yet on disk; `afterCommit(settle)` calls `settle` once a
 * sync that began after that commit has finished: only then is it as durable as a commit at FULL.
 *
 * One sync runs at a time; commits made while it runs wait for the next one, which starts as soon
 * as it ends and covers all of them (so a busy daemon syncs once per batch of batches). A failed
 * sync is tried again with backoff, and nothing it covered is settled before one succeeds.
 */
export class LogSync {
  private fd: number | null = null;
  /** Settles for commits no sync has covered yet (the next one will). */
  private waiting: Array<() => void> = [];
  /** Something was committed since the last sync began. */
  private dirty = false;
  private running = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private soonTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = RETRY_FIRST_MS;
  private closed = false;
  /** Syncs finished. */
  syncs = 0;

  constructor(
    /** The write-ahead log (`<database>-wal`). */
    private readonly path: string,
    private readonly onError: (err: Error) => void = () => undefined,
    /** fs.fdatasync; tests slow it down or make it fail. */
    private readonly datasync: (fd: number, cb: (err: Error | null) => void) => void = fdatasync,
    /** A sync ended and what it covered was settled: commits held back meanwhile may go now. */
    private readonly onSynced: () => void = () => undefined,
  ) {}

  /** Whether a sync is running now. */
  get syncing(): boolean {
    return this.running;
  }

  /** A commit was made; `settle` (if any) runs once it is on disk. Starts a sync unless one runs. */
  afterCommit(settle?: () => void): void {
    this.dirty = true;
    if (settle) this.waiting.push(settle);
    this.start();
  }

  /** A commit nobody waits for: synced by the next sync, or by one `withinMs` from now (one timer for all). */
  soon(withinMs: number): void {
    this.dirty = true;
    if (this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.start(); // nothing to do if a sync since covered it (dirty is false then)
    }, withinMs);
    this.soonTimer.unref();
  }

  private start(): void {
    if (this.running || this.retryTimer || !this.dirty || this.closed) return;
    this.running = true;
    this.dirty = false;
    const covered = this.waiting;
    this.waiting = [];
    this.sync((err) => {
      this.running = false;
      if (this.closed) {
        this.closeFd();
        return covered.forEach((s) => s()); // close() synced everything
      }
      if (err) return this.failed(covered, err);
      this.syncs++;
      this.retryDelayMs = RETRY_FIRST_MS;
      for (const settle of covered) settle();
      this.onSynced();
      this.start();
    });
  }

  /** fdatasync of the log, opened once; reopened if SQLite ever replaced the file. */
  private sync(done: (err: Error | null) => void): void {
    const withFd = (fd: number) =>
      this.datasync(fd, (err) => {
        if (err) return done(err);
        if (fstatSync(fd).nlink > 0) return done(null);
        // The file was removed (and made anew): what was synced is not the log SQLite writes now.
        closeSync(fd);
        this.fd = null;
        this.sync(done);
      });
    if (this.fd !== null) return withFd(this.fd);
    open(this.path, "r", (err, fd) => {
      if (err) return done(err);
      if (this.closed) {
        closeSync(fd);
        return done(null);
      }
      this.fd = fd;
      withFd(fd);
    });
  }

  private failed(covered: Array<() => void>, err: Error): void {
    this.onError(err);
    this.waiting = [...covered, ...this.waiting];
    this.dirty = true;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.start();
    }, this.retryDelayMs);
    this.retryDelayMs = Math.min(RETRY_MAX_MS, this.retryDelayMs * 2);
  }

  /** Syncs what is left, here and now, and settles every waiting commit. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    try {
      const fd = openSync(this.path, "r");
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.onError(err as Error); // no log: nothing to sync
    }
    for (const settle of this.waiting.splice(0)) settle();
    // A sync still running keeps its descriptor: its callback closes it and settles what it covered.
    if (!this.running) this.closeFd();
  }

  private closeFd(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
