/**
 * Expiry and the history window (issue 22) against a real SQLite file in a temp folder, with a
 * fake clock: expired calls lose their input and result bytes, finished calls past the window go
 * with everything kept by them, in batches that call writes interleave with, and the file shrinks.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseHistoryDays } from "../../daemon/config.js";
import { CallStore } from "../../daemon/store/call-store.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { GroupCommit } from "../../daemon/store/group-commit.js";
import { MIGRATIONS } from "../../daemon/store/migrations.js";
import { DAY_MS, History } from "../../daemon/service/history.js";
import { ServiceError } from "../../daemon/service/errors.js";

const T0 = 1_800_000_000_000;
const HOUR = 3600_000;
let dir: string;
let file: string;
let db: Db;
let commit: GroupCommit;
let calls: CallStore;
let clock: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-history-test-"));
  file = join(dir, "gantry.db");
  db = openDatabase(file);
  commit = new GroupCommit(db);
  calls = new CallStore(db, commit);
  clock = T0;
});
afterEach(() => {
  commit.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const history = (o: { windowMs?: number; batchRows?: number } = {}) =>
  new History({ store: calls.history, windowMs: o.windowMs ?? 7 * DAY_MS, clock: () => clock, ...(o.batchRows ? { batchRows: o.batchRows } : {}) });

/** Inserts a call and finishes it at `finishedAt` with `result`, its result kept `ttlMs`. */
async function finished(id: string, o: { finishedAt: number; ttlMs?: number; input?: unknown; result?: string; status?: "succeeded" | "failed" }) {
  await calls.insert({ id, app: "a", function: "f", args: [o.input ?? id], now: o.finishedAt - 10 });
  const rec = { ...calls.get(id)!, status: o.status ?? ("succeeded" as const), finishedAt: o.finishedAt, expiresAt: o.finishedAt + (o.ttlMs ?? HOUR), resultJson: JSON.stringify(o.result ?? `result of ${id}`) };
  expect(await calls.finish(rec, { status: "queued", attempt: 1 })).toBe(true);
}

const count = (table: string, where = "1") => db.prepare(`SELECT count(*) FROM ${table} WHERE ${where}`).pluck().get() as number;
const row = (id: string) => db.prepare(`SELECT input, result, expired, status FROM calls WHERE id = ?`).get(id) as { input: string; result: string | null; expired: number; status: string } | undefined;

describe("expiry", () => {
  it("deletes the input and result bytes of an expired call, keeps its row (expired) and its error, and its items", async () => {
    await finished("fc-old", { finishedAt: T0, ttlMs: 1000, input: "SECRET-INPUT-1", result: "SECRET-RESULT-1" });
    await calls.items.add("fc-old", 0, JSON.stringify("SECRET-ITEM-1"));
    await finished("fc-new", { finishedAt: T0, ttlMs: HOUR, input: "kept-input", result: "kept-result" });

    expect(await calls.expireResults(T0 + 1000)).toBe(1);

    expect(row("fc-old")).toEqual({ input: "", result: null, expired: 1, status: "succeeded" });
    expect(calls.inputOf("fc-old")).toBeNull();
    expect(calls.get("fc-old")).toMatchObject({ expired: true, resultJson: null });
    expect(count("call_items", "call_id = 'fc-old'")).toBe(0);
    // The one not expired yet is whole.
    expect(row("fc-new")).toMatchObject({ result: '"kept-result"', expired: 0 });
    expect(calls.inputOf("fc-new")).toEqual({ args: ["kept-input"], kwargs: null });
    // Not only unreachable: the bytes are gone from the file (secure_delete zeroes them in their pages).
    db.pragma("wal_checkpoint(TRUNCATE)");
    const bytes = readFileSync(file).toString("latin1");
    for (const secret of ["SECRET-INPUT-1", "SECRET-RESULT-1", "SECRET-ITEM-1"]) expect(bytes).not.toContain(secret);
    expect(bytes).toContain("kept-result");
  });

  it("a large input's overflow pages are freed at expiry and handed back by the next prune's vacuum", async () => {
    const big = "BIG-SECRET-".repeat(3000); // 33 KB: overflow pages of its own
    await finished("fc-big", { finishedAt: T0, ttlMs: 1000, input: big, result: big });
    db.pragma("wal_checkpoint(TRUNCATE)");
    expect(readFileSync(file).toString("latin1")).toContain("BIG-SECRET-");
    await calls.expireResults(T0 + 1000);
    expect(db.pragma("freelist_count", { simple: true }) as number).toBeGreaterThan(10);
    db.pragma("wal_checkpoint(TRUNCATE)");
    expect(readFileSync(file).toString("latin1")).toContain("BIG-SECRET-"); // still in the free pages

    clock = T0 + 1000;
    const report = await history().prune(); // nothing is old enough to delete: only the vacuum
    expect(report).toMatchObject({ calls: 0, incremental_vacuum: true });
    expect(report.vacuumed_pages).toBeGreaterThan(10);
    expect(db.pragma("freelist_count", { simple: true })).toBe(0);
    db.pragma("wal_checkpoint(TRUNCATE)");
    expect(readFileSync(file).toString("latin1")).not.toContain("BIG-SECRET-");
    expect(row("fc-big")).toMatchObject({ input: "", result: null, expired: 1 });
  });

  it("a failed call keeps its error after expiry, and an expired call is pruned only by the history window", async () => {
    await calls.insert({ id: "fc-f", app: "a", function: "f", args: ["in"], now: T0 });
    const rec = { ...calls.get("fc-f")!, status: "failed" as const, finishedAt: T0, expiresAt: T0 + 1, error: { type: "ValueError", message: "bad", traceback: "" } };
    await calls.finish(rec, { status: "queued", attempt: 1 });
    await calls.expireResults(T0 + 1);
    expect(calls.get("fc-f")).toMatchObject({ expired: true, error: { type: "ValueError" } });
    clock = T0 + 6 * DAY_MS;
    expect((await history().prune()).calls).toBe(0);
    clock = T0 + 7 * DAY_MS;
    expect((await history().prune()).calls).toBe(1);
    expect(calls.get("fc-f")).toBeNull();
  });
});

