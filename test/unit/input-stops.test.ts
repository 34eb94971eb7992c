/**
 * One input's end never hurts its neighbours (issue 22), in the dispatcher with a fake launcher
 * (containers are entries the test readies and ends; their agent connection records what it is
 * sent) over a real SQLite store: a cancelled input keeps its slot until its agent answers, so a
 * container never runs more than maxInputs; a timed-out input fails alone and its neighbour
 * finishes as attempt 1; an input that will not stop gets its container replaced after the grace,
 * and only then are the others lost; a container whose process ends while it runs several inputs
 * has them all run again, none blamed; stopping an app cancels what its containers run.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveFunctionSpec, type FunctionSpec } from "../../protocol/function-spec.js";
import type { CallStore } from "../../daemon/store/call-store.js";
import type { Dispatcher } from "../../daemon/service/dispatcher.js";
import { busySlots } from "../../daemon/service/pool.js";
import { waitFor } from "../helpers/engine.js";
import { fakeDispatcher, tempCallStore, type fakeLauncher, type FakeContainer } from "../helpers/fake-launcher.js";

describe("Dispatcher: stopping one input", () => {
  let store: ReturnType<typeof tempCallStore>;
  let calls: CallStore;
  let dispatcher: Dispatcher;
  let fake: ReturnType<typeof fakeLauncher>;

  const start = async (spec: FunctionSpec, cancelGraceMs = 30_000) => {
    ({ dispatcher, fake } = await fakeDispatcher(calls, spec, { cancelGraceMs }));
  };
  const spec = (options: Record<string, unknown>) => resolveFunctionSpec("f", { maxContainers: 1, ...options }, "node");
  const submit = () => dispatcher.submit("a", "f", { args: [], kwargs: null });
  const status = (id: string) => calls.get(id)?.status;
  /** The one container, ready, running `n` calls. */
  const running = async (n: number) => {
    await waitFor("its container", async () => fake.launched.length === 1, 5000);
    const l = fake.launched[0]!;
    if (l.c.state === "starting") l.h.onReady();
    await waitFor(`${n} calls running`, async () => l.c.leases.size === n, 5000);
    return l;
  };
  const cancels = (l: FakeContainer) => l.sent.filter((m) => m.type === "cancel");

  beforeEach(() => {
    store = tempCallStore("gantry-stops-");
    calls = store.calls;
  });
  afterEach(async () => {
    await dispatcher.shutdown();
    store.close();
  });

  it("keeps a cancelled input's slot until its agent answers for it: a container never runs more than maxInputs", async () => {
    await start(spec({ maxInputs: 2 }));
    const [a, b] = [await submit(), await submit()];
    const l = await running(2);
    await dispatcher.cancel(a);
    expect(cancels(l)).toEqual([{ type: "cancel", callId: a, attempt: 1, reason: "the call was cancelled" }]);
    await waitFor("a cancelled", async () => status(a) === "cancelled", 5000);
    const c = await submit();
    expect(busySlots(l.c)).toBe(2); // a still runs in there: c waits
    expect(dispatcher.functionLive("a", "f")).toMatchObject({ running: 1, queued: 1 }); // b runs, c waits; a, cancelled, is neither
    expect(l.c.leases.has(c)).toBe(false);
    // The agent answers for a (its function stopped): the slot is free, c runs; a stays cancelled.
    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: false, error: { type: "InputCancellation", message: "stopped", traceback: "" } });
    await waitFor("c running", async () => l.c.leases.has(c), 5000);
    expect(busySlots(l.c)).toBe(2);
    expect(status(a)).toBe("cancelled");
    expect(l.killed).toBeNull();
    dispatcher.onOutput(l.pool, l.c, { callId: b, attempt: 1, ok: true, value: 1 });
    await waitFor("b succeeded", async () => status(b) === "succeeded", 5000);
  });

  it("replaces at once a one-slot container whose call is cancelled: it protects no neighbour, and its GPU is free sooner", async () => {
    await start(spec({ maxInputs: 1 }));
    const a = await submit();
    const l = await running(1);
    await dispatcher.cancel(a);
    expect(l.killed).toMatch(new RegExp(`its call ${a} attempt 1 ended: the call was cancelled`));
    expect(cancels(l)).toEqual([]);
    await waitFor("a cancelled", async () => status(a) === "cancelled", 5000);
  });

  it("fails a timed-out input alone (FunctionTimeoutError) while its neighbour finishes as attempt 1", async () => {
    await start(spec({ maxInputs: 3, timeout: 1 }));
    const a = await submit();
    const l = await running(1);
    // b starts once a has run half its second (by the dispatcher's own start time), so it runs on past a's timeout.
    const startedAt = l.c.leases.get(a)!.call.startedAt!;
    await waitFor("a half-way through its timeout", async () => Date.now() - startedAt >= 500, 5000);
    const b = await submit();
    await waitFor("b running", async () => l.c.leases.has(b), 5000);
    await waitFor("a timed out", async () => status(a) === "failed", 5000);
    expect(calls.get(a)?.error).toMatchObject({ type: "FunctionTimeoutError" });
    expect(cancels(l)).toEqual([{ type: "cancel", callId: a, attempt: 1, reason: "its attempt 1 ran past its timeout of 1 s" }]);
    expect(l.killed).toBeNull();
    dispatcher.onOutput(l.pool, l.c, { callId: b, attempt: 1, ok: true, value: "b" });
    await waitFor("b succeeded", async () => status(b) === "succeeded", 5000);
    expect(calls.get(b)?.attempt).toBe(1);
  });

  it("replaces the container of an input that does not stop within the grace; only then are the others lost and run again", async () => {
    await start(spec({ maxInputs: 2 }), 300);
    const [a, b] = [await submit(), await submit()];
    const l = await running(2);
    await dispatcher.cancel(a);
    expect(l.killed).toBeNull();
    await waitFor("the container replaced", async () => l.killed !== null, 5000);
    expect(l.killed).toMatch(new RegExp(`call ${a} attempt 1 did not stop within 0.3 s of being asked \\(the call was cancelled\\)`));
    // b was lost with it: it runs again, as attempt 2, without using a retry; a stays cancelled.
    await waitFor("b queued again", async () => calls.get(b)?.attempt === 2, 5000);
    expect(status(a)).toBe("cancelled");
  });

  it("runs again, blaming none, the inputs of a container whose process ended while it ran several", async () => {
    await start(spec({ maxInputs: 2 }));
    const [a, b] = [await submit(), await submit()];
    const l = await running(2);
    l.h.onGone({ kind: "exited", reason: "exit code 1", error: { type: "ContainerExitError", message: "the process exited with code 1", traceback: "" } }, false);
    await waitFor("both queued again", async () => calls.get(a)?.attempt === 2 && calls.get(b)?.attempt === 2, 5000);
    expect([status(a), status(b)]).not.toContain("failed");
  });

  it("still blames the one input a container ran alone when its process ended", async () => {
    await start(spec({ maxInputs: 2 }));
    const a = await submit();
    const l = await running(1);
    l.h.onGone({ kind: "exited", reason: "exit code 1", error: { type: "ContainerExitError", message: "the process exited with code 1", traceback: "" } }, false);
    await waitFor("a failed", async () => status(a) === "failed", 5000);
    expect(calls.get(a)?.error).toMatchObject({ type: "ContainerExitError" });
  });

  it("cancels, in their containers, the calls an app's containers run when the app is stopped: none runs on, none is left queued", async () => {
    await start(spec({ maxInputs: 2 }));
    const [a, b, c] = [await submit(), await submit(), await submit()];
    const l = await running(2);
    dispatcher.stopApp("a");
    await waitFor("all cancelled", async () => [a, b, c].every((id) => status(id) === "cancelled"), 5000);
    expect(cancels(l).map((m) => (m as { callId: string }).callId).sort()).toEqual([a, b].sort());
    // A late output of a stopped input changes nothing.
    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: true, value: "late" });
    await new Promise((r) => setImmediate(r));
    expect(status(a)).toBe("cancelled");
  });
});
