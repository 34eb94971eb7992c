/**
 * Dicts and Queues in the TypeScript SDK (issue 20), without a daemon: a client's Dict and Queue
 * speak the contract's routes (protocol/dicts-queues.ts) against a small in-memory stand-in for the
 * daemon's /v1/dicts and /v1/queues (test/helpers/dq-fake.ts), which records what it was sent and
 * waits as the daemon does (a get with nothing there, a put with no room) for at most the
 * request's `timeout`.
 */
import type http from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DQ_LIMITS, MAX_WAIT_S } from "../../protocol/dicts-queues.js";
import { GantryClient } from "../../sdk/client.js";
import { DQ_HEARTBEAT_INTERVAL_MS, jsonProblem } from "../../sdk/dq-common.js";
import { InvalidArgumentError, NotFoundError, QueueEmptyError, QueueFullError, ValueNotJsonError } from "../../sdk/errors.js";
import { DEFAULT, keyOf, startFake, type Fake } from "../helpers/dq-fake.js";

let fake: Fake;
let server: http.Server;
let client: GantryClient;
beforeAll(async () => {
  const started = await startFake();
  fake = started.fake;
  server = started.server;
  client = new GantryClient({ url: started.url });
});
afterAll(async () => {
  client.close();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.capacity = DQ_LIMITS.itemsPerPartition;
  fake.fullAtOnce = false;
  fake.emptyAtOnce = 0;
});
const last = () => fake.requests.at(-1)!;
const routes = () => fake.requests.map((r) => `${r.method} ${r.url}`);

describe("values", () => {
  it("are JSON through and through: anything JSON.stringify would drop or change is named where it sits", () => {
    expect(jsonProblem({ a: [1, "x", null, true, { b: 2.5 }] })).toBeNull();
    expect(jsonProblem(Object.create(null))).toBeNull();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /^it is undefined/],
      [NaN, /the number NaN/],
      [{ a: [1, Infinity] }, /^\.a\[1\] is the number Infinity/],
      [{ "a b": () => 1 }, /^\["a b"\] is a function/],
      [{ d: new Date(0) }, /^\.d is a Date, which JSON cannot hold \(store date\.toISOString\(\)\)/],
      [new Map(), /a Map.*Object\.fromEntries/],
      [[10n], /the bigint 10n/],
      [{ u: undefined }, /^\.u is undefined/],
      [cyclic, /^\.self refers to itself/],
      [Buffer.from("x"), /a Buffer/],
    ];
    for (const [v, message] of cases) expect(jsonProblem(v)).toMatch(message);
  });
});