describe("History.prune", () => {
  it("deletes finished calls past the window with their attempts, items, call-graph links and idempotency keys", async () => {
    const old = T0 - 8 * DAY_MS;
    await calls.insertKeyed({ id: "fc-keyed", app: "a", function: "f", args: [], kwargs: null, now: old }, "key-1");
    await calls.insertMany("a", "f", [{ id: "fc-child", args: [], kwargs: null, parentId: "fc-keyed" }], old);
    await calls.items.add("fc-keyed", 0, '"item"');
    // An earlier attempt that failed, then the call finished.
    await calls.requeue("fc-keyed", { status: "queued", attempt: 1 }, { status: "queued", attempt: 2 }, { attempt: 1, outcome: "failed", containerId: null, startedAt: old, endedAt: old, error: { type: "E", message: "x", traceback: "" } });
    for (const id of ["fc-keyed", "fc-child"]) {
      const rec = calls.get(id)!;
      await calls.finish({ ...rec, status: "succeeded", finishedAt: old, expiresAt: old + HOUR, resultJson: '"r"' }, { status: "queued", attempt: rec.attempt });
    }
    await finished("fc-recent", { finishedAt: T0 - 6 * DAY_MS });
    await finished("fc-unexpired", { finishedAt: old, ttlMs: 30 * DAY_MS }); // its resultTtl outlasts the window: kept
    await calls.insert({ id: "fc-queued", app: "a", function: "f", args: [], now: old }); // never finished: kept

    const report = await history().prune();

    expect(report).toMatchObject({ calls: 2, attempts: 1, items: 1, idempotency_keys: 1, older_than_days: 7, interrupted: false });
    expect(report.bytes).toBeGreaterThan(0);
    expect(calls.get("fc-keyed")).toBeNull();
    expect(calls.get("fc-child")).toBeNull();
    expect(count("attempts")).toBe(0);
    expect(count("call_items")).toBe(0);
    expect(count("call_parents")).toBe(0);
    expect(count("idempotency_keys")).toBe(0);
    expect(calls.keys.find("a", "f", "key-1", old)).toBeNull(); // no key left pointing at a deleted call
    expect(db.prepare(`SELECT id FROM calls ORDER BY id`).pluck().all()).toEqual(["fc-queued", "fc-recent", "fc-unexpired"]);
  });

  it("older_than_days overrides the window; a bad one is refused naming the limit", async () => {
    await finished("fc-1", { finishedAt: T0 - 2 * HOUR, ttlMs: 1000 });
    expect((await history().prune()).calls).toBe(0);
    expect((await history().prune({ olderThanDays: 0 })).calls).toBe(1);
    for (const bad of [-1, 36_501, Number.NaN]) {
      const err = await history().prune({ olderThanDays: bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceError);
      expect((err as ServiceError).message).toMatch(/older_than_days must be a number of days from 0 to 36500/);
    }
  });

  it("goes in batches, each one write, and lets a new call's insert commit before it ends", async () => {
    const N = 10_000;
    const old = T0 - 8 * DAY_MS;
    const ids = Array.from({ length: N }, (_, i) => `fc-${String(i).padStart(6, "0")}`);
    await calls.insertMany("a", "f", ids.map((id) => ({ id, args: ["x".repeat(200)], kwargs: null })), old);
    db.prepare(`UPDATE calls SET status = 'succeeded', finished_at = ?, expires_at = ?, result = ?`).run(old, old + HOUR, JSON.stringify("y".repeat(300)));
    const pagesBefore = db.pragma("page_count", { simple: true }) as number;
    const batchesBefore = commit.batches;

    let pruneDone = false;
    const progress: number[] = [];
    const pruning = history().prune({ onProgress: (p) => progress.push(p.calls) }).then((r) => ((pruneDone = true), r));
    await calls.insert({ id: "fc-new", app: "a", function: "f", args: [], now: T0 });
    expect(pruneDone).toBe(false); // the insert did not wait for the prune
    expect(count("calls")).toBeGreaterThan(1); // and the prune was still under way when it committed

    const report = await pruning;
    expect(report.calls).toBe(N);
    expect(progress).toEqual(Array.from({ length: N / 1000 }, (_, i) => (i + 1) * 1000)); // 1,000 calls a batch
    expect(commit.batches - batchesBefore).toBeGreaterThanOrEqual(N / 1000);
    expect(db.prepare(`SELECT id FROM calls`).pluck().all()).toEqual(["fc-new"]);
    // The file shrank: the freed pages were handed back (incremental vacuum).
    expect(report.incremental_vacuum).toBe(true);
    expect(report.vacuumed_pages).toBeGreaterThan(0);
    expect(db.pragma("freelist_count", { simple: true })).toBe(0);
    expect(db.pragma("page_count", { simple: true }) as number).toBeLessThan(pagesBefore / 5);
    expect(report.db_bytes_after).toBeLessThan(report.db_bytes_before / 5);
  });

  it("a prune stopped midway keeps what it did and says it was interrupted", async () => {
    const old = T0 - 8 * DAY_MS;
    await calls.insertMany("a", "f", Array.from({ length: 50 }, (_, i) => ({ id: `fc-${String(i).padStart(3, "0")}`, args: [], kwargs: null })), old);
    db.prepare(`UPDATE calls SET status = 'succeeded', finished_at = ?, expires_at = ?`).run(old, old);
    const h = history({ batchRows: 10 });
    let stopping: Promise<void> | null = null;
    const report = await h.prune({ onProgress: (p) => void (p.calls >= 20 && (stopping ??= h.stop())) });
    await stopping;
    expect(report.interrupted).toBe(true);
    expect(report.calls).toBe(20);
    expect(count("calls")).toBe(30);
  });
});

describe("the database", () => {
  it("is created with incremental auto-vacuum", () => {
    expect(db.pragma("auto_vacuum", { simple: true })).toBe(2);
  });

  it("an existing one (schema 11) is rewritten once with it, its data kept; running that step again is harmless", async () => {
    const older = join(dir, "older.db");
    const v11 = new Database(older);
    v11.pragma("journal_mode = WAL");
    for (const m of MIGRATIONS.slice(0, 11)) v11.exec(m);
    v11.pragma("user_version = 11");
    v11.prepare(`INSERT INTO calls (id, app, function, status, attempt, input, created_at, run_at) VALUES ('fc-1', 'a', 'f', 'queued', 1, '[1]', 1, 1)`).run();
    expect(v11.pragma("auto_vacuum", { simple: true })).toBe(0);
    v11.close();

    const upgraded = openDatabase(older);
    expect(upgraded.pragma("auto_vacuum", { simple: true })).toBe(2);
    expect(upgraded.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(upgraded.prepare(`SELECT input FROM calls WHERE id = 'fc-1'`).pluck().get()).toBe("[1]");
    expect(upgraded.prepare(`SELECT name FROM sqlite_master WHERE name IN ('calls_by_finish', 'idempotency_keys_by_call') ORDER BY name`).pluck().all()).toEqual(["calls_by_finish", "idempotency_keys_by_call"]);
    // A crash between the VACUUM and user_version would run it again at the next start.
    upgraded.pragma(`user_version = ${MIGRATIONS.length - 1}`);
    upgraded.close();
    const again = openDatabase(older);
    expect(again.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(again.prepare(`SELECT count(*) FROM calls`).pluck().get()).toBe(1);
    again.close();
  });
});

describe("--history / GANTRY_HISTORY_DAYS", () => {
  it("takes days, fractions too, and refuses what is not above 0 or over 36500, naming the setting", () => {
    expect(parseHistoryDays(undefined, "--history")).toBeUndefined();
    expect(parseHistoryDays("7", "--history")).toBe(7 * DAY_MS);
    expect(parseHistoryDays("0.5", "GANTRY_HISTORY_DAYS")).toBe(DAY_MS / 2);
    for (const bad of ["0", "-1", "x", "36501"]) expect(() => parseHistoryDays(bad, "--history")).toThrow(/--history=.*days finished calls are kept.*above 0 and at most 36500/);
  });
});
