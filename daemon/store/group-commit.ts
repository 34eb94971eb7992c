import type { Db } from "./database.js";

interface Pending {
  write: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Groups the writes issued during one event-loop turn into one transaction (one fsync), and
 * resolves each write's promise only after that transaction committed. Writes run in the order
 * they were issued; one failing write rolls back only itself (a savepoint), not its neighbours.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;
  private deferTimer: NodeJS.Timeout | null = null;
  private closed = false;
  batches = 0;

  constructor(private readonly db: Db) {}

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
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const p of batch) {
          this.db.exec("SAVEPOINT w");
          try {
            outcomes.push({ ok: true, value: p.write() });
            this.db.exec("RELEASE w");
          } catch (err) {
            this.db.exec("ROLLBACK TO w");
            this.db.exec("RELEASE w");
            outcomes.push({ ok: false, value: err });
          }
        }
      })();
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.batches++;
    batch.forEach((p, i) => (outcomes[i]!.ok ? p.resolve(outcomes[i]!.value) : p.reject(outcomes[i]!.value)));
  }

  close(): void {
    this.flush();
    this.closed = true;
  }
}
