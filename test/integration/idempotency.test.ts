import Database from "better-sqlite3";
import http from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { InvalidArgumentError } from "../../sdk/errors.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("idempotency.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

interface Submitted {
  status: number;
  body: { call_id?: string; error?: { code: string; message: string } };
  replayed: string | null;
}

/** POSTs JSON to the daemon over TCP, with an Idempotency-Key when given. */
async function post(path: string, body: unknown, key?: string): Promise<Submitted> {
  const res = await fetch(t.baseUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { "Idempotency-Key": key }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Submitted["body"], replayed: res.headers.get("idempotent-replayed") };
}

const callsRoute = (fn: string) => `/v1/apps/idem/functions/${fn}/calls`;
const spawnHttp = (fn: string, data: unknown, key?: string) => post(callsRoute(fn), { args: [data] }, key);
const submitHttp = (fn: string, data: unknown, key?: string) => post(`/submit/idem/${fn}`, data, key);

/** How many calls the function has on record. */
async function callCount(fn: string): Promise<number> {
  const res = await fetch(`${t.baseUrl}/v1/calls?app=idem&function=${fn}&limit=1000`);
  return ((await res.json()) as { calls: unknown[] }).calls.length;
}

/** The function's log lines that contain `marker` (each run of record/other prints one). */
async function runsWith(fn: string, marker: string): Promise<number> {
  const res = await fetch(`${t.baseUrl}/v1/apps/idem/logs?function=${fn}&tail=10000`);
  const lines = (await res.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l) as { line: string });
  return lines.filter((l) => l.line.includes(marker)).length;
}

async function resultOf(id: string): Promise<unknown> {
  const res = await fetch(`${t.baseUrl}/v1/calls/${id}?wait=30`);
  const view = (await res.json()) as { status: string; result?: unknown };
  expect(view.status).toBe("succeeded");
  return view.result;
}

describe("idempotent submits over HTTP", () => {
  it("answers a repeated key on /v1/…/calls with the first call, says it was a replay, and runs the function once", async () => {
    const before = await callCount("record");
    const first = await spawnHttp("record", { order: 1, marker: "m-v1" }, "order-1");
    expect(first.status).toBe(202);
    expect(first.replayed).toBeNull();
    const id = first.body.call_id!;
    expect(id).toMatch(/^fc-[0-9a-z]{26}$/);

    // A replay's arguments are not looked at: the key already names a call.
    const again = await spawnHttp("record", { order: 2, marker: "m-v1" }, "order-1");
    expect(again).toEqual({ status: 202, body: { call_id: id }, replayed: "true" });
    expect(await resultOf(id)).toEqual({ order: 1, marker: "m-v1" });
    const late = await spawnHttp("record", { order: 3 }, "order-1"); // after the call finished, too
    expect(late).toEqual({ status: 202, body: { call_id: id }, replayed: "true" });

    expect(await callCount("record")).toBe(before + 1);
    await vi.waitFor(async () => expect(await runsWith("record", "m-v1")).toBe(1), { timeout: 10_000 });
  });

  it("does the same on the job-queue guide's POST /submit/…, which shares the key with /v1 for its function", async () => {
    const before = await callCount("record");
    const first = await submitHttp("record", { marker: "m-submit" }, "job-7");
    expect(first.status).toBe(202);
    expect(first.replayed).toBeNull();
    const id = first.body.call_id!;
    expect(await submitHttp("record", { marker: "m-submit" }, "job-7")).toEqual({ status: 202, body: { call_id: id }, replayed: "true" });
    expect(await spawnHttp("record", { marker: "m-submit" }, "job-7")).toEqual({ status: 202, body: { call_id: id }, replayed: "true" });
    expect(await resultOf(id)).toEqual({ marker: "m-submit" });
    expect(await callCount("record")).toBe(before + 1);
    await vi.waitFor(async () => expect(await runsWith("record", "m-submit")).toBe(1), { timeout: 10_000 });
  });

  it("queues exactly one call for concurrent submits with one key, and gives every one its ID", async () => {
    const before = await callCount("record");
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 ? submitHttp("record", { marker: "m-race" }, "race") : spawnHttp("record", { marker: "m-race" }, "race"))),
    );
    expect(answers.every((a) => a.status === 202)).toBe(true);
    expect(new Set(answers.map((a) => a.body.call_id)).size).toBe(1);
    expect(answers.filter((a) => a.replayed === null)).toHaveLength(1);
    expect(answers.filter((a) => a.replayed === "true")).toHaveLength(23);
    await resultOf(answers[0]!.body.call_id!);
    expect(await callCount("record")).toBe(before + 1);
    await vi.waitFor(async () => expect(await runsWith("record", "m-race")).toBe(1), { timeout: 10_000 });
  });

  it("scopes keys per function: the same key on another function makes another call", async () => {
    const a = await spawnHttp("record", "scoped", "shared-key");
    const b = await spawnHttp("other", "scoped", "shared-key");
    expect(a.replayed).toBeNull();
    expect(b.replayed).toBeNull();
    expect(b.body.call_id).not.toBe(a.body.call_id);
    expect(await resultOf(a.body.call_id!)).toBe("scoped");
    expect(await resultOf(b.body.call_id!)).toBe("scoped");
  });

  it("refuses bad keys with a 400 that names the header and the limit, and queues nothing", async () => {
    const before = await callCount("record");
    const cases: Array<[string, RegExp]> = [
      ["", /Idempotency-Key must be 1 to 255 characters; got 0/],
      ["k".repeat(256), /Idempotency-Key must be 1 to 255 characters; got 256/],
      ["caf\u00e9", /Idempotency-Key must be printable ASCII .*character 4 is U\+00E9/],
    ];
    for (const [key, message] of cases) {
      for (const res of [await spawnHttp("record", 1, key), await submitHttp("record", 1, key)]) {
        expect(res.status).toBe(400);
        expect(res.body.error!.code).toBe("invalid_argument");
        expect(res.body.error!.message).toMatch(message);
      }
    }
    expect((await spawnHttp("record", 1, "k".repeat(255))).status).toBe(202); // 255 is the limit, and allowed
    expect(await callCount("record")).toBe(before + 1);
  });

  it("refuses two Idempotency-Key headers in one request", async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        t.baseUrl + callsRoute("record"),
        { method: "POST", headers: { "content-type": "application/json", "Idempotency-Key": ["a", "b"] } },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ args: [1] }));
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toContain("send one Idempotency-Key header; this request has 2");
  });

  it("refuses the header on the batch route, which would name many calls with one key", async () => {
    const res = await post(`${callsRoute("record")}/batch`, { calls: [{ args: [1] }, { args: [2] }] }, "batch-1");
    expect(res.status).toBe(400);
    expect(res.body.error!.message).toMatch(/Idempotency-Key is not taken on a batch.*POST …\/calls/);
  });

  it("still answers with the first call once its result expired; the poll says expired as usual", async () => {
    const first = await spawnHttp("brief", "gone soon", "brief-1");
    const id = first.body.call_id!;
    expect(await resultOf(id)).toBe("gone soon");
    await vi.waitFor(
      async () => expect((await fetch(`${t.baseUrl}/result/${id}`)).status).toBe(404),
      { timeout: 10_000, interval: 200 },
    );
    const again = await spawnHttp("brief", "gone soon", "brief-1");
    expect(again).toEqual({ status: 202, body: { call_id: id }, replayed: "true" });
    const poll = await fetch(`${t.baseUrl}/result/${id}`);
    expect(((await poll.json()) as { error: { code: string } }).error.code).toBe("output_expired");
  });
});

