import { afterEach, beforeEach, describe, it, expect } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { MIGRATIONS } from "../../daemon/store/migrations.js";
import { GroupCommit } from "../../daemon/store/group-commit.js";
import { CallStore } from "../../daemon/store/call-store.js";
import { AppStore, type FunctionRecord } from "../../daemon/store/app-store.js";
import { resolveFunctionSpec } from "../../protocol/function-spec.js";

let dir: string;
let file: string;
/** Every connection a test opens, closed after it. */
let opened: Db[];

function open(): Db {
  const db = openDatabase(file);
  opened.push(db);
  return db;
}

/** A second, independent connection: sees only what was committed. */
function reader(): Db {
  const db = new Database(file, { readonly: true });
  opened.push(db);
  return db;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-store-test-"));
  file = join(dir, "gantry.db");
  opened = [];
});

afterEach(() => {
  for (const db of opened) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function stores() {
  const db = open();
  const commit = new GroupCommit(db);
  return { db, commit, calls: new CallStore(db, commit), apps: new AppStore(db) };
}

describe("openDatabase", () => {
  it("creates the database in WAL mode at the latest schema version", () => {
    const db = open();
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(["apps", "attempts", "call_gpu_seconds", "call_items", "call_parents", "calls", "dict_entries", "dicts", "functions", "idempotency_keys", "meta", "queue_items", "queue_partitions", "queues", "sandboxes", "schedules", "sessions", "volumes", "app_versions"].sort());
  });

  it("reopening is idempotent and keeps the data", () => {
    const first = open();
    new AppStore(first).setMeta("install_id", "abc");
    first.close();

    const second = open();
    expect(second.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(new AppStore(second).getMeta("install_id")).toBe("abc");
    second.close();

    expect(() => open().close()).not.toThrow();
  });

  it("migrates a first-version database: its functions are node functions", () => {
    const v1 = new Database(file);
    opened.push(v1);
    v1.exec(MIGRATIONS[0]!);
    v1.pragma("user_version = 1");
    v1.prepare(`INSERT INTO apps (name, state, bundle_hash, deployed_at) VALUES ('a', 'deployed', 'h', 1)`).run();
    v1.prepare(`INSERT INTO functions (app, name, spec, image, bundle_hash, deployed_at) VALUES ('a', 'f', '{}', 'img', 'h', 1)`).run();
    v1.close();
    const db = open();
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(new AppStore(db).listFunctions()).toMatchObject([{ app: "a", name: "f", runtime: "node", module: "app.mjs" }]);
  });

  it("refuses a database written by a newer gantry, with a clear message", () => {
    const db = open();
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => open()).toThrow(
      `database schema version ${MIGRATIONS.length + 1} is newer than this gantry knows (${MIGRATIONS.length}); upgrade gantry or use another GANTRY_HOME`,
    );
  });
});

describe("CallStore", () => {
  const call = (id: string, o: { app?: string; function?: string; now?: number; args?: unknown[] } = {}) => ({
    id,
    app: o.app ?? "app",
    function: o.function ?? "fn",
    args: o.args ?? [],
    now: o.now ?? 1000,
  });

  it("inserts a queued call at attempt 1 and reads it back", async () => {
    const { calls } = stores();
    await calls.insert(call("fc-1", { args: [1, "two", { three: [3] }, null], now: 1234 }));
    expect(calls.get("fc-1")).toEqual({
      id: "fc-1",
      app: "app",
      function: "fn",
      status: "queued",
      attempt: 1,
      containerId: null,
      createdAt: 1234,
      runAt: 1234,
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
      expired: false,
      resultJson: null,
      lost: 0,
    });
    // Reads skip the input (recovery too: queued calls do not all hold theirs); dispatch reads it.
    expect(calls.get("fc-1")).not.toHaveProperty("args");
    expect(calls.listOpen()).toEqual([expect.objectContaining({ id: "fc-1", status: "queued" })]);
    expect(calls.listOpen()[0]).not.toHaveProperty("args");
    expect(calls.inputOf("fc-1")).toEqual({ args: [1, "two", { three: [3] }, null], kwargs: null });
    expect(calls.inputOf("fc-missing")).toBeNull();
    expect(calls.get("fc-missing")).toBeNull();
  });

  it("inserts many calls in one transaction, keyword arguments kept", async () => {
    const { calls, commit } = stores();
    const before = commit.batches;
    const many = Array.from({ length: 500 }, (_, i) => ({ id: `fc-m${String(i).padStart(3, "0")}`, args: [i], kwargs: i % 2 ? { k: i } : null }));
    await calls.insertMany("app", "fn", many, 5);
    expect(commit.batches - before).toBe(1);
    expect(calls.listOpen()).toHaveLength(500);
    expect(calls.inputOf("fc-m001")).toEqual({ args: [1], kwargs: { k: 1 } });
    expect(calls.inputOf("fc-m002")).toEqual({ args: [2], kwargs: null });
  });

  it("cancels every queued call of a function in one statement, leaving running ones", async () => {
    const { calls } = stores();
    for (const id of ["fc-q1", "fc-q2", "fc-r1"]) await calls.insert(call(id));
    await calls.insert({ ...call("fc-other"), function: "other" });
    await calls.compareAndSet("fc-r1", { status: "queued", attempt: 1 }, { status: "running", attempt: 1, startedAt: 7 });
    const error = { type: "CancelledError", message: "app app was stopped", traceback: "" };
    const cancelled = await calls.cancelQueued("app", "fn", error, 10, 20);
    expect(cancelled.map((c) => c.id).sort()).toEqual(["fc-q1", "fc-q2"]);
    expect(calls.get("fc-q1")).toMatchObject({ status: "cancelled", finishedAt: 10, expiresAt: 20, error });
    expect(calls.get("fc-r1")).toMatchObject({ status: "running" });
    expect(calls.get("fc-other")).toMatchObject({ status: "queued" });
  });

  it("refuses a duplicate id", async () => {
    const { calls } = stores();
    await calls.insert(call("fc-1"));
    await expect(calls.insert(call("fc-1"))).rejects.toThrow(/UNIQUE|PRIMARY KEY/);
  });

  it("lists newest first, filtered by app, function and status, with paging", async () => {
    const { calls } = stores();
    await Promise.all([
      calls.insert(call("fc-1", { app: "a", function: "x" })),
      calls.insert(call("fc-2", { app: "a", function: "y" })),
      calls.insert(call("fc-3", { app: "b", function: "x" })),
      calls.insert(call("fc-4", { app: "a", function: "x" })),
    ]);
    await calls.compareAndSet("fc-4", { status: "queued", attempt: 1 }, { status: "running", attempt: 1 });

    const ids = (q: Parameters<CallStore["list"]>[0]) => calls.list(q).map((c) => c.id);
    expect(ids({ limit: 10 })).toEqual(["fc-4", "fc-3", "fc-2", "fc-1"]);
    expect(ids({ limit: 2 })).toEqual(["fc-4", "fc-3"]);
    expect(ids({ limit: 10, before: "fc-3" })).toEqual(["fc-2", "fc-1"]);
    expect(ids({ limit: 10, app: "a" })).toEqual(["fc-4", "fc-2", "fc-1"]);
    expect(ids({ limit: 10, app: "a", function: "x" })).toEqual(["fc-4", "fc-1"]);
    expect(ids({ limit: 10, status: "running" })).toEqual(["fc-4"]);
    expect(ids({ limit: 10, app: "nope" })).toEqual([]);
  });

  it("listOpen returns queued and running calls, oldest first", async () => {
    const { calls } = stores();
    for (const id of ["fc-3", "fc-1", "fc-2", "fc-4"]) await calls.insert(call(id));
    await calls.compareAndSet("fc-2", { status: "queued", attempt: 1 }, { status: "running", attempt: 1 });
    await calls.compareAndSet("fc-3", { status: "queued", attempt: 1 }, { status: "cancelled", attempt: 1 });
    expect(calls.listOpen().map((c) => [c.id, c.status])).toEqual([
      ["fc-1", "queued"],
      ["fc-2", "running"],
      ["fc-4", "queued"],
    ]);
  });

  it("compareAndSet changes the row only from the expected status and attempt", async () => {
    const { calls } = stores();
    await calls.insert(call("fc-1"));

    const dispatched = await calls.compareAndSet("fc-1", { status: "queued", attempt: 1 }, { status: "running", attempt: 1, startedAt: 2000, containerId: "c1" });
    expect(dispatched).toBe(true);
    expect(calls.get("fc-1")).toMatchObject({ status: "running", attempt: 1, startedAt: 2000, containerId: "c1", runAt: 1000 });

    // a second dispatch from the same (queued, 1) finds the row moved on
    expect(await calls.compareAndSet("fc-1", { status: "queued", attempt: 1 }, { status: "running", attempt: 1, containerId: "c2" })).toBe(false);
    expect(calls.get("fc-1")?.containerId).toBe("c1");

    const succeeded = await calls.compareAndSet(
      "fc-1",
      { status: "running", attempt: 1 },
      { status: "succeeded", attempt: 1, finishedAt: 3000, expiresAt: 9000, resultJson: JSON.stringify({ ok: [1, 2] }) },
    );
    expect(succeeded).toBe(true);
    expect(calls.get("fc-1")).toMatchObject({ status: "succeeded", finishedAt: 3000, expiresAt: 9000, resultJson: '{"ok":[1,2]}', containerId: "c1", startedAt: 2000 });
  });

  it("a stale attempt changes nothing", async () => {
    const { calls } = stores();
    await calls.insert(call("fc-1"));
    await calls.compareAndSet("fc-1", { status: "queued", attempt: 1 }, { status: "running", attempt: 1, startedAt: 2000 });
    // attempt 1 was lost: attempt 2 is queued to run later, with the error kept
    const lost = { type: "ContainerLostError", message: "gone", traceback: "" };
    expect(
      await calls.compareAndSet("fc-1", { status: "running", attempt: 1 }, { status: "queued", attempt: 2, runAt: 5000, containerId: null, error: lost }),
    ).toBe(true);
    const before = calls.get("fc-1");
    expect(before).toMatchObject({ status: "queued", attempt: 2, runAt: 5000, containerId: null, error: lost });

    // attempt 1's late result arrives
    const late = await calls.compareAndSet("fc-1", { status: "running", attempt: 1 }, { status: "succeeded", attempt: 1, resultJson: "42", finishedAt: 6000 });
    expect(late).toBe(false);
    expect(calls.get("fc-1")).toEqual(before);
  });

  it("compareAndSet of a missing call resolves false", async () => {
    const { calls } = stores();
    expect(await calls.compareAndSet("fc-nope", { status: "queued", attempt: 1 }, { status: "cancelled", attempt: 1 })).toBe(false);
  });

  it("expireResults drops results whose expires_at passed and marks them expired", async () => {
    const { calls } = stores();
    for (const [id, expiresAt] of [["fc-1", 100], ["fc-2", 200], ["fc-3", null]] as const) {
      await calls.insert(call(id));
      await calls.compareAndSet(id, { status: "queued", attempt: 1 }, { status: "running", attempt: 1 });
      await calls.compareAndSet(id, { status: "running", attempt: 1 }, { status: "succeeded", attempt: 1, expiresAt, resultJson: `"result ${id}"` });
    }

    expect(await calls.expireResults(150)).toBe(1);
    expect(calls.get("fc-1")).toMatchObject({ status: "succeeded", expired: true });
    expect(calls.get("fc-1")?.resultJson).toBeNull();
    expect(calls.get("fc-2")).toMatchObject({ expired: false, resultJson: '"result fc-2"' });
    expect(calls.get("fc-3")).toMatchObject({ expired: false, resultJson: '"result fc-3"' });

    expect(await calls.expireResults(150)).toBe(0); // already expired
    expect(await calls.expireResults(200)).toBe(1); // expires_at <= now
    expect(calls.get("fc-2")).toMatchObject({ expired: true });
    expect(calls.get("fc-3")?.expired).toBe(false); // no expiry: kept forever
  });

  it("finish reads back from memory for the latest finished calls, from the row beyond them, and expiry drops them", async () => {
    const db = open();
    const commit = new GroupCommit(db);
    const calls = new CallStore(db, commit, 2);
    for (const id of ["fc-1", "fc-2", "fc-3"]) {
      await calls.insert(call(id));
      const rec = { ...calls.get(id)!, status: "succeeded" as const, finishedAt: 50, expiresAt: 100, resultJson: `"${id}"` };
      expect(await calls.finish(rec, { status: "queued", attempt: 1 })).toBe(true);
    }
    // Change the rows behind the store's back: the two latest are served from memory, the first is read.
    db.prepare(`UPDATE calls SET result = '"changed"'`).run();
    expect(calls.get("fc-1")?.resultJson).toBe('"changed"');
    expect(calls.get("fc-2")?.resultJson).toBe('"fc-2"');
    expect(calls.get("fc-3")).toMatchObject({ status: "succeeded", finishedAt: 50, resultJson: '"fc-3"' });
    // A finish from the wrong state changes nothing and is not remembered.
    expect(await calls.finish({ ...calls.get("fc-3")!, status: "failed" }, { status: "running", attempt: 1 })).toBe(false);
    expect(calls.get("fc-3")?.status).toBe("succeeded");

    expect(await calls.expireResults(100)).toBe(3);
    expect(calls.get("fc-3")).toMatchObject({ expired: true, resultJson: null });
  });

  it("expireResults is bounded per run", async () => {
    const { calls } = stores();
    for (const id of ["fc-1", "fc-2", "fc-3"]) {
      await calls.insert(call(id));
      await calls.compareAndSet(id, { status: "queued", attempt: 1 }, { status: "failed", attempt: 1, expiresAt: 10 });
    }
    expect(await calls.expireResults(100, 2)).toBe(2);
    expect(await calls.expireResults(100, 2)).toBe(1);
    expect(calls.list({ limit: 10 }).every((c) => c.expired)).toBe(true);
  });
});

describe("GroupCommit", () => {
  it("runs a runSoon write now, in a transaction of its own, and leaves durable commits fsynced (synchronous=FULL)", async () => {
    const { db, commit } = stores();
    const other = reader();
    const count = () => (other.prepare(`SELECT count(*) AS n FROM meta WHERE key LIKE 'soon%'`).get() as { n: number }).n;
    const taken = commit.runSoon(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('soon-1', 'v')`).run().changes);
    expect(count()).toBe(1); // committed before runSoon returned, not at the end of the tick
    await expect(taken).resolves.toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL again for everything else
    // A write that throws rolls back alone, and the setting is still restored.
    await expect(commit.runSoon(() => {
      db.prepare(`INSERT INTO meta (key, value) VALUES ('soon-2', 'v')`).run();
      throw new Error("boom");
    })).rejects.toThrow("boom");
    expect(count()).toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(2);
  });

  it("groups the writes issued in one tick into one batch", async () => {
    const { commit, calls } = stores();
    const start = commit.batches;
    await Promise.all(["fc-1", "fc-2", "fc-3", "fc-4"].map((id) => calls.insert({ id, app: "a", function: "f", args: [], now: 1 })));
    expect(commit.batches).toBe(start + 1);

    await calls.insert({ id: "fc-5", app: "a", function: "f", args: [], now: 1 });
    expect(commit.batches).toBe(start + 2);
    expect(calls.list({ limit: 10 })).toHaveLength(5);
  });

  it("resolves each write with its value, only after the batch committed", async () => {
    const { db, commit } = stores();
    const other = reader();
    const count = () => (other.prepare(`SELECT count(*) AS n FROM meta`).get() as { n: number }).n;

    const written = commit.run(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('k', 'v')`).run().changes);
    expect(count()).toBe(0); // not yet run: it waits for the end of this tick
    let seenByOtherConnection = -1;
    const value = await written.then((v) => {
      seenByOtherConnection = count();
      return v;
    });
    expect(value).toBe(1);
    expect(seenByOtherConnection).toBe(1);
  });

  it("runs the writes in the order they were issued", async () => {
    const { db, commit } = stores();
    const put = (v: string) => commit.run(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('k', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(v));
    await Promise.all([put("1"), put("2"), put("3")]);
    expect(new AppStore(db).getMeta("k")).toBe("3");
  });

  it("one failing write rejects alone, rolled back, while its neighbours commit", async () => {
    const { db, commit } = stores();
    const put = (k: string) => db.prepare(`INSERT INTO meta (key, value) VALUES (?, 'v')`).run(k);
    const start = commit.batches;

    const results = await Promise.allSettled([
      commit.run(() => put("before")),
      commit.run(() => {
        put("partial"); // undone by the savepoint
        throw new Error("boom");
      }),
      commit.run(() => put("after")),
    ]);

    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error("boom"));
    expect(commit.batches).toBe(start + 1);
    const keys = (reader().prepare(`SELECT key FROM meta ORDER BY key`).all() as { key: string }[]).map((r) => r.key);
    expect(keys).toEqual(["after", "before"]);
  });

  it("a deferred write joins the next batch a normal write triggers, in order", async () => {
    const { db, commit } = stores();
    const put = (v: string) => () => db.prepare(`INSERT INTO meta (key, value) VALUES ('k', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(v);
    const start = commit.batches;
    const deferred = commit.defer(put("deferred"), 60_000);
    await new Promise((r) => setImmediate(r)); // a whole turn passes: the deferred write waits
    expect(commit.batches).toBe(start);
    await Promise.all([deferred, commit.run(put("after"))]);
    expect(commit.batches).toBe(start + 1);
    expect(new AppStore(db).getMeta("k")).toBe("after");
  });

  it("a deferred write alone is committed after its delay", async () => {
    const { db, commit } = stores();
    const start = commit.batches;
    const changes = await commit.defer(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('k', 'v')`).run().changes, 20);
    expect(changes).toBe(1);
    expect(commit.batches).toBe(start + 1);
  });

  it("close commits what is pending, then refuses new writes", async () => {
    const { db, commit } = stores();
    const pending = commit.run(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('k', 'v')`).run().changes);
    commit.close();
    await expect(pending).resolves.toBe(1);
    await expect(commit.run(() => 1)).rejects.toThrow("the store is closed");
  });
});

describe("AppStore", () => {
  const fn = (app: string, name: string, o: Partial<FunctionRecord> = {}): FunctionRecord => ({
    app,
    name,
    spec: resolveFunctionSpec(name, { timeout: 10 }),
    image: "gantry/fn-node:0123456789abcdef0123",
    bundleHash: "h1",
    deployedAt: 1000,
    runtime: "node",
    module: "app.mjs",
    ...o,
  });
  const app = (name: string, bundleHash: string, deployedAt: number) => ({ name, state: "deployed" as const, bundleHash, source: "export default 1", deployedAt, expiresAt: null });

  it("saveDeployment stores the app and its functions", () => {
    const { apps } = stores();
    apps.saveDeployment(app("a", "h1", 1000), [fn("a", "f1"), fn("a", "f2")]);
    expect(apps.listApps()).toEqual([app("a", "h1", 1000)]);
    expect(apps.listFunctions()).toEqual([fn("a", "f1"), fn("a", "f2")]);
  });

  it("keeps a python function's runtime and module", () => {
    const { apps } = stores();
    const py = fn("p", "process_job", { runtime: "python", module: "my_job_queue", spec: resolveFunctionSpec("process_job", {}, "python") });
    apps.saveDeployment(app("p", "h1", 1000), [py]);
    expect(apps.listFunctions()).toEqual([py]);
  });

  it("a redeploy replaces the app's functions, and leaves other apps alone", () => {
    const { apps } = stores();
    apps.saveDeployment(app("a", "h1", 1000), [fn("a", "f1"), fn("a", "f2")]);
    apps.saveDeployment(app("b", "hb", 1500), [fn("b", "g")]);
    apps.saveDeployment(app("a", "h2", 2000), [fn("a", "f3", { bundleHash: "h2", deployedAt: 2000 })]);

    expect(apps.listApps()).toEqual([app("a", "h2", 2000), app("b", "hb", 1500)]);
    expect(apps.listFunctions().map((f) => `${f.app}/${f.name}@${f.bundleHash}`)).toEqual(["a/f3@h2", "b/g@h1"]);
  });

  it("setAppState changes a known app only", () => {
    const { apps } = stores();
    apps.saveDeployment(app("a", "h1", 1000), [fn("a", "f1")]);
    expect(apps.setAppState("a", "stopped")).toBe(true);
    expect(apps.listApps()[0]?.state).toBe("stopped");
    expect(apps.setAppState("nope", "stopped")).toBe(false);
  });

  it("meta get and set", () => {
    const { apps } = stores();
    expect(apps.getMeta("k")).toBeNull();
    apps.setMeta("k", "one");
    expect(apps.getMeta("k")).toBe("one");
    apps.setMeta("k", "two");
    expect(apps.getMeta("k")).toBe("two");
  });
});
