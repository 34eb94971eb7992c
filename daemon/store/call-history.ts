/**
 * Call history (issue 22): finished calls past the history window are deleted with everything kept
 * by call (earlier attempts, generator items, call-graph links, idempotency keys), one batch per
 * write of the group commit, so call writes interleave with a long prune; then the pages freed go
 * back to the file system (incremental vacuum) a few at a time.
 */
import { TERMINAL, type CallStatus } from "../core/call-state.js";
import type { Db } from "./database.js";
import type { GroupCommit } from "./group-commit.js";

/** Where a prune goes on from: after this call in (finished_at, id) order. */
export interface PruneCursor {
  finishedAt: number;
  id: string;
}

export const PRUNE_START: PruneCursor = { finishedAt: -1, id: "" };

/** The call IDs of a batch, bound as one JSON array. */
const IDS = "(SELECT value FROM json_each(?))";

/** What one batch did. */
export interface PruneBatch {
  /** Finished calls looked at; fewer than asked for: none older is left. */
  scanned: number;
  calls: number;
  attempts: number;
  items: number;
  keys: number;
  /** Bytes of values deleted: inputs, results, errors and items. */
  bytes: number;
  /** Where the next batch starts. */
  next: PruneCursor;
}

/** The database file as SQLite counts it (the WAL beside it aside). */
export interface DbSize {
  bytes: number;
  pages: number;
  freePages: number;
  /** Whether freed pages can be handed back (auto_vacuum = INCREMENTAL). */
  incremental: boolean;
}

interface PageRow {
  id: string;
  finished_at: number;
  status: CallStatus;
  expired: number;
  expires_at: number | null;
  bytes: number;
}

export class CallHistory {
  private readonly stmts;

  constructor(
    private readonly db: Db,
    private readonly commit: GroupCommit,
    /** Drops deleted calls from the call store's memory. */
    private readonly forget: (ids: readonly string[]) => void,
  ) {
    this.stmts = {
      page: db.prepare(
        `SELECT id, finished_at, status, expired, expires_at,
           octet_length(input) + coalesce(octet_length(result), 0) + coalesce(octet_length(error), 0) AS bytes
         FROM calls WHERE finished_at <= ? AND (finished_at, id) > (?, ?) ORDER BY finished_at, id LIMIT ?`,
      ),
      call: db.prepare(`DELETE FROM calls WHERE id = ? AND status IN ('succeeded', 'failed', 'cancelled')`),
      // What is kept by the batch's calls, one statement each for all of them (IDS: a JSON array).
      attempts: db.prepare(`DELETE FROM attempts WHERE call_id IN ${IDS} RETURNING coalesce(octet_length(error), 0)`).pluck(),
      items: db.prepare(`DELETE FROM call_items WHERE call_id IN ${IDS} RETURNING octet_length(data)`).pluck(),
      links: db.prepare(`DELETE FROM call_parents WHERE call_id IN ${IDS} OR parent_id IN ${IDS}`),
      keys: db.prepare(`DELETE FROM idempotency_keys WHERE call_id IN ${IDS}`),
    };
  }

  /**
   * One write: deletes, of the next `max` calls that finished at or before `cutoff`, those whose
   * result has expired by `now` (a result is kept for its whole resultTtl), with what is kept by them.
   */
  pruneBatch(cutoff: number, now: number, after: PruneCursor, max: number): Promise<PruneBatch> {
    return this.commit.run(() => {
      const rows = this.stmts.page.all(cutoff, after.finishedAt, after.id, max) as PageRow[];
      const out: PruneBatch = { scanned: rows.length, calls: 0, attempts: 0, items: 0, keys: 0, bytes: 0, next: after };
      const gone: string[] = [];
      for (const r of rows) {
        out.next = { finishedAt: r.finished_at, id: r.id };
        if (!TERMINAL.has(r.status) || (r.expired === 0 && r.expires_at !== null && r.expires_at > now)) continue;
        if (this.stmts.call.run(r.id).changes !== 1) continue;
        out.bytes += r.bytes;
        gone.push(r.id);
      }
      if (gone.length === 0) return out;
      const ids = JSON.stringify(gone);
      const attempts = this.stmts.attempts.all(ids) as number[];
      const items = this.stmts.items.all(ids) as number[];
      this.stmts.links.run(ids, ids);
      out.keys = this.stmts.keys.run(ids).changes;
      out.calls = gone.length;
      out.attempts = attempts.length;
      out.items = items.length;
      out.bytes += sum(attempts) + sum(items);
      this.forget(gone);
      return out;
    }, "refuse");
  }

  /** One write handing up to `pages` free pages back to the file system; resolves with the free pages left. */
  vacuumStep(pages: number): Promise<number> {
    const n = Math.max(1, Math.floor(pages));
    return this.commit.run(() => {
      this.db.exec(`PRAGMA incremental_vacuum(${n})`);
      return this.db.pragma("freelist_count", { simple: true }) as number;
    }, "refuse");
  }

  size(): DbSize {
    const pages = this.db.pragma("page_count", { simple: true }) as number;
    const pageSize = this.db.pragma("page_size", { simple: true }) as number;
    return {
      bytes: pages * pageSize,
      pages,
      freePages: this.db.pragma("freelist_count", { simple: true }) as number,
      incremental: this.db.pragma("auto_vacuum", { simple: true }) === 2,
    };
  }

  /**
   * Copies the WAL into the database file without waiting for anyone (PASSIVE), so the file is
   * cut to its new size now rather than at the next automatic checkpoint.
   */
  checkpoint(): void {
    this.db.pragma("wal_checkpoint(PASSIVE)");
  }
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