describe("idempotency keys across restarts and time", () => {
  it("keeps a key across a daemon restart", async () => {
    const first = await spawnHttp("record", "before restart", "restart-key");
    await resultOf(first.body.call_id!);
    await t.restart();
    const again = await spawnHttp("record", "after restart", "restart-key");
    expect(again).toEqual({ status: 202, body: { call_id: first.body.call_id }, replayed: "true" });
  });

  it("forgets a key older than 24 h (a new call), and the expiry sweep prunes such keys", async () => {
    const old = await spawnHttp("record", "day one", "old-key");
    const pruned = await spawnHttp("other", "day one", "pruned-key");
    await resultOf(old.body.call_id!);
    await resultOf(pruned.body.call_id!);
    await t.stop();
    // Back-date both keys by 25 h in the stopped daemon's database.
    const db = new Database(join(t.home, "gantry.db"));
    const changed = db.prepare(`UPDATE idempotency_keys SET created_at = created_at - ? WHERE key IN ('old-key', 'pruned-key')`).run(25 * 3600_000).changes;
    db.close();
    expect(changed).toBe(2);
    await t.restart();

    const fresh = await spawnHttp("record", "day two", "old-key");
    expect(fresh.status).toBe(202);
    expect(fresh.replayed).toBeNull();
    expect(fresh.body.call_id).not.toBe(old.body.call_id);
    expect(await resultOf(fresh.body.call_id!)).toBe("day two");
    // From now on the key names the new call.
    expect((await spawnHttp("record", "day two", "old-key")).body.call_id).toBe(fresh.body.call_id);

    const reader = new Database(join(t.home, "gantry.db"), { readonly: true });
    try {
      const count = reader.prepare(`SELECT count(*) FROM idempotency_keys WHERE key = 'pruned-key'`).pluck();
      await vi.waitFor(() => expect(count.get()).toBe(0), { timeout: 10_000, interval: 100 });
    } finally {
      reader.close();
    }
  });
});

describe("the TypeScript SDK: fn.withOptions({ idempotencyKey })", () => {
  it("spawns once per key and says when a spawn was a replay; remote waits for the first call's result", async () => {
    const fn = await t.client.functions.fromName<[unknown], unknown>("idem", "record");
    const keyed = fn.withOptions({ idempotencyKey: "sdk-1" });
    expect(keyed.options).toEqual({ idempotencyKey: "sdk-1" });
    expect(fn.options).toEqual({}); // the original is unchanged

    const first = await keyed.spawn({ marker: "m-sdk" });
    expect(first.replayed).toBe(false);
    const second = await keyed.spawn({ marker: "ignored" });
    expect(second.callId).toBe(first.callId);
    expect(second.replayed).toBe(true);
    expect(await keyed.remote({ marker: "ignored too" })).toEqual({ marker: "m-sdk" });
    await vi.waitFor(async () => expect(await runsWith("record", "m-sdk")).toBe(1), { timeout: 10_000 });

    const plain = await fn.spawn("no key");
    expect(plain.callId).not.toBe(first.callId);
    expect(plain.replayed).toBe(false);
  });

  it("refuses bad keys before sending, and map/spawnMap with a key", async () => {
    const fn = await t.client.functions.fromName("idem", "record");
    expect(() => fn.withOptions({ idempotencyKey: "" })).toThrow(InvalidArgumentError);
    expect(() => fn.withOptions({ idempotencyKey: "x".repeat(256) })).toThrow(/1 to 255 characters; got 256/);
    expect(() => fn.withOptions({ idempotencyKey: "tab\there" })).toThrow(/printable ASCII/);
    const keyed = fn.withOptions({ idempotencyKey: "sdk-map" });
    await expect(keyed.spawnMap([1, 2])).rejects.toThrow(/an idempotency key names one call: use spawn or remote/);
    await expect(keyed.map([1, 2]).next()).rejects.toThrow(InvalidArgumentError);
  });
});
