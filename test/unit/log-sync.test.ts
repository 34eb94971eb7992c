// GroupCommit's commits at synchronous=NORMAL with the write-ahead log synced off the event loop
// (issue 25): no write is acknowledged before a sync that began after its commit has finished.
import { afterEach, describe, expect, it } from "vitest";
import { fdatasync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { GroupCommit } from "../../daemon/store/group-commit.js";

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Done = (err: Error | null) => void;
/** A datasync the test finishes by hand: each call waits in `calls` until `release` or `fail`. */
function heldSync() {
  const calls: Array<{ fd: number; done: Done }> = [];
  const datasync = (fd: number, done: Done) => void calls.push({ fd, done });
  const release = () => {
    const c = calls.shift()!;
    fdatasync(c.fd, (err) => c.done(err));
  };
  const fail = (err: Error) => calls.shift()!.done(err);
  return { calls, datasync, release, fail };
}

function setup(datasync?: (fd: number, done: Done) => void, onError?: (err: Error) => void, durability?: "full" | "relaxed") {
  const dir = mkdtempSync(join(tmpdir(), "gt-logsync-"));
  dirs.push(dir);
  const db = openDatabase(join(dir, "gantry.db"));
  dbs.push(db);
  const commit = new GroupCommit(db, undefined, { onSyncError: onError, datasync, durability });
  const put = (k: string) => () => db.prepare(`INSERT INTO meta (key, value) VALUES (?, 'v')`).run(k).changes;
  const settled = new Set<string>();
  const write = (k: string) => commit.run(put(k)).then((v) => (settled.add(k), v));
  return { db, commit, write, settled, file: join(dir, "gantry.db") };
}

const turn = () => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await turn();
  }
}

describe("GroupCommit with the log synced off the event loop", () => {
  it("acknowledges a write only once the log is synced, and commits at once (other connections see it)", async () => {
    const sync = heldSync();
    const { write, settled, file, db } = setup(sync.datasync);
    const other = new Database(file, { readonly: true });
    dbs.push(other);
    const w = write("a");
    await until(() => sync.calls.length === 1, "the sync to start");
    expect(other.prepare(`SELECT count(*) AS n FROM meta WHERE key = 'a'`).get()).toEqual({ n: 1 }); // committed
    await turn();
    expect(settled.has("a")).toBe(false); // not on disk yet: not acknowledged
    sync.release();
    await expect(w).resolves.toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL for every other write
  });

  it("writes that come while a sync runs wait for it to end, then go in one batch with one more sync", async () => {
    const sync = heldSync();
    const { write, settled, commit, file } = setup(sync.datasync);
    const other = new Database(file, { readonly: true });
    dbs.push(other);
    const first = write("first");
    await until(() => sync.calls.length === 1, "the first sync");
    const later = [write("second"), write("third")];
    for (let i = 0; i < 5; i++) await turn();
    expect(commit.batches).toBe(1); // held back: they could not be acknowledged before the next sync anyway
    expect(other.prepare(`SELECT count(*) AS n FROM meta WHERE key IN ('second', 'third')`).get()).toEqual({ n: 0 });
    sync.release();
    await first;
    expect([...settled]).toEqual(["first"]);
    await until(() => sync.calls.length === 1, "the next sync");
    expect(commit.batches).toBe(2); // both in one transaction
    expect(settled.has("second")).toBe(false);
    sync.release();
    await Promise.all(later);
    expect(commit.syncs).toBe(2);
  });

  it("a failed sync acknowledges nothing; it is tried again until it succeeds", async () => {
    const sync = heldSync();
    const errors: string[] = [];
    const { write, settled } = setup(sync.datasync, (e) => errors.push(e.message));
    const w = write("a");
    await until(() => sync.calls.length === 1, "the sync");
    sync.fail(new Error("EIO: the disk said no"));
    expect(errors).toEqual(["EIO: the disk said no"]);
    await until(() => sync.calls.length === 1, "the retry (after its backoff)");
    expect(settled.size).toBe(0);
    sync.release();
    await expect(w).resolves.toBe(1);
  });

  it("close syncs and acknowledges what is pending at once, even while a sync runs", async () => {
    const sync = heldSync();
    const { write, commit } = setup(sync.datasync);
    const first = write("first");
    await until(() => sync.calls.length === 1, "the first sync");
    const second = write("second");
    for (let i = 0; i < 3; i++) await turn(); // held back while the sync runs
    commit.close(); // commits and syncs it now
    await expect(second).resolves.toBe(1); // close synced it
    sync.release(); // the sync that was running ends after close: it settles what it covered
    await expect(first).resolves.toBe(1);
  });

  it("runSoon's write is synced within its window even when no durable write follows", async () => {
    const { db, commit } = setup();
    const before = commit.syncs;
    await commit.runSoon(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('soon', 'v')`).run());
    await until(() => commit.syncs > before, "the log sync after runSoon");
  });

  it("durability relaxed: acknowledges once committed, and syncs the log within 50 ms all the same", async () => {
    const sync = heldSync();
    const { write, commit } = setup(sync.datasync, undefined, "relaxed");
    await expect(write("a")).resolves.toBe(1); // no sync finished: acknowledged on commit
    expect(commit.syncs).toBe(0);
    await until(() => sync.calls.length === 1, "the sync within its window");
    sync.release();
    await until(() => commit.syncs === 1, "the sync to finish");
    const both = [write("b"), write("c")];
    await expect(Promise.all(both)).resolves.toEqual([1, 1]); // commits go on while a sync would run
  });

  it("a database in memory commits at FULL and acknowledges after the commit", async () => {
    const db = new Database(":memory:");
    dbs.push(db);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)`);
    const commit = new GroupCommit(db);
    await expect(commit.run(() => db.prepare(`INSERT INTO meta VALUES ('k', 'v')`).run().changes)).resolves.toBe(1);
    expect(commit.syncs).toBe(commit.batches);
  });
});

