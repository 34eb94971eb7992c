import { dirname } from "node:path";
import type { Db } from "./database.js";
import { LogSync } from "./log-sync.js";

/**
 * When a write is acknowledged: "full" (the default) once the log holding it is on disk, as with
 * synchronous=FULL; "relaxed" once it is committed (a daemon crash loses nothing: the OS has the
 * log), the log synced within SYNC_SOON_MS: a power cut or kernel crash can lose what was
 * acknowledged in that window, as Redis' appendfsync everysec can lose a second.
 */
export type Durability = "full" | "relaxed";

export interface GroupCommitOptions {
  durability?: Durability;
  /** A sync of the log failed (it is tried again; nothing waiting for it is acknowledged meanwhile). */
  onSyncError?: (err: Error) => void;
  /** fs.fdatasync for the log; tests slow it down or make it fail. */
  datasync?: (fd: number, cb: (err: Error | null) => void) => void;
}

/** What a write does when the disk is full: wait and commit later, or fail at once (a new call, refused). */
export type WhenFull = "hold" | "refuse";

interface Pending {
  write: () => unknown;
  whenFull: WhenFull;
  /** Runs once the write was committed (before the log is synced): lets go of a hold on the sync. */
  onCommitted?: () => void;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** SQLite could not write: the disk (or the quota) holding the database is full. */
export class DiskFullError extends Error {
  constructor(readonly folder: string) {
    super(`the disk holding ${folder} is full: gantry cannot store anything new there until space is freed`);
    this.name = "DiskFullError";
  }
}

/** How soon the log a runSoon() batch wrote is synced to disk, off the event loop. */
const SYNC_SOON_MS = 50;
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

/** Whether SQLite (or a file write) failed for want of disk space or quota. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return ["SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "ENOSPC", "EDQUOT"].includes(code);
}

/**
 * Groups the writes issued during one event-loop turn into one transaction, and resolves each
 * write's promise only after that transaction is on disk. The transaction commits at
 * `synchronous=NORMAL` (into the write-ahead log, at once) and the log is then synced off the event
 * loop (LogSync): the promise waits for that sync, so an acknowledged write is exactly as durable as
 * at FULL, while the daemon serves requests during the disk's part. (A database without a log on
 * disk, in memory or not in WAL mode, commits at FULL instead.) While a sync runs, writes are not
 * committed but kept for the next batch: they could not be acknowledged before the next sync
 * anyway, and one transaction for all that came meanwhile writes each page to the log once (a busy
 * daemon commits once a sync, not once an event-loop turn). Writes run in the order
 * they were issued; one failing write rolls back only itself, not its neighbours: a batch runs
 * without savepoints, and only when a write throws is it rolled back and run again with a
 * savepoint around each write.
 *
 * A full disk fails none of what was acknowledged: the batch is rolled back, new calls ("refuse")
 * are refused with DiskFullError, and every other write ("hold": results, state changes) waits
 * and is committed, in order, once there is room again (tried again with backoff).
 */
export class GroupCommit {
  private pending: Pending[] = [];
  /** Writes kept back by a full disk, oldest first: they go before any newer write. */
  private held: Pending[] = [];
  private readonly savepoint;
  private readonly release;
  private readonly rollbackTo;
  /** Null: no write-ahead log on disk to sync (commits are at FULL). */
  private readonly log: LogSync | null;
  private scheduled = false;
  /** A flush came while the log was being synced: it runs when that sync ends. */
  private afterSync = false;
  /** Durability "relaxed": writes are acknowledged once committed, the log synced within SYNC_SOON_MS. */
  private readonly relaxed: boolean;
  private deferTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = RETRY_FIRST_MS;
  private closed = false;
  batches = 0;
  /** Since when the disk has been full (null: it is not), as the last commit found. */
  fullSinceMs: number | null = null;
  readonly folder: string;

