/**
 * A generator call's items (issue 17), in order: each stored (committed) before readers are told,
 * as JSON text or "pickle:" and base64 like results; dropped with the call's result at expiry
 * (and, had they outlived it, with the call by the history window: call-history.ts).
 */
import type Database from "better-sqlite3";
import type { GroupCommit } from "./group-commit.js";

/** Items one read answers at most. */
export const ITEMS_PER_READ = 1000;

export class CallItems {
  private readonly stmts;

  constructor(
    db: Database.Database,
    private readonly commit: GroupCommit,
  ) {
    this.stmts = {
      add: db.prepare(`INSERT OR IGNORE INTO call_items (call_id, idx, data) VALUES (?, ?, ?)`),
      read: db.prepare(`SELECT idx, data FROM call_items WHERE call_id = ? AND idx >= ? ORDER BY idx LIMIT ?`),
      drop: db.prepare(`DELETE FROM call_items WHERE call_id = ?`),
    };
  }

  /** Stores item `index` of a call; resolves once it is committed. */
  add(callId: string, index: number, data: string): Promise<void> {
    return this.commit.run(() => void this.stmts.add.run(callId, index, data));
  }

  /** The call's items from `from` on, in order (at most ITEMS_PER_READ). */
  read(callId: string, from: number): Array<{ index: number; data: string }> {
    return (this.stmts.read.all(callId, from, ITEMS_PER_READ) as Array<{ idx: number; data: string }>).map((r) => ({ index: r.idx, data: r.data }));
  }

  /** Drops the items of calls whose results expired (inside the expiry's write). */
  dropNow(callIds: readonly string[]): void {
    for (const id of callIds) this.stmts.drop.run(id);
  }
}
