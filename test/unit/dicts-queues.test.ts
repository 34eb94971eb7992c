/**
 * Dicts and Queues in the service layer over a real SQLite file and the group commit: atomic
 * compare-and-set among racing callers, waits in the daemon for a put (or for room), limits named,
 * pickles kept from other apps' functions, and a partition cleared after its partition_ttl.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../daemon/logger.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { GroupCommit } from "../../daemon/store/group-commit.js";
import { DictStore, QueueStore } from "../../daemon/store/dq-store.js";
import { Dicts } from "../../daemon/service/dicts.js";
import { Queues } from "../../daemon/service/queues.js";
import { ServiceError } from "../../daemon/service/errors.js";
import { DQ_LIMITS } from "../../protocol/dicts-queues.js";

let dir: string;
let db: Db;
let commit: GroupCommit;
let dicts: Dicts;
let queues: Queues;
let now = 1_000_000;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "gantry-dq-"));
  db = openDatabase(join(dir, "gantry.db"));
  commit = new GroupCommit(db);
  dicts = new Dicts({ store: new DictStore(db, commit), log: silentLogger, clock: () => now });
  queues = new Queues({ store: new QueueStore(db, commit), log: silentLogger });
  await dicts.objects.create("d", false);
  await queues.objects.create("q", false);
});
afterEach(() => {
  queues.close();
  commit.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const v = (value: unknown) => ({ value });
const codeOf = async (p: Promise<unknown>) => ((await p.then(() => null, (e: unknown) => e)) as ServiceError | null)?.code;

describe("Dicts", () => {
  it("keep entries by their canonical key, so JSON keys from either language meet", async () => {
    await dicts.put("d", v({ b: 1, a: [1, 2] }), v("first"), false, null);
    expect(dicts.get("d", v({ a: [1, 2], b: 1 }), null)).toEqual({ found: true, value: { value: "first" } });
    await dicts.put("d", { pickled: "gASVAwAAAAAAAACMAXiULg==" }, v(2), false, null);
    expect(dicts.len("d")).toEqual({ len: 2 });
    expect((await dicts.pop("d", v({ a: [1, 2], b: 1 }), null)).value).toEqual({ value: "first" });
    expect(dicts.contains("d", v({ a: [1, 2], b: 1 }))).toEqual({ found: false });
    expect(dicts.len("d")).toEqual({ len: 1 });
  });

  it("let exactly one of 12 racing put(skip_if_exists) win, and keep its value", async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => dicts.put("d", v("lock"), v(i), true, null)));
    expect(answers.filter((a) => a.created)).toHaveLength(1);
    const winner = answers.findIndex((a) => a.created);
    expect(dicts.get("d", v("lock"), null).value).toEqual({ value: winner });
  });

  it("page through items oldest write first, a rewritten key moving to the end", async () => {
    await dicts.update("d", [{ key: v("a"), value: v(1) }, { key: v("b"), value: v(2) }, { key: v("c"), value: v(3) }], null);
    await dicts.put("d", v("a"), v(10), false, null);
    const first = dicts.items("d", 0, 2, null);
    expect(first.items.map((i) => i.key)).toEqual([v("b"), v("c")]);
    expect(dicts.items("d", first.next!, 2, null)).toEqual({ items: [{ key: v("a"), value: v(10) }], next: null });
  });

  it("refuse bad shapes and sizes, naming the limit, and give no other app's function a pickle one function wrote", async () => {
    expect(await codeOf(dicts.put("d", { nope: 1 }, v(1), false, null))).toBe("invalid_argument");
    expect(await codeOf(dicts.put("d", v("k"), v("x".repeat(DQ_LIMITS.valueBytes)), false, null))).toBe("invalid_argument");
    await dicts.put("d", v("secret"), { pickled: "gASVAwAAAAAAAACMAXiULg==" }, false, "app-a");
    expect(dicts.get("d", v("secret"), "app-a").found).toBe(true);
    expect(dicts.get("d", v("secret"), null).found).toBe(true); // the host reads it
    expect(() => dicts.get("d", v("secret"), "app-b")).toThrow(/pickled by a function of app app-a: a function of app app-b may not unpickle it/);
    await dicts.put("d", v("shared"), v({ ok: true }), false, "app-a");
    expect(dicts.get("d", v("shared"), "app-b").value).toEqual(v({ ok: true })); // JSON passes
    expect(await codeOf(dicts.objects.create("d", false))).toBe("conflict");
    expect(() => dicts.view("../x")).toThrow(/is not a Dict name/);
  });
});

describe("Queues", () => {
  it("hand each item to one consumer, oldest first, per partition", async () => {
    await queues.put("q", { values: [v(1), v(2), v(3)] }, null);
    await queues.put("q", { values: [v("p")], partition: "other" }, null);
    const [a, b] = await Promise.all([queues.get("q", { n: 2 }, null), queues.get("q", { n: 2 }, null)]);
    expect([...a.values, ...b.values]).toEqual([v(1), v(2), v(3)]);
    expect(queues.len("q", undefined, true)).toEqual({ len: 1 });
    expect((await queues.get("q", { partition: "other" }, null)).values).toEqual([v("p")]);
  });

  it("wait in the daemon for a put (not past the timeout), and answer nothing when none comes", async () => {
    const waiting = queues.get("q", { timeout: 30 }, null);
    await queues.put("q", { values: [v("late")] }, null);
    expect((await waiting).values).toEqual([v("late")]);
    const started = Date.now();
    expect((await queues.get("q", { timeout: 0.2 }, null)).values).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("refuse a put past a partition's limit of items unless room comes within its timeout; nothing of it is put", async () => {
    for (let i = 0; i < DQ_LIMITS.itemsPerPartition; i += DQ_LIMITS.perRequest) {
      await queues.put("q", { values: Array.from({ length: DQ_LIMITS.perRequest }, (_, k) => v(i + k)) }, null);
    }
    const err = await queues.put("q", { values: [v("over")] }, null).catch((e: ServiceError) => e);
    expect((err as ServiceError).code).toBe("queue_full");
    expect((err as ServiceError).message).toContain(`the partition holds ${DQ_LIMITS.itemsPerPartition} items; 1 more would pass the limit of ${DQ_LIMITS.itemsPerPartition}; nothing was put`);
    const blocked = queues.put("q", { values: [v("waits")], timeout: 30 }, null);
    await queues.get("q", { n: 1 }, null);
    expect(await blocked).toEqual({ put: 1 });
    expect(queues.len("q", undefined, false)).toEqual({ len: DQ_LIMITS.itemsPerPartition });
  });

  it("refuse a new partition past the queue's limit at once, naming it (waiting would not free one)", async () => {
    const small = new Queues({ store: new QueueStore(db, commit), log: silentLogger, limits: { itemsPerPartition: 10, partitionsPerQueue: 2 } });
    await small.put("q", { values: [v(1)], partition: "a" }, null);
    await small.put("q", { values: [v(2)], partition: "b" }, null);
    const started = Date.now();
    const err = await small.put("q", { values: [v(3)], partition: "c", timeout: 30 }, null).catch((e: ServiceError) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((err as ServiceError).code).toBe("limit_exceeded");
    expect((err as ServiceError).message).toBe("Queue q: the queue has 2 partitions, the limit; nothing was put: clear partitions, or let them expire (24 h after their last put)");
    expect(await small.put("q", { values: [v(4)], partition: "a" }, null)).toEqual({ put: 1 }); // an existing one still takes puts
    small.close();
  });

  it("peek items after a cursor without taking them, and check partition keys", async () => {
    await queues.put("q", { values: [v("a"), v("b")] }, null);
    const { items } = await queues.items("q", undefined, 0, 10, 0, null);
    expect(items.map((i) => i.value)).toEqual([v("a"), v("b")]);
    expect((await queues.items("q", undefined, items[1]!.seq, 10, 0, null)).items).toEqual([]);
    expect(queues.len("q", undefined, false)).toEqual({ len: 2 });
    expect(await codeOf(queues.put("q", { values: [v(1)], partition: "x".repeat(65) }, null))).toBe("invalid_argument");
    expect(await codeOf(queues.put("q", { values: [v(1)], partition: "" }, null))).toBe("invalid_argument");
    expect(await codeOf(queues.get("q", { n: 0 }, null))).toBe("invalid_argument");
  });
});