  constructor(
    private readonly db: Db,
    private readonly onFullChange: (full: boolean, err?: DiskFullError) => void = () => undefined,
    opts: GroupCommitOptions = {},
  ) {
    this.relaxed = opts.durability === "relaxed";
    this.savepoint = db.prepare("SAVEPOINT w");
    this.release = db.prepare("RELEASE w");
    this.rollbackTo = db.prepare("ROLLBACK TO w");
    this.folder = dirname(db.name);
    const wal = !db.memory && String(db.pragma("journal_mode", { simple: true })).toLowerCase() === "wal";
    this.log = wal ? new LogSync(`${db.name}-wal`, opts.onSyncError, opts.datasync, () => {
      if (this.afterSync) this.flush();
    }) : null;
  }

  /** Syncs of the write-ahead log finished (each covers every commit made before it began). */
  get syncs(): number {
    return this.log?.syncs ?? this.batches;
  }

  /** `onCommitted` runs once the write is committed, before the sync it waits for begins. */
  run<T>(write: () => T, whenFull: WhenFull = "hold", onCommitted?: () => void): Promise<T> {
    return this.enqueue(write, 0, whenFull, onCommitted);
  }

  /** How long a sync of the log takes lately (ms); null when acknowledgments wait for none (relaxed, no log) or none ran yet. */
  get syncMs(): number | null {
    return this.relaxed || !this.log ? null : this.log.syncMs;
  }

  /**
   * Holds the next sync of the log back for at most `ms` (LogSync.hold): for a write expected by
   * then. Returns what lets go of it, or null when not held (a busy log, relaxed durability, no log).
   */
  holdSync(ms: number): (() => void) | null {
    return this.relaxed || !this.log ? null : this.log.hold(ms);
  }

  /**
   * A write nobody needs durable at once (a call marked running): it joins the next batch that
   * run() triggers (usually the call's result), or is flushed after at most `maxDelayMs`.
   */
  defer<T>(write: () => T, maxDelayMs = 50): Promise<T> {
    return this.enqueue(write, maxDelayMs, "hold");
  }

  /**
   * A write whose loss at a power cut is harmless to redo (a Queue item taken: after a power cut it
   * could be delivered again, never lost), run now in a transaction of its own and committed
   * without waiting for the disk (a daemon crash loses nothing, the OS has the log). The log is
   * synced off the event loop within SYNC_SOON_MS, or sooner by the next durable commit's sync.
   * Writes pending in the group are not in it (they are not acknowledged yet either).
   */
  runSoon<T>(write: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    try {
      return Promise.resolve(this.atNormal(() => this.db.transaction(write)()));
    } catch (err) {
      return Promise.reject(isDiskFull(err) ? new DiskFullError(this.folder) : err);
    } finally {
      this.log?.soon(SYNC_SOON_MS);
    }
  }

  /**
   * Runs `fn` (a transaction) with commits at synchronous=NORMAL, then FULL again for everything
   * else. Not prepared once: SQLite applies this pragma when the statement is prepared, not when it
   * runs. Without a log on disk, `fn` runs at FULL.
   */
  private atNormal<T>(fn: () => T): T {
    if (!this.log) return fn();
    this.db.pragma("synchronous = NORMAL");
    try {
      return fn();
    } finally {
      this.db.pragma("synchronous = FULL");
    }
  }

  /** Writes waiting for disk space. */
  get heldWrites(): number {
    return this.held.length;
  }

