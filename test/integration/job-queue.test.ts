import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deploy, containersOf, exampleApp, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
});
afterAll(async () => {
  await t?.dispose();
});

describe("the job-queue example, end to end against Docker", () => {
  it("deploys the example and registers process_job", async () => {
    const events = await deploy(t, exampleApp);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: "done", app: "my-job-queue" });
    expect(done.type === "done" && done.functions.map((f) => f.name)).toEqual(["process_job"]);
    const fn = await t.client.functions.fromName("my-job-queue", "process_job");
    expect(fn.info.retries).toBe(3);
  });

  it("answers 20 spawned calls correctly", async () => {
    const fn = await t.client.functions.fromName("my-job-queue", "process_job");
    const calls = await Promise.all(Array.from({ length: 20 }, (_, i) => fn.spawn({ i })));
    expect(new Set(calls.map((c) => c.callId)).size).toBe(20);
    for (const c of calls) expect(c.callId).toMatch(/^fc-[0-9a-z]{26}$/);
    const results = await Promise.all(calls.map((c) => c.get({ timeoutMs: 60_000 })));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => ({ result: { i } })));
  });

  it("serves sequential calls from one warm container, as Docker sees it", async () => {
    const fn = await t.client.functions.fromName("my-job-queue", "process_job");
    // Let the pool settle to its warm containers first (the burst above may have started several).
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      expect(await fn.remote(i)).toEqual({ result: i });
      const running = (await containersOf(t, "process_job")).filter((c) => c.State === "running");
      running.forEach((c) => seen.add(c.Id));
    }
    const before = (await containersOf(t, "process_job")).map((c) => c.Id).sort();
    for (let i = 0; i < 3; i++) expect(await fn.remote(`again ${i}`)).toEqual({ result: `again ${i}` });
    const after = (await containersOf(t, "process_job")).map((c) => c.Id).sort();
    expect(after).toEqual(before);
    expect(after.length).toBeGreaterThanOrEqual(1);
  });

  it("builds nothing on an unchanged redeploy", async () => {
    const events = await deploy(t, exampleApp);
    expect(events.filter((e) => e.type === "build" || (e.type === "image" && e.status !== "cached"))).toEqual([]);
    const done = events.at(-1)!;
    expect(done.type === "done" && done.built).toEqual([]);
    expect(done.type === "done" && done.cached).toHaveLength(1);
  });

  it("still returns earlier results after the daemon restarts", async () => {
    const fn = await t.client.functions.fromName("my-job-queue", "process_job");
    const call = await fn.spawn({ keep: "me" });
    expect(await call.get({ timeoutMs: 30_000 })).toEqual({ result: { keep: "me" } });
    const id = call.callId;
    await t.restart();
    const again = await t.client.functionCalls.fromId(id);
    expect(await again.get({ timeoutMs: 0 })).toEqual({ result: { keep: "me" } });
    // And the restarted daemon serves new calls.
    const fn2 = await t.client.functions.fromName("my-job-queue", "process_job");
    expect(await fn2.remote("after restart")).toEqual({ result: "after restart" });
  });

  it("removes its containers when it stops", async () => {
    await vi.waitFor(async () => expect((await containersOf(t, "process_job")).length).toBeGreaterThan(0), { timeout: 10_000 });
    await t.stop();
    expect(await containersOf(t, "process_job")).toEqual([]);
    await t.restart();
  });
});
