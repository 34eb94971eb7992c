import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView } from "../../protocol/api.js";
import { deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

async function runningCall(ms: number) {
  const call = await (await t.client.functions.fromName("behaviours", "slow")).spawn(ms);
  await vi.waitFor(async () => expect((await call.status()).status).toBe("running"), { timeout: 20_000 });
  return call.callId;
}

describe("stopping the daemon", () => {
  it("removes even the containers Docker is still creating", async () => {
    const other = await startTestDaemon();
    await deploy(other, fixture("behaviours.ts")); // `warm` (minContainers 1) starts a container now
    const daemonId = other.daemon.daemonId;
    await other.dispose();
    expect(await docker.listContainers({ all: true, filters: { label: [`gantry.daemon=${daemonId}`] } })).toEqual([]);
  });

  it("lets a running call finish within the grace period, and refuses new calls meanwhile", async () => {
    const id = await runningCall(1500);
    const stopping = t.daemon.stop({ graceMs: 30_000 });
    await expect((await t.client.functions.fromName("behaviours", "echo")).spawn(1)).rejects.toThrow(/shutting down|no gantry daemon/);
    await stopping;
    await t.restart();
    const view = await (await t.client.functionCalls.fromId(id)).status();
    expect(view).toMatchObject({ status: "succeeded", attempt: 1, result: { slept: 1500 } });
  });

  it("with no grace, a running call is lost at the next start: it runs again as attempt 2, its retries untouched", async () => {
    const id = await runningCall(1500); // `slow` has no retries: a lost container is not the function's failure
    await t.stop({ graceMs: 0 });
    await t.restart();
    const call = await t.client.functionCalls.fromId(id);
    expect(await call.get({ timeoutMs: 60_000 })).toEqual({ slept: 1500 });
    const view = await t.client.transport.json<CallView>("GET", `/v1/calls/${id}`);
    expect(view).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(view.attempts).toEqual([
      expect.objectContaining({ attempt: 1, outcome: "lost", error: expect.objectContaining({ type: "ContainerLostError", message: "the daemon restarted while attempt 1 ran" }) }),
    ]);
  });
});