describe("holding a sync for a write on its way (a lone call's result)", () => {
  it("waits for the held-for write, then one sync covers both, and both are acknowledged together", async () => {
    const sync = heldSync();
    const { commit, write, settled } = setup(sync.datasync);
    const release = commit.holdSync(1_000)!;
    expect(release).not.toBeNull();
    const submit = write("submit");
    await until(() => commit.batches === 1, "the submit's commit");
    for (let i = 0; i < 5; i++) await turn();
    expect(sync.calls).toHaveLength(0); // held: the result is on its way
    const result = commit.run(() => "result", "hold", release); // the result lets go once committed
    await until(() => sync.calls.length === 1, "the one sync");
    expect(commit.batches).toBe(2);
    expect(settled.has("submit")).toBe(false);
    sync.release();
    await expect(Promise.all([submit, result])).resolves.toEqual([1, "result"]);
    expect(sync.calls).toHaveLength(0);
  });

  it("syncs at the hold's end when the write it waited for does not come", async () => {
    const sync = heldSync();
    const { commit, write } = setup(sync.datasync);
    const release = commit.holdSync(30)!;
    const submit = write("submit");
    await until(() => sync.calls.length === 1, "the sync, at the hold's end");
    sync.release();
    await expect(submit).resolves.toBe(1);
    release(); // late: changes nothing
    const next = write("next");
    await until(() => sync.calls.length === 1, "the next write's sync, not held");
    sync.release();
    await expect(next).resolves.toBe(1);
  });

  it("is not granted while a sync runs or a commit waits for one, nor when acknowledgments wait for no sync", async () => {
    const sync = heldSync();
    const { commit, write } = setup(sync.datasync);
    const first = write("first");
    await until(() => sync.calls.length === 1, "a sync running");
    expect(commit.holdSync(1_000)).toBeNull(); // busy: never held
    sync.release();
    await first;
    expect(setup(undefined, undefined, "relaxed").commit.holdSync(1_000)).toBeNull();
  });

  it("lets go when the held-for write fails, and measures how long syncs take", async () => {
    const sync = heldSync();
    const { commit, write } = setup(sync.datasync);
    expect(commit.syncMs).toBeNull();
    const release = commit.holdSync(60_000)!;
    const submit = write("submit");
    const broken = commit.run(() => {
      throw new Error("no such call");
    }, "hold", release);
    await until(() => sync.calls.length === 1, "the sync, no longer held");
    sync.release();
    await expect(submit).resolves.toBe(1);
    await expect(broken).rejects.toThrow("no such call");
    expect(commit.syncMs).toBeGreaterThan(0);
  });
});