describe("client.dicts", () => {
  it("fromName finds a dict, throws NotFoundError for a missing one, creates it with createIfMissing; names are checked before sending", async () => {
    await expect(client.dicts.fromName("nope")).rejects.toThrow(NotFoundError);
    const d = await client.dicts.fromName("made", { createIfMissing: true });
    expect(d.name).toBe("made");
    expect(d.isEphemeral).toBe(false);
    expect(routes()).toEqual(["GET /v1/dicts/nope", "GET /v1/dicts/made", "POST /v1/dicts"]);
    expect(last().body).toEqual({ name: "made", exist_ok: true });
    const before = fake.requests.length;
    await expect(client.dicts.fromName("a/b")).rejects.toThrow(/"a\/b" is not a Dict name/);
    await expect(client.dicts.fromName("x".repeat(64))).rejects.toThrow(/64 characters; at most 63/);
    await expect(client.dicts.delete("..")).rejects.toThrow(InvalidArgumentError);
    expect(fake.requests.length).toBe(before);
    expect((await client.dicts.list()).map((v) => v.name)).toContain("made");
    expect(await client.dicts.info("made")).toMatchObject({ name: "made", len: 0, ephemeral: false });
    await client.dicts.delete("made");
    await expect(client.dicts.delete("made")).rejects.toThrow(NotFoundError);
    await client.dicts.delete("made", { allowMissing: true });
  });

  it("get, has, put (skipIfExists), pop speak the routes with keys and values as {value}; a key is its canonical JSON", async () => {
    const d = await client.dicts.fromName("kv", { createIfMissing: true });
    expect(await d.get("missing")).toBeUndefined();
    expect(last()).toMatchObject({ method: "POST", url: "/v1/dicts/kv/get", body: { key: { value: "missing" } } });
    expect(await d.put("a", { n: 1, list: [1, 2] })).toBe(true);
    expect(last().body).toEqual({ key: { value: "a" }, value: { value: { n: 1, list: [1, 2] } } });
    expect(await d.get("a")).toEqual({ n: 1, list: [1, 2] });
    expect(await d.has("a")).toBe(true);
    expect(await d.has("b")).toBe(false);
    expect(await d.put("a", "other", { skipIfExists: true })).toBe(false);
    expect(last().body).toEqual({ key: { value: "a" }, value: { value: "other" }, skip_if_exists: true });
    expect(await d.get("a")).toEqual({ n: 1, list: [1, 2] });
    await d.put({ b: 1, a: [2] }, null);
    expect(await d.has({ a: [2], b: 1 })).toBe(true);
    expect(await d.get({ a: [2], b: 1 })).toBeNull(); // a stored null is null, a missing key undefined
    await d.put(1, "one");
    expect(await d.get("1")).toBeUndefined();
    expect(await d.get(1)).toBe("one");
    expect(await d.len()).toBe(3);
    expect(last()).toMatchObject({ method: "GET", url: "/v1/dicts/kv/len" });
    expect(await d.pop(1)).toBe("one");
    expect(await d.pop(1)).toBeUndefined();
    expect(await d.clear()).toBe(2);
    expect(`${last().method} ${last().url}`).toBe("POST /v1/dicts/kv/clear");
    expect(await d.len()).toBe(0);
  });

  it("refuses keys and values that are not JSON, or too big, before sending anything", async () => {
    const d = await client.dicts.fromName("kv", { createIfMissing: true });
    const before = fake.requests.length;
    await expect(d.put("a", undefined)).rejects.toThrow(/dict kv: put's value at "a": the value is undefined, which JSON cannot hold/);
    await expect(d.put("a", { when: new Date() })).rejects.toThrow(/dict kv: put's value at "a": \.when is a Date/);
    await expect(d.get(NaN)).rejects.toThrow(/dict kv: get's key: the value is the number NaN/);
    await expect(d.put("big", "x".repeat(DQ_LIMITS.valueBytes))).rejects.toThrow(/is 1048578 bytes as JSON; at most 1048576/);
    await expect(d.update({ ok: 1, bad: () => 1 })).rejects.toThrow(/update's value at "bad": the value is a function/);
    await expect(d.update([["a", 1], ["b"]] as unknown as Array<[unknown, unknown]>)).rejects.toThrow(/update takes \[key, value\] pairs; entry 1 is \["b"\]/);
    await expect(d.update("ab" as never)).rejects.toThrow(/update takes an object, a Map or \[key, value\] pairs/);
    expect(fake.requests.length).toBe(before);
  });

  it("update takes an object, a Map or pairs, in requests of at most DQ_LIMITS.perRequest; keys, values and items page through /items", async () => {
    const d = await client.dicts.fromName("many", { createIfMissing: true });
    expect(await d.update({ a: 1, b: 2 })).toBe(2);
    expect(last().body).toEqual({ entries: [{ key: { value: "a" }, value: { value: 1 } }, { key: { value: "b" }, value: { value: 2 } }] });
    await d.update(new Map<unknown, unknown>([[[1, 2], "pair"]]));
    expect(await d.get([1, 2])).toBe("pair");
    fake.requests.length = 0;
    const n = DQ_LIMITS.perRequest + 1;
    expect(await d.update(Array.from({ length: n }, (_, i) => [`k${i}`, i] as const))).toBe(n);
    expect(fake.requests.map((r) => (r.body!.entries as unknown[]).length)).toEqual([DQ_LIMITS.perRequest, 1]);

    fake.requests.length = 0;
    const keys: unknown[] = [];
    for await (const k of d.keys()) keys.push(k);
    expect(keys.length).toBe(n + 3);
    expect(keys.slice(0, 4)).toEqual(["a", "b", [1, 2], "k0"]);
    const pages = Math.ceil((n + 3) / DQ_LIMITS.maxGet);
    expect(fake.requests.length).toBe(pages);
    expect(fake.requests[0]!.url).toBe(`/v1/dicts/many/items?limit=${DQ_LIMITS.maxGet}`);
    expect(fake.requests[1]!.url).toBe(`/v1/dicts/many/items?after=${DQ_LIMITS.maxGet}&limit=${DQ_LIMITS.maxGet}`);
    const items: Array<[unknown, unknown]> = [];
    for await (const e of d.items()) {
      items.push(e);
      if (items.length === 3) break; // a loop may stop early
    }
    expect(items).toEqual([["a", 1], ["b", 2], [[1, 2], "pair"]]);
    let sum = 0;
    for await (const v of d.values()) if (typeof v === "number") sum += v;
    expect(sum).toBe(3 + (n * (n - 1)) / 2);
  });

  it("a value a Python program pickled throws ValueNotJsonError (keeping it), and a pop keeps what it removed", async () => {
    const d = await client.dicts.fromName("py", { createIfMissing: true });
    const entries = fake.dicts.get("py")!.entries;
    const pickled = { pickled: Buffer.from([0x80, 0x04, 0x4b, 0x01, 0x2e]).toString("base64") };
    entries.set(keyOf({ value: "obj" }), { key: { value: "obj" }, value: pickled });
    const err = (await d.get("obj").catch((e: unknown) => e)) as ValueNotJsonError;
    expect(err).toBeInstanceOf(ValueNotJsonError);
    expect(err.code).toBe("value_not_json");
    expect(err.message).toBe(
      'dict py: the value at "obj" holds a Python value (pickled by the Python program that stored it, 5 bytes), which only a Python client can read: gantry.Dict.from_name("py").',
    );
    expect(err.pickled).toBe(pickled.pickled);
    expect(await d.has("obj")).toBe(true);
    const keys: unknown[] = [];
    for await (const k of d.keys()) keys.push(k); // keys alone read fine
    expect(keys).toEqual(["obj"]);
    await expect(d.items().next()).rejects.toThrow(ValueNotJsonError);
    const popped = (await d.pop("obj").catch((e: unknown) => e)) as ValueNotJsonError;
    expect(popped.removed).toEqual([pickled]);
    expect(popped.message).toMatch(/It was taken out all the same: the error's `removed` holds it as it travelled\.$/);
    expect(await d.has("obj")).toBe(false);
  });
});

describe("client.queues", () => {
  it("fromName, list, info and delete as for dicts; put and get speak the routes, values as {value}", async () => {
    await expect(client.queues.fromName("nope")).rejects.toThrow(NotFoundError);
    const q = await client.queues.fromName("jobs", { createIfMissing: true });
    expect(routes()).toEqual(["GET /v1/queues/nope", "GET /v1/queues/jobs", "POST /v1/queues"]);
    await q.put({ job: 1 });
    expect(last()).toMatchObject({ method: "POST", url: "/v1/queues/jobs/put", body: { values: [{ value: { job: 1 } }], timeout: MAX_WAIT_S } });
    await q.put("two", { partition: "p", partitionTtlMs: 1500, timeoutMs: 0 });
    expect(last().body).toEqual({ values: [{ value: "two" }], partition: "p", partition_ttl: 1.5, timeout: 0 });
    expect(await client.queues.info("jobs")).toMatchObject({ name: "jobs", len: 2, partitions: 2 });
    expect((await client.queues.list()).map((v) => v.name)).toContain("jobs");
    expect(await q.get()).toEqual({ job: 1 });
    expect(last()).toMatchObject({ url: "/v1/queues/jobs/get", body: { n: 1, timeout: MAX_WAIT_S } });
    expect(await q.get({ partition: "p", timeoutMs: 0 })).toBe("two");
    expect(last().body).toEqual({ n: 1, partition: "p", timeout: 0 });
    await client.queues.delete("jobs");
    await expect(q.get({ timeoutMs: 0 })).rejects.toThrow(NotFoundError);
  });

  it("get throws QueueEmptyError once timeoutMs has passed; it waits in the daemon, not by polling", async () => {
    const q = await client.queues.fromName("empty", { createIfMissing: true });
    fake.requests.length = 0;
    await expect(q.get({ timeoutMs: 0 })).rejects.toThrow(QueueEmptyError);
    expect(fake.requests.length).toBe(1);
    fake.requests.length = 0;
    const started = Date.now();
    const err = (await q.get({ timeoutMs: 200, partition: "x" }).catch((e: unknown) => e)) as QueueEmptyError;
    expect(err).toBeInstanceOf(QueueEmptyError);
    expect(err.code).toBe("queue_empty");
    expect(err.message).toBe('queue empty (partition "x") is empty: nothing came within 200 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(fake.requests.length).toBeLessThanOrEqual(2); // one wait of 0.2 s (and, at most, a last one for what was left of it)
    expect(fake.requests[0]!.body!.timeout).toBeGreaterThan(0.15);
    expect(fake.requests[0]!.body!.timeout).toBeLessThanOrEqual(0.2);
    expect(await q.getMany(5, { timeoutMs: 0 })).toEqual([]);

    // Without timeoutMs it waits for ever, a request of at most MAX_WAIT_S at a time.
    fake.requests.length = 0;
    fake.emptyAtOnce = 3;
    const waiting = q.get();
    await vi.waitFor(() => expect(fake.requests.length).toBe(4), { timeout: 2000 });
    setTimeout(() => void q.put("late"), 100);
    expect(await waiting).toBe("late");
    expect(fake.requests.filter((r) => r.url.endsWith("/get")).map((r) => r.body!.timeout)).toEqual([MAX_WAIT_S, MAX_WAIT_S, MAX_WAIT_S, MAX_WAIT_S]);
  });

  it("getMany takes up to n, waiting only for the first; more than DQ_LIMITS.maxGet take several requests", async () => {
    const q = await client.queues.fromName("bulk", { createIfMissing: true });
    const values = Array.from({ length: 2600 }, (_, i) => i);
    await q.putMany(values);
    fake.requests.length = 0;
    const got = await q.getMany(2500);
    expect(got).toEqual(values.slice(0, 2500));
    expect(fake.requests.map((r) => [r.body!.n, r.body!.timeout])).toEqual([
      [1000, MAX_WAIT_S],
      [1000, 0],
      [500, 0],
    ]);
    expect(await q.getMany(1000, { timeoutMs: 0 })).toEqual(values.slice(2500));
    expect(await q.len()).toBe(0);
    await expect(q.getMany(0)).rejects.toThrow(/getMany takes a whole number of values ≥ 1, got 0/);
    await expect(q.getMany(1.5)).rejects.toThrow(InvalidArgumentError);
  });

  it("putMany checks every value first and sends runs no bigger than a partition holds", async () => {
    const q = await client.queues.fromName("chunks", { createIfMissing: true });
    fake.requests.length = 0;
    await expect(q.putMany([1, 2, undefined])).rejects.toThrow(/queue chunks: putMany's values\[2\]: the value is undefined/);
    await expect(q.putMany("abc" as never)).rejects.toThrow(/putMany takes an array of values, got a string/);
    await expect(q.put(1, { partition: "" })).rejects.toThrow(/a partition key must be a non-empty string/);
    await expect(q.put(1, { partition: "é".repeat(33) })).rejects.toThrow(/is 66 bytes; at most 64/);
    await expect(q.put(1, { partitionTtlMs: 0 })).rejects.toThrow(/partitionTtlMs must be a number of milliseconds above 0/);
    await expect(q.put(1, { partitionTtlMs: 25 * 3600 * 1000 })).rejects.toThrow(/at most 86400000 \(24 h\)/);
    await expect(q.put(1, { timeoutMs: -1 })).rejects.toThrow(/timeoutMs must be a number of milliseconds ≥ 0/);
    await q.putMany([]);
    expect(fake.requests.length).toBe(0);

    fake.capacity = DQ_LIMITS.itemsPerPartition;
    const chunk = Math.min(DQ_LIMITS.perRequest, DQ_LIMITS.itemsPerPartition);
    const n = 2 * chunk + 7;
    await q.putMany(new Set(Array.from({ length: n }, (_, i) => i)), { partition: "p" });
    expect(fake.requests.map((r) => (r.body!.values as unknown[]).length)).toEqual([chunk, chunk, 7]);
    expect(await q.len({ partition: "p" })).toBe(n);
    expect(last().url).toBe("/v1/queues/chunks/len?partition=p");
    expect(await q.len({ total: true })).toBe(n);
    expect(last().url).toBe("/v1/queues/chunks/len?total=1");
    expect(await q.len()).toBe(0);
    expect(last().url).toBe("/v1/queues/chunks/len");
    await expect(q.len({ partition: "p", total: true })).rejects.toThrow(/give a partition or total, not both/);
  });

  it("a full partition: put waits for room up to timeoutMs, then throws QueueFullError; a limit waiting cannot lift throws at once", async () => {
    const q = await client.queues.fromName("full", { createIfMissing: true });
    fake.capacity = 3;
    await q.putMany([1, 2, 3]);
    fake.requests.length = 0;
    const err = (await q.put(4, { timeoutMs: 0 }).catch((e: unknown) => e)) as QueueFullError;
    expect(err).toBeInstanceOf(QueueFullError);
    expect(err.code).toBe("queue_full");
    expect(err.message).toBe("queue full is full: a partition holds at most 3 items");
    expect(fake.requests.length).toBe(1);

    // Room made while it waits: the put goes in.
    setTimeout(() => void q.get(), 100);
    await q.put(4, { timeoutMs: 2000 });
    expect(await q.len()).toBe(3);

    // putMany: those before the run that found no room stay put, and the error says so.
    fake.capacity = 5;
    await q.clear();
    await expect(q.putMany([1, 2, 3, 4, 5, 6, 7], { timeoutMs: 100 })).rejects.toThrow(/at most 5 items$/);
    await q.clear();
    fake.capacity = DQ_LIMITS.itemsPerPartition + 2;
    const many = Array.from({ length: DQ_LIMITS.itemsPerPartition + 3 }, (_, i) => i);
    await expect(q.putMany(many, { timeoutMs: 50 })).rejects.toThrow(
      `queue full is full: a partition holds at most ${DQ_LIMITS.itemsPerPartition + 2} items (${DQ_LIMITS.itemsPerPartition} of ${many.length} values were put before it)`,
    );
    expect(await q.len()).toBe(DQ_LIMITS.itemsPerPartition);
    await q.clear();
    fake.capacity = 6;
    await q.putMany([0, 0, 0]);
    // Default: wait for ever, MAX_WAIT_S a request; an answer at once means waiting will not help.
    fake.fullAtOnce = true;
    fake.requests.length = 0;
    await expect(q.putMany([1, 2, 3, 4])).rejects.toThrow(QueueFullError);
    expect(fake.requests.map((r) => r.body!.timeout)).toEqual([MAX_WAIT_S]);
  });

  it("clear takes a partition or all; iterate reads in place, page by page, until nothing new comes within itemPollTimeoutMs", async () => {
    const q = await client.queues.fromName("iter", { createIfMissing: true });
    await q.clear({ partition: "p" });
    expect(last().body).toEqual({ partition: "p" });
    await q.clear({ all: true });
    expect(last().body).toEqual({ all: true });
    await expect(q.clear({ partition: "p", all: true })).rejects.toThrow(/give a partition or all, not both/);

    await q.putMany(["a", "b", "c"]);
    fake.requests.length = 0;
    const seen: unknown[] = [];
    for await (const v of q.iterate()) seen.push(v);
    expect(seen).toEqual(["a", "b", "c"]);
    expect(routes()).toEqual(["GET /v1/queues/iter/items?limit=1000", "GET /v1/queues/iter/items?after=3&limit=1000"]);
    expect(await q.len()).toBe(3); // nothing taken

    fake.requests.length = 0;
    setTimeout(() => void q.put("d"), 100);
    const more: unknown[] = [];
    const started = Date.now();
    for await (const v of q.iterate({ itemPollTimeoutMs: 400 })) more.push(v);
    expect(more).toEqual(["a", "b", "c", "d"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(fake.requests[1]!.url).toMatch(/^\/v1\/queues\/iter\/items\?after=3&limit=1000&wait=0\.(3|4)/);

    await q.put("x", { partition: "side" });
    const side: unknown[] = [];
    for await (const v of q.iterate({ partition: "side" })) side.push(v);
    expect(side).toEqual(["x"]);
    expect(fake.requests.at(-1)!.url).toMatch(/^\/v1\/queues\/iter\/items\?partition=side&after=\d+&limit=1000$/);
  });

  it("an item a Python program pickled throws ValueNotJsonError, which keeps what the get took out", async () => {
    const q = await client.queues.fromName("pyq", { createIfMissing: true });
    const pickled = { pickled: Buffer.from("pickle bytes").toString("base64") };
    const items = [{ value: "json" }, pickled];
    fake.queues.get("pyq")!.partitions.set(DEFAULT, items.map((value, i) => ({ seq: 100 + i, value })));
    await expect(q.iterate().next()).resolves.toEqual({ value: "json", done: false });
    const err = (await q.getMany(5).catch((e: unknown) => e)) as ValueNotJsonError;
    expect(err).toBeInstanceOf(ValueNotJsonError);
    expect(err.message).toMatch(/^queue pyq: an item holds a Python value \(pickled by the Python program that stored it, 12 bytes\), which only a Python client can read: gantry\.Queue\.from_name\("pyq"\)\. It was taken out all the same: the error's `removed` holds the 2 values taken as they travelled\.$/);
    expect(err.removed).toEqual(items);
    expect(await q.len()).toBe(0);
  });

  it("an ephemeral queue or dict heartbeats every EPHEMERAL_TTL_S / 4 without holding the process; closeEphemeral() stops and deletes it", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const q = await client.queues.ephemeral();
      const d = await client.dicts.ephemeral();
      expect(q.isEphemeral && d.isEphemeral).toBe(true);
      expect(DQ_HEARTBEAT_INTERVAL_MS).toBe(75_000);
      expect(vi.getTimerCount()).toBe(2);
      vi.advanceTimersByTime(DQ_HEARTBEAT_INTERVAL_MS);
      await vi.waitFor(() => {
        expect(fake.requests.some((r) => r.method === "POST" && r.url === `/v1/queues/${q.name}/heartbeat`)).toBe(true);
        expect(fake.requests.some((r) => r.method === "POST" && r.url === `/v1/dicts/${d.name}/heartbeat`)).toBe(true);
      });
      await q.put(1);
      await q.closeEphemeral();
      expect(vi.getTimerCount()).toBe(1);
      expect(`${last().method} ${last().url}`).toBe(`DELETE /v1/queues/${q.name}`);
      expect(fake.queues.has(q.name)).toBe(false);
      await q.closeEphemeral(); // gone already: nothing to do
      await d.closeEphemeral();
      expect(vi.getTimerCount()).toBe(0);
      const named = await client.dicts.fromName("named", { createIfMissing: true });
      await expect(named.closeEphemeral()).rejects.toThrow(/dict named is not ephemeral: .*client\.dicts\.delete\("named"\)/);
      // client.close() stops the heartbeats of those left open.
      await client.queues.ephemeral();
      await client.dicts.ephemeral();
      expect(vi.getTimerCount()).toBe(2);
      client.queues.stopHeartbeats();
      client.dicts.stopHeartbeats();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
