/**
 * Dashboard sessions (table `sessions`, migration 5): a row per open session, keyed by a SHA-256
 * hash of its random id, so that reading the database does not hand out working cookies. A row
 * past its expiry counts as absent; the sweep (and a lookup that finds one) deletes it. The hash of
 * the token the sessions were opened under is kept in `meta`, so that a new token can end them all.
 */
import type { Db } from "./database.js";

const TOKEN_CHECK_KEY = "session_token_check";

export class SessionStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(`INSERT INTO sessions (id_hash, created_at, expires_at) VALUES (?, ?, ?)`),
      expiresAt: db.prepare(`SELECT expires_at FROM sessions WHERE id_hash = ?`).pluck(),
      delete: db.prepare(`DELETE FROM sessions WHERE id_hash = ?`),
      deleteAll: db.prepare(`DELETE FROM sessions`),
      deleteExpired: db.prepare(`DELETE FROM sessions WHERE expires_at <= ?`),
      count: db.prepare(`SELECT count(*) FROM sessions`).pluck(),
      getCheck: db.prepare(`SELECT value FROM meta WHERE key = '${TOKEN_CHECK_KEY}'`).pluck(),
      setCheck: db.prepare(
        `INSERT INTO meta (key, value) VALUES ('${TOKEN_CHECK_KEY}', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    };
  }

  insert(idHash: string, createdAt: number, expiresAt: number): void {
    this.stmts.insert.run(idHash, createdAt, expiresAt);
  }

  /** Whether the session is open at `now`; an expired row found here is deleted. */
  isOpen(idHash: string, now: number): boolean {
    const expiresAt = this.stmts.expiresAt.get(idHash) as number | undefined;
    if (expiresAt === undefined) return false;
    if (expiresAt > now) return true;
    this.stmts.delete.run(idHash);
    return false;
  }

  /** Deletes one session; whether it existed. */
  delete(idHash: string): boolean {
    return this.stmts.delete.run(idHash).changes === 1;
  }

  /** Deletes every session; how many there were. */
  deleteAll(): number {
    return this.stmts.deleteAll.run().changes;
  }

  /** Deletes the sessions expired at `now`; how many. */
  deleteExpired(now: number): number {
    return this.stmts.deleteExpired.run(now).changes;
  }

  count(): number {
    return this.stmts.count.get() as number;
  }

  /** What `setTokenCheck` last kept (a salted hash of the token), or null. */
  tokenCheck(): string | null {
    return (this.stmts.getCheck.get() as string | undefined) ?? null;
  }

  setTokenCheck(value: string): void {
    this.stmts.setCheck.run(value);
  }
}
