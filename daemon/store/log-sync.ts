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
  /** Holds on the next sync (see hold()), and the timer that ends them all. */
  private holders = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  /** Counts hold periods: a hold let go after its period ended changes nothing. */
  private holdPeriod = 0;
  /** Syncs finished. */
  syncs = 0;
  /** How long a sync takes lately (a moving average, ms); null before the first. */
  syncMs: number | null = null;

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

  /**
   * Holds the next sync back for at most `ms`, while a write expected by then (a lone call's
   * result) is on its way: it then joins the writes before it in one sync. Granted only while the
   * log is idle (no sync running, no commit waiting for one), so a busy daemon's syncs are never
   * held; holds granted together end together, at the first one's deadline or when all are let go.
   * Returns what lets go of it (after the expected write was committed); null when not granted.
   */
  hold(ms: number): (() => void) | null {
    if (this.running || this.waiting.length > 0 || this.retryTimer || this.closed || ms <= 0) return null;
    this.holders++;
    const period = this.holdPeriod;
    if (!this.holdTimer) this.holdTimer = setTimeout(() => this.endHolds(), ms);
    let done = false;
    return () => {
      if (done || period !== this.holdPeriod) return;
      done = true;
      if (--this.holders === 0) this.endHolds();
    };
  }

  private endHolds(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    this.holders = 0;
    this.holdPeriod++;
    this.start();
  }

  private start(): void {
    if (this.running || this.retryTimer || this.holders > 0 || !this.dirty || this.closed) return;
    this.running = true;
    this.dirty = false;
    const covered = this.waiting;
    this.waiting = [];
    const began = performance.now();
    this.sync((err) => {
      this.running = false;
      const tookMs = performance.now() - began;
      if (!err) this.syncMs = this.syncMs === null ? tookMs : this.syncMs * 0.9 + tookMs * 0.1;
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
    if (this.holdTimer) clearTimeout(this.holdTimer);
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