  private enqueue<T>(write: () => T, delayMs: number, whenFull: WhenFull, onCommitted?: () => void): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    if (this.fullSinceMs !== null && whenFull === "refuse" && this.held.length > 0) {
      // Writes are still waiting for room: a new call would not get in before them.
      return Promise.reject(new DiskFullError(this.folder));
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, whenFull, resolve: resolve as (v: unknown) => void, reject, ...(onCommitted ? { onCommitted } : {}) });
      if (delayMs === 0) {
        if (!this.scheduled) {
          this.scheduled = true;
          setImmediate(() => this.flush());
        }
      } else if (!this.scheduled && !this.deferTimer) {
        this.deferTimer = setTimeout(() => this.flush(), delayMs);
      }
    });
  }

  /** Commits whatever is pending: now, or (unless `now`) once the sync running has ended. */
  flush(now = false): void {
    if (!now && !this.relaxed && this.log?.syncing) {
      this.afterSync = true;
      return;
    }
    this.afterSync = false;
    this.scheduled = false;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // Writes held for a full disk go first; usually there are none, and the batch is the pending list itself.
    const batch = this.held.length ? [...this.held, ...this.pending] : this.pending;
    this.held = [];
    this.pending = [];
    if (batch.length === 0) return;
    let outcomes: Array<{ ok: boolean; value: unknown }>;
    try {
      outcomes = this.commitBatch(batch, false);
    } catch (err) {
      if (!(err instanceof WriteFailed)) return this.failed(batch, err);
      if (isDiskFull(err.original)) return this.failed(batch, err.original);
      try {
        outcomes = this.commitBatch(batch, true); // a write failed: again, each in its own savepoint
      } catch (again) {
        return this.failed(batch, again);
      }
      // A write that failed alone for want of space fails the batch as a whole would.
      const full = outcomes.find((o) => !o.ok && isDiskFull(o.value));
      if (full) return this.failed(batch, full.value);
    }
    this.batches++;
    this.roomAgain();
    const settle = () => batch.forEach((p, i) => (outcomes[i]!.ok ? p.resolve(outcomes[i]!.value) : p.reject(outcomes[i]!.value)));
    if (this.log && !this.relaxed) {
      this.log.afterCommit(settle);
      return this.committed(batch);
    }
    this.committed(batch);
    settle();
    this.log?.soon(SYNC_SOON_MS);
  }

  /**
   * Runs the onCommitted hooks of a batch, once each: after it was committed (the sync it waits for
   * begins after them), or when it failed (nothing is worth holding a sync for then).
   */
  private committed(batch: Pending[]): void {
    for (const p of batch) {
      const hook = p.onCommitted;
      if (!hook) continue;
      delete p.onCommitted;
      hook();
    }
  }

  /** The batch was rolled back: on a full disk, new calls are refused and the rest waits; else all fail. */
  private failed(batch: Pending[], err: unknown): void {
    this.committed(batch);
    if (!isDiskFull(err) || this.closed) {
      for (const p of batch) p.reject(err);
      return;
    }
    const full = new DiskFullError(this.folder);
    if (this.fullSinceMs === null) {
      this.fullSinceMs = Date.now();
      this.onFullChange(true, full);
    }
    for (const p of batch) {
      if (p.whenFull === "refuse") p.reject(full);
      else this.held.push(p);
    }
    if (this.held.length && !this.retryTimer) {
      this.retryTimer = setTimeout(() => this.flush(), this.retryDelayMs);
      this.retryDelayMs = Math.min(RETRY_MAX_MS, this.retryDelayMs * 2);
    }
  }

  private roomAgain(): void {
    this.retryDelayMs = RETRY_FIRST_MS;
    if (this.fullSinceMs === null) return;
    this.fullSinceMs = null;
    this.onFullChange(false);
  }

  /** One transaction of the batch's writes; without savepoints, a failing write aborts it all (WriteFailed). */
  private commitBatch(batch: Pending[], isolated: boolean): Array<{ ok: boolean; value: unknown }> {
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    this.atNormal(() => this.db.transaction(() => {
      for (const p of batch) {
        if (!isolated) {
          try {
            outcomes.push({ ok: true, value: p.write() });
          } catch (err) {
            throw new WriteFailed(err);
          }
          continue;
        }
        this.savepoint.run();
        try {
          outcomes.push({ ok: true, value: p.write() });
          this.release.run();
        } catch (err) {
          this.rollbackTo.run();
          this.release.run();
          outcomes.push({ ok: false, value: err });
        }
      }
    })());
    return outcomes;
  }

  /** Commits what is pending and syncs it; writes still held for a full disk are failed (the calls stay as stored). */
  close(): void {
    this.flush(true);
    this.closed = true;
    this.log?.close();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const p of this.held.splice(0)) p.reject(new DiskFullError(this.folder));
  }
}

class WriteFailed extends Error {
  constructor(readonly original: unknown) {
    super("a write of the batch failed");
  }
}
