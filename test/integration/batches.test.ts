/**
 * Batches on the real Docker engine: map and spawnMap (TypeScript), map and spawn_map (Python),
 * results in input order with failures and retries, the batch limit, and 100,000 queued calls.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { RemoteError } from "../../sdk/errors.js";
import { runProcess } from "../helpers/cli.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const PYTHON_PACKAGE = join(import.meta.dirname, "..", "..", "python");
let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("batches.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const expected = (x: number) => (x % 97 === 0 ? "fails" : x * x);

describe("map and spawnMap", () => {
  it("map yields 1,000 results in input order, failed calls in their place with returnExceptions, retried ones succeeding", async () => {
    const square = await t.client.functions.fromName<[number], number>("batches", "square");
    const inputs = Array.from({ length: 1000 }, (_, i) => i + 1000);
    const got: unknown[] = [];
    for await (const r of square.map(inputs, { returnExceptions: true })) got.push(r);
    expect(got).toHaveLength(1000);
    got.forEach((r, i) => {
      const x = inputs[i]!;
      if (expected(x) === "fails") {
        expect(r).toBeInstanceOf(RemoteError);
        expect(r).toMatchObject({ remoteType: "RangeError", message: `RangeError: no square for ${x}` });
      } else expect(r).toBe(x * x);
    });
  });

  it("many results streams over one keep-alive connection leave no listener behind on it", async () => {
    const square = await t.client.functions.fromName<[number], number>("batches", "square");
    const call = await square.spawn(3);
    expect(await call.get()).toBe(9);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      // The client's keep-alive agent carries them one after another on the same socket.
      for (let i = 0; i < 25; i++) {
        const lines: unknown[] = [];
        await t.client.transport.stream("POST", "/v1/calls/results", { call_ids: [call.callId], wait: 5 }, (l) => lines.push(l));
        expect(lines).toEqual([expect.objectContaining({ index: 0, call_id: call.callId, status: "succeeded" })]);
      }
      await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.filter((w) => w.includes("MaxListeners"))).toEqual([]);
  });

  it("map throws the first failure, in input order", async () => {
    const square = await t.client.functions.fromName<[number], number>("batches", "square");
    const seen: number[] = [];
    const err = await (async () => {
      for await (const r of square.map(Array.from({ length: 200 }, (_, i) => i + 1))) seen.push(r);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toBe("RangeError: no square for 97");
    expect(seen).toEqual(Array.from({ length: 96 }, (_, i) => (i + 1) ** 2));
  });

  it("spawnMap returns the calls in input order; each keeps its own ID, attempts and result", async () => {
    const square = await t.client.functions.fromName<[number], number>("batches", "square");
    const calls = await square.spawnMap(Array.from({ length: 1000 }, (_, i) => i + 3000));
    expect(new Set(calls.map((c) => c.callId)).size).toBe(1000);
    for (const i of [0, 3, 13, 500, 999]) {
      const x = 3000 + i;
      if (expected(x) === "fails") await expect(calls[i]!.get({ timeoutMs: 30_000 })).rejects.toBeInstanceOf(RemoteError);
      else expect(await calls[i]!.get({ timeoutMs: 30_000 })).toBe(x * x);
      const view = await calls[i]!.status();
      expect(view.attempt).toBe(expected(x) === "fails" ? 3 : x % 10 === 3 ? 2 : 1);
    }
  });

  it("Python's map, starmap and spawn_map of 1,000 keep input order, with return_exceptions", async () => {
    const r = await runProcess(
      "/usr/bin/python3",
      [
        "-c",
        [
          "import gantry",
          "sq = gantry.Function.from_name('batches', 'square')",
          "out = list(sq.map(range(1, 1001), return_exceptions=True))",
          "print(all((type(o).__name__ == 'RemoteError') if x % 97 == 0 else o == x * x for x, o in zip(range(1, 1001), out)), len(out))",
          "print(list(sq.starmap([(2,), (4,)])))",
          "calls = sq.spawn_map(range(5000, 6000))",
          "def outcome(c):",
          "    try:",
          "        return c.get(timeout=60)",
          "    except Exception as e:",
          "        return type(e).__name__",
          "got = [outcome(c) for c in calls]",
          "print(len({c.object_id for c in calls}), all(o == ('RemoteError' if x % 97 == 0 else x * x) for x, o in zip(range(5000, 6000), got)))",
        ].join("\n"),
      ],
      { ...process.env, PYTHONPATH: PYTHON_PACKAGE, GANTRY_HOME: t.home },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("True 1000\n[4, 16]\n1000 True\n");
  });

  it("refuses a batch over 10,000 calls with 413, naming the limit; nothing is queued", async () => {
    const before = (await t.client.transport.json<{ queued: number }>("GET", "/v1/health")).queued;
    const res = await fetch(`${t.baseUrl}/v1/apps/batches/functions/echo/calls/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ calls: Array.from({ length: 10_001 }, (_, i) => ({ args: [i] })) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "too_many_calls", message: "a batch takes at most 10000 calls; this one has 10001: send it in parts" } });
    expect((await t.client.transport.json<{ queued: number }>("GET", "/v1/health")).queued).toBe(before);
  });
});

describe("100,000 queued calls", () => {
  it("keep the daemon usable, survive a restart, and are all cancelled when the app stops", { timeout: 180_000 }, async () => {
    const path = "/v1/apps/batches/functions/held/calls/batch";
    for (let i = 0; i < 10; i++) {
      await t.client.transport.json("POST", path, { calls: Array.from({ length: 10_000 }, () => ({ args: [] })) });
    }
    const health = () => t.client.transport.json<{ queued: number; live: number }>("GET", "/v1/health");
    await vi.waitFor(async () => expect((await health()).queued).toBe(99_999), { timeout: 30_000 }); // one holds the slot
    // Everything else goes on: listing, and other functions' calls.
    const listed = await t.client.transport.json<{ calls: unknown[] }>("GET", "/v1/calls?app=batches&function=held&status=queued&limit=50");
    expect(listed.calls).toHaveLength(50);
    expect(await (await t.client.functions.fromName("batches", "echo")).remote("still prompt")).toBe("still prompt");

    await t.stop({ graceMs: 0 });
    await t.restart();
    // The held call was running: lost in the restart, it runs again (a lost container uses no retry); the queued ones stay.
    expect((await health()).live).toBe(100_000);
    expect(await (await t.client.functions.fromName("batches", "echo")).remote("after restart")).toBe("after restart");

    const stopped = await t.client.transport.json<{ stopped: boolean }>("POST", "/v1/apps/batches/stop");
    expect(stopped.stopped).toBe(true);
    await vi.waitFor(async () => expect((await health()).queued).toBe(0), { timeout: 30_000 });
    const left = await t.client.transport.json<{ calls: unknown[] }>("GET", "/v1/calls?app=batches&status=queued&limit=10");
    expect(left.calls).toEqual([]);
    const cancelled = await t.client.transport.json<{ calls: Array<{ status: string; error: { message: string } }> }>(
      "GET",
      "/v1/calls?app=batches&function=held&status=cancelled&limit=1000",
    );
    expect(cancelled.calls).toHaveLength(1000);
    expect(cancelled.calls[0]!.error.message).toBe("app batches was stopped");
  });
});
