/**
 * Infrastructure faults are not the function's fault (issue 11): a container killed from outside,
 * or lost in an engine restart, re-runs its call as a new attempt without using the function's
 * retries (at most 3 times, then ContainerLostError); the call's history says why. A container
 * killed for its memory limit fails the attempt with OutOfMemoryError (retries apply), as does a
 * process that ends itself (ContainerExitError). The engine restart runs on an engine of its own.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView, ContainerView } from "../../protocol/api.js";
import { RemoteError } from "../../sdk/errors.js";
import { deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";

const view = (t: TestDaemon, id: string) => t.client.transport.json<CallView>("GET", `/v1/calls/${id}`);

/** Resolves once the call runs (as `attempt`, when given), with the Docker id of the container running it. */
async function runningIn(t: TestDaemon, id: string, attempt?: number): Promise<{ id: string; dockerId: string }> {
  let dockerId = "";
  await vi.waitFor(
    async () => {
      if (attempt !== undefined) expect(await view(t, id)).toMatchObject({ attempt });
      const { containers } = await t.client.transport.json<{ containers: ContainerView[] }>("GET", "/v1/containers");
      const c = containers.find((c) => c.calls.includes(id));
      expect(c?.docker_id).toBeTruthy();
      dockerId = c!.docker_id!;
    },
    { timeout: 30_000, interval: 50 },
  );
  return { id, dockerId };
}

/** Spawns a call and resolves once it runs, with the Docker id of the container running it. */
async function running(t: TestDaemon, fn: string, arg: unknown): Promise<{ id: string; dockerId: string }> {
  const call = await (await t.client.functions.fromName("faults", fn)).spawn(arg);
  return runningIn(t, call.callId);
}

describe("on the shared engine", () => {
  let t: TestDaemon;
  beforeAll(async () => {
    t = await startTestDaemon();
    await deploy(t, fixture("faults.ts"));
  }, 120_000);
  afterAll(async () => {
    await t?.dispose();
  });

  it("re-runs the call of a container killed from outside as attempt 2, without using a retry", async () => {
    const { id, dockerId } = await running(t, "hold", 1500);
    await docker.getContainer(dockerId).kill();
    const call = await t.client.functionCalls.fromId(id);
    expect(await call.get({ timeoutMs: 60_000 })).toMatchObject({ held: 1500 }); // `hold` has no retries
    const v = await view(t, id);
    expect(v).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(v.attempts).toEqual([
      expect.objectContaining({ attempt: 1, outcome: "lost", error: expect.objectContaining({ type: "ContainerLostError", message: expect.stringMatching(/killed from outside gantry|exit code 137/) }) }),
    ]);
  });

  it("fails a call with ContainerLostError once its containers were lost 4 times (3 re-runs)", { timeout: 120_000 }, async () => {
    const first = await running(t, "hold", 60_000);
    for (let attempt = 1; attempt <= 4; attempt++) {
      // Each attempt's container, once it runs the call, is killed.
      const dockerId = attempt === 1 ? first.dockerId : (await runningIn(t, first.id, attempt)).dockerId;
      await docker.getContainer(dockerId).kill().catch(() => undefined);
    }
    const err = await (await t.client.functionCalls.fromId(first.id)).get({ timeoutMs: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).remoteType).toBe("ContainerLostError");
    expect((err as Error).message).toContain("lost 4 times (at most 3 re-runs)");
    const v = await view(t, first.id);
    expect(v).toMatchObject({ status: "failed", attempt: 4 });
    expect(v.attempts!.map((a) => [a.attempt, a.outcome])).toEqual([[1, "lost"], [2, "lost"], [3, "lost"]]);
  });

  it("fails an attempt over its memory limit with OutOfMemoryError naming the limit; it counts against retries", async () => {
    const err = await (await t.client.functions.fromName("faults", "hog")).remote(512).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).remoteType).toBe("OutOfMemoryError");
    expect((err as Error).message).toMatch(/ran out of memory: the kernel killed it at its memory limit of 128 MiB/);
    const v = await view(t, (err as RemoteError & { callId?: string }).callId ?? (await lastCall(t, "hog")));
    expect(v).toMatchObject({ status: "failed", attempt: 2 }); // its one retry was used
    expect(v.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: "failed", error: expect.objectContaining({ type: "OutOfMemoryError" }) })]);
    expect(await (await t.client.functions.fromName("faults", "hog")).remote(8)).toBe(8); // within the limit, it runs
  });

  it("fails the attempt of a function that ends its own process with ContainerExitError and the exit code", async () => {
    const err = await (await t.client.functions.fromName("faults", "quit")).remote(3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).remoteType).toBe("ContainerExitError");
    expect((err as Error).message).toContain("ended by itself with exit code 3");
  });
});

async function lastCall(t: TestDaemon, fn: string): Promise<string> {
  const { calls } = await t.client.transport.json<{ calls: CallView[] }>("GET", `/v1/calls?app=faults&function=${fn}&limit=1`);
  return calls[0]!.call_id;
}

describe("an engine restart", () => {
  let engine: TestEngine;
  let t: TestDaemon;
  beforeAll(async () => {
    engine = await startTestEngine();
    await engine.loadImages(["gantry/base-node:2"]);
    t = await startTestDaemon({ dockerSocket: engine.socket });
    await deploy(t, fixture("faults.ts"));
  }, 240_000);
  afterAll(async () => {
    await t?.dispose();
    await engine?.stop();
  }, 120_000);

  it("is noticed by the daemon, which re-runs the running call and runs calls made meanwhile once the engine is back", { timeout: 180_000 }, async () => {
    const { id } = await running(t, "hold", 2000);
    await engine.stopEngine(); // dockerd stops its containers, then itself
    await vi.waitFor(async () => expect((await t.client.transport.json<{ engine_down: unknown }>("GET", "/v1/health")).engine_down).toMatchObject({ reason: expect.any(String) }), {
      timeout: 30_000,
      interval: 100,
    });
    const meanwhile = await (await t.client.functions.fromName("faults", "hold")).spawn(10); // accepted and kept while it is down
    // What needs the engine says so: 503, not an internal error.
    const nodes = await fetch(`${t.baseUrl}/v1/nodes`);
    expect(nodes.status).toBe(503);
    expect(((await nodes.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "engine_unavailable", message: expect.stringContaining("the Docker engine does not answer") });
    await engine.startEngine();
    const call = await t.client.functionCalls.fromId(id);
    expect(await call.get({ timeoutMs: 120_000 })).toMatchObject({ held: 2000 });
    expect(await meanwhile.get({ timeoutMs: 120_000 })).toMatchObject({ held: 10 });
    const v = await view(t, id);
    expect(v).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(v.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: "lost", error: expect.objectContaining({ type: "ContainerLostError" }) })]);
    expect((await t.client.transport.json<{ engine_down: unknown }>("GET", "/v1/health")).engine_down).toBeNull();
  });
});
