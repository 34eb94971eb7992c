import type { Db } from "./database.js";

interface Pending {
  write: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Groups the writes issued during one event-loop turn into one transaction (one fsync), and
 * resolves each write's promise only after that transaction committed. Writes run in the order
 * they were issued; one failing write rolls back only itself, not its neighbours: a batch runs
 * without savepoints, and only when a write throws is it rolled back and run again with a
 * savepoint around each write.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private readonly savepoint;
  private readonly release;
  private readonly rollbackTo;
  private scheduled = false;
  private deferTimer: NodeJS.Timeout | null = null;
  private closed = false;
  batches = 0;

  constructor(private readonly db: Db) {
    this.savepoint = db.prepare("SAVEPOINT w");
    this.release = db.prepare("RELEASE w");
    this.rollbackTo = db.prepare("ROLLBACK TO w");
  }

  run<T>(write: () => T): Promise<T> {
    return this.enqueue(write, 0);
  }

  /**
   * A write nobody needs durable at once (a call marked running): it joins the next batch that
   * run() triggers (usually the call's result), or is flushed after at most `maxDelayMs`.
   */
  defer<T>(write: () => T, maxDelayMs = 50): Promise<T> {
    return this.enqueue(write, maxDelayMs);
  }

  private enqueue<T>(write: () => T, delayMs: number): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (v: unknown) => void, reject });
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

  /** Commits whatever is pending now (also used at shutdown). */
  flush(): void {
    this.scheduled = false;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let outcomes: Array<{ ok: boolean; value: unknown }>;
    try {
      outcomes = this.commitBatch(batch, false);
    } catch (err) {
      if (!(err instanceof WriteFailed)) {
        for (const p of batch) p.reject(err);
        return;
      }
      try {
        outcomes = this.commitBatch(batch, true); // a write failed: again, each in its own savepoint
      } catch (again) {
        for (const p of batch) p.reject(again);
        return;
      }
    }
    this.batches++;
    batch.forEach((p, i) => (outcomes[i]!.ok ? p.resolve(outcomes[i]!.value) : p.reject(outcomes[i]!.value)));
  }

  /** One transaction of the batch's writes; without savepoints, a failing write aborts it all (WriteFailed). */
  private commitBatch(batch: Pending[], isolated: boolean): Array<{ ok: boolean; value: unknown }> {
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    this.db.transaction(() => {
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
    })();
    return outcomes;
  }

  close(): void {
    this.flush();
    this.closed = true;
  }
}

class WriteFailed extends Error {
  constructor(readonly original: unknown) {
    super("a write of the batch failed");
  }
}
