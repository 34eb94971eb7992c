/**
 * Dashboard sessions (daemon/service/sessions.ts over daemon/store/session-store.ts) on a real
 * SQLite file in a temp folder, with a fake clock: what the store keeps, expiry, sign-out, and a
 * new token ending every session.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../daemon/logger.js";
import { SESSION_TTL_MS, Sessions } from "../../daemon/service/sessions.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { SessionStore } from "../../daemon/store/session-store.js";

const DAY = 24 * 3600 * 1000;
let dir: string;
let file: string;
let opened: Db[];
let now: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-sessions-test-"));
  file = join(dir, "gantry.db");
  opened = [];
  now = 1_700_000_000_000;
});
afterEach(() => {
  for (const s of started) s.stop();
  started.length = 0;
  for (const db of opened) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

const started: Sessions[] = [];
/** The daemon starting on the database file with `token` (a fresh connection, as after a restart). */
function start(token: string | null): { sessions: Sessions; db: Db; store: SessionStore } {
  const db = openDatabase(file);
  opened.push(db);
  const store = new SessionStore(db);
  const sessions = new Sessions({ store, token, log: silentLogger, clock: () => now });
  sessions.start();
  started.push(sessions);
  return { sessions, db, store };
}

describe("Sessions", () => {
  it("opens random 32-byte ids that verify, and keeps only a hash of them", () => {
    const { sessions, db } = start("a-token-of-16-chars-or-more");
    const a = sessions.open();
    const b = sessions.open();
    expect(a.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.id, "base64url")).toHaveLength(32);
    expect(a.id).not.toBe(b.id);
    expect(a.expiresAt).toBe(now + SESSION_TTL_MS);
    expect(sessions.verify(a.id)).toBe(true);
    expect(sessions.verify(b.id)).toBe(true);
    expect(sessions.verify("x".repeat(43))).toBe(false);
    expect(sessions.verify("not a session id")).toBe(false);
    const rows = db.prepare(`SELECT * FROM sessions`).all() as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(2);
    const dump = JSON.stringify(db.prepare(`SELECT * FROM sessions`).all()) + JSON.stringify(db.prepare(`SELECT * FROM meta`).all());
    expect(dump).not.toContain(a.id);
    expect(dump).not.toContain("a-token-of-16-chars-or-more");
  });

  it("ends a session after 30 days, deleting its row when met and by the sweep", () => {
    const { sessions, store } = start("a-token-of-16-chars-or-more");
    const a = sessions.open();
    now += DAY;
    const b = sessions.open();
    now += 29 * DAY - 1;
    expect(sessions.verify(a.id)).toBe(true);
    now += 1; // a is 30 days old
    expect(sessions.verify(a.id)).toBe(false);
    expect(store.count()).toBe(1); // the lookup deleted it
    expect(sessions.verify(b.id)).toBe(true);
    now += DAY;
    expect(sessions.sweep()).toBe(1);
    expect(store.count()).toBe(0);
    expect(sessions.verify(b.id)).toBe(false);
  });

  it("closes one session (sign-out), leaving the others", () => {
    const { sessions } = start("a-token-of-16-chars-or-more");
    const a = sessions.open();
    const b = sessions.open();
    expect(sessions.close(a.id)).toBe(true);
    expect(sessions.close(a.id)).toBe(false);
    expect(sessions.verify(a.id)).toBe(false);
    expect(sessions.verify(b.id)).toBe(true);
  });

  it("survives a restart with the same token, and ends every session when the token changes", () => {
    const first = start("a-token-of-16-chars-or-more");
    const a = first.sessions.open();
    first.sessions.stop();
    first.db.close();

    const same = start("a-token-of-16-chars-or-more");
    expect(same.sessions.verify(a.id)).toBe(true);
    const b = same.sessions.open();
    same.sessions.stop();
    same.db.close();

    const other = start("another-token-of-16-chars");
    expect(other.sessions.verify(a.id)).toBe(false);
    expect(other.sessions.verify(b.id)).toBe(false);
    expect(other.store.count()).toBe(0);
    const c = other.sessions.open();
    other.sessions.stop();
    other.db.close();

    // Back to the first token is a change too; so is none at all.
    const back = start("a-token-of-16-chars-or-more");
    expect(back.sessions.verify(c.id)).toBe(false);
    back.sessions.open();
    back.sessions.stop();
    back.db.close();
    expect(start(null).store.count()).toBe(0);
  });

  it("drops every session on demand", () => {
    const { sessions } = start("a-token-of-16-chars-or-more");
    const ids = [sessions.open(), sessions.open(), sessions.open()].map((s) => s.id);
    expect(sessions.dropAll()).toBe(3);
    for (const id of ids) expect(sessions.verify(id)).toBe(false);
  });
});
