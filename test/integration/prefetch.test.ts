/**
 * Input prefetch against the real engine (issue 25): a warm one-slot container of a short-call
 * function is sent calls beyond its slot (GET /v1/containers lists them as `prefetched`); they run
 * there in order; and when the container is killed, the prefetched call, which never began, is
 * given back: it runs on the next container as attempt 1 with no attempt on record, while the call
 * that was running is re-run as a lost attempt. A redeploy takes a prefetched call back from the
 * old container (which drains) to run it on new code.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView, ContainerView } from "../../protocol/api.js";
import { deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const view = (t: TestDaemon, id: string) => t.client.transport.json<CallView>("GET", `/v1/calls/${id}`);
const containers = async (t: TestDaemon) => (await t.client.transport.json<{ containers: ContainerView[] }>("GET", "/v1/containers")).containers;

describe("input prefetch", () => {
  let t: TestDaemon;
  beforeAll(async () => {
    t = await startTestDaemon();
    await deploy(t, fixture("prefetch.ts"));
  }, 120_000);
  afterAll(async () => {
    await t?.dispose();
  });

  it("runs 300 short calls through one slot of one warm container, every one as attempt 1", { timeout: 120_000 }, async () => {
    const step = await t.client.functions.fromName("prefetch", "step");
    const out: Array<{ ms: number; container: string }> = [];
    for await (const r of step.map(Array.from({ length: 300 }, () => 0))) out.push(r as { ms: number; container: string });
    expect(out).toHaveLength(300);
    expect(new Set(out.map((r) => r.container)).size).toBe(1); // one container, kept warm
    const listed = await t.client.transport.json<{ calls: CallView[] }>("GET", "/v1/calls?app=prefetch&limit=300");
    expect(listed.calls.every((c) => c.status === "succeeded" && c.attempt === 1)).toBe(true);
  });

  it("gives a prefetched call back when its container is killed: it runs next as attempt 1, nothing counted", { timeout: 120_000 }, async () => {
    const step = await t.client.functions.fromName("prefetch", "step");
    const long = await step.spawn(4000);
    const ahead = await step.spawn(0);
    let dockerId = "";
    await vi.waitFor(
      async () => {
        const c = (await containers(t)).find((x) => x.calls.includes(long.callId));
        expect(c).toMatchObject({ active_calls: 1, max_inputs: 1, prefetched: [ahead.callId] });
        dockerId = c!.docker_id!;
      },
      { timeout: 30_000, interval: 50 },
    );
    await docker.getContainer(dockerId).kill();
    expect(await ahead.get({ timeoutMs: 60_000 })).toMatchObject({ ms: 0 });
    const a = await view(t, ahead.callId);
    expect(a).toMatchObject({ status: "succeeded", attempt: 1 });
    expect(a.attempts).toEqual([]); // given back before it began: no attempt of it ended
    expect(await long.get({ timeoutMs: 60_000 })).toMatchObject({ ms: 4000 });
    const l = await view(t, long.callId);
    expect(l).toMatchObject({ status: "succeeded", attempt: 2 }); // it was running: lost, re-run
    expect(l.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: "lost" })]);
  });

  it("takes a prefetched call back from a container drained by a redeploy: it runs on the new code", { timeout: 120_000 }, async () => {
    const step = await t.client.functions.fromName("prefetch", "step");
    for await (const _ of step.map(Array.from({ length: 60 }, () => 0))); // short calls again (the last test's 4 s one counted): prefetch is on
    const long = await step.spawn(3000);
    const ahead = await step.spawn(0);
    await vi.waitFor(
      async () => expect((await containers(t)).find((x) => x.calls.includes(long.callId))).toMatchObject({ prefetched: [ahead.callId] }),
      { timeout: 30_000, interval: 50 },
    );
    await deploy(t, fixture("prefetch-v2.ts"));
    const a = (await ahead.get({ timeoutMs: 60_000 })) as { container: string; version?: number };
    const l = (await long.get({ timeoutMs: 60_000 })) as { container: string; version?: number };
    expect(l.version).toBeUndefined(); // it had begun: it ended on the old code
    expect(a).toMatchObject({ ms: 0, version: 2 });
    expect(a.container).not.toBe(l.container);
    expect(await view(t, ahead.callId)).toMatchObject({ status: "succeeded", attempt: 1, attempts: [] });
  });
});
