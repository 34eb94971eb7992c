/**
 * Idempotency keys (table `idempotency_keys`, migration 3): the call a key first made, per app and
 * function, for 24 h. A key is claimed inside the transaction that inserts its call (see
 * CallStore.insertKeyed), so two submits with one key make exactly one call, whatever their timing,
 * and the mapping is as durable as the call. Rows older than the TTL count as absent until the
 * expiry sweep prunes them.
 */
import { IDEMPOTENCY_KEY_TTL_S } from "../../protocol/api.js";
import type { Db } from "./database.js";

export const IDEMPOTENCY_KEY_TTL_MS = IDEMPOTENCY_KEY_TTL_S * 1000;

export class IdempotencyKeys {
  private readonly stmts;

  constructor(
    db: Db,
    private readonly ttlMs = IDEMPOTENCY_KEY_TTL_MS,
  ) {
    this.stmts = {
      find: db.prepare(`SELECT call_id FROM idempotency_keys WHERE app = ? AND function = ? AND key = ? AND created_at > ?`).pluck(),
      // A row past its TTL that the sweep has not pruned yet is taken over.
      record: db.prepare(
        `INSERT INTO idempotency_keys (app, function, key, call_id, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (app, function, key) DO UPDATE SET call_id = excluded.call_id, created_at = excluded.created_at`,
      ),
      prune: db.prepare(
        `DELETE FROM idempotency_keys WHERE (app, function, key) IN
           (SELECT app, function, key FROM idempotency_keys WHERE created_at <= ? LIMIT ?)`,
      ),
    };
  }

  /** The call this key made for this function within the TTL, as committed; null when none. */
  find(app: string, fn: string, key: string, now: number): string | null {
    return (this.stmts.find.get(app, fn, key, now - this.ttlMs) as string | undefined) ?? null;
  }

  /**
   * Run inside the write transaction of the call `callId`: returns the call the key already made
   * (then the caller inserts nothing), or null once the key is recorded as `callId`'s.
   */
  claim(app: string, fn: string, key: string, callId: string, now: number): string | null {
    const earlier = this.find(app, fn, key, now);
    if (earlier !== null) return earlier;
    this.stmts.record.run(app, fn, key, callId, now);
    return null;
  }

  /** Deletes keys older than the TTL, at most `max` per run (inside a write transaction); returns how many. */
  prune(now: number, max = 5000): number {
    return this.stmts.prune.run(now - this.ttlMs, max).changes;
  }
}
