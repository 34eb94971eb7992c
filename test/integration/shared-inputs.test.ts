/**
 * One input never hurts the others sharing its container (issue 22), on the real Docker engine:
 * a cancelled input keeps its slot until it has really stopped (the container never runs more than
 * maxInputs); an input past its timeout fails alone (Node: its AbortSignal; Python: InputCancellation
 * raised in its thread) while its neighbour finishes as attempt 1 in the same container; an input
 * that ends its container's process takes no neighbour's result with it (the neighbour runs again).
 * Timing is staged on the daemon's own clock (a call's started_at), polled with deadlines.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView } from "../../protocol/api.js";
import { deploy, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("shared-inputs.ts"));
  await deploy(t, pyFixture("shared_inputs/py_shared_inputs.py"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

const view = (id: string) => t.client.transport.json<CallView>("GET", `/v1/calls/${id}`);
const spawn = async (app: string, fn: string, ...args: unknown[]) => (await (await t.client.functions.fromName(app, fn)).spawn(...args)).callId;
/** Waits until the call has been running for `ms` by the daemon's clock. */
const runningFor = (id: string, ms: number) =>
  vi.waitFor(
    async () => {
      const v = await view(id);
      expect(v.status).toBe("running");
      expect(Date.now() - Date.parse(v.started_at!)).toBeGreaterThanOrEqual(ms);
    },
    { timeout: 60_000, interval: 50 },
  );
const finished = (id: string) =>
  vi.waitFor(
    async () => {
      const v = await view(id);
      expect(["succeeded", "failed", "cancelled"]).toContain(v.status);
      return v;
    },
    { timeout: 90_000, interval: 100 },
  );

describe("inputs sharing a container", () => {
  it("a cancelled input keeps its slot until it has stopped: maxInputs 2 never runs three at once", async () => {
    // a ignores its cancel for 4 s; b runs beside it; c is spawned once a is cancelled.
    const a = await spawn("shared-inputs", "shared", "a", 4, false);
    const b = await spawn("shared-inputs", "shared", "b", 4, false);
    await runningFor(a, 0);
    await runningFor(b, 0);
    await t.client.transport.json("POST", `/v1/calls/${a}/cancel`);
    const c = await spawn("shared-inputs", "shared", "c", 0.1, true);
    const done = await finished(c);
    expect(done.status).toBe("succeeded");
    expect((done.result as { mostAtOnce: number }).mostAtOnce).toBe(2);
    expect((await view(a)).status).toBe("cancelled");
    expect((await finished(b)).status).toBe("succeeded");
  }, 120_000);

  it("a Node input past its timeout fails alone; the one beside it finishes as attempt 1 in the same container", async () => {
    const a = await spawn("shared-inputs", "timed", "a", 30);
    await runningFor(a, 500); // b starts half a second later, and ends after a's timeout (2 s)
    const b = await spawn("shared-inputs", "timed", "b", 1.9);
    const [va, vb] = [await finished(a), await finished(b)];
    expect(va).toMatchObject({ status: "failed", error: { type: "FunctionTimeoutError" } });
    expect(vb).toMatchObject({ status: "succeeded", attempt: 1 });
    expect((vb.result as { container: string }).container).toBe(va.container_id);
    // The container is still the one serving: nothing was killed.
    const next = await finished(await spawn("shared-inputs", "timed", "next", 0));
    expect((next.result as { container: string }).container).toBe(va.container_id);
  }, 120_000);

  it("a Python input past its timeout gets InputCancellation in its thread; the one beside it finishes as attempt 1", async () => {
    const a = await spawn("py-shared-inputs", "sleepy", "a", 30);
    await runningFor(a, 500);
    const b = await spawn("py-shared-inputs", "sleepy", "b", 1.9);
    const [va, vb] = [await finished(a), await finished(b)];
    expect(va).toMatchObject({ status: "failed", error: { type: "FunctionTimeoutError" } });
    expect(vb).toMatchObject({ status: "succeeded", attempt: 1, result: "b", container_id: va.container_id });
  }, 120_000);

  it("an input that ends its container's process takes no neighbour's result: the neighbour runs again", async () => {
    const a = await spawn("py-shared-inputs", "crashy", "a", 1.5, true);
    await runningFor(a, 800);
    const b = await spawn("py-shared-inputs", "crashy", "b", 1.0, false); // running when a's process ends
    const vb = await finished(b);
    expect(vb).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(vb.error).toBeUndefined();
    const va = await finished(a);
    expect(va.status).toBe("failed"); // a, lost each time it brings its container down, fails at last
  }, 150_000);
});
