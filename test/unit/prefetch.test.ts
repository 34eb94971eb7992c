/**
 * Input prefetch (issue 25), in the dispatcher with a fake launcher over a real SQLite store: once
 * a pool's calls are short and it has all its containers, a container is sent inputs beyond its
 * free slots (marked queued, no timeout yet); the agent's `started` starts the timeout; a cancel
 * reaches a prefetched input too; a container that goes gives its prefetched inputs back (queued
 * again with the same attempt, nothing counted), and only the inputs that began share its end.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveFunctionSpec } from "../../protocol/function-spec.js";
import type { CallStore } from "../../daemon/store/call-store.js";
import type { Dispatcher } from "../../daemon/service/dispatcher.js";
import { PREFETCH_BELOW_MS } from "../../daemon/core/scheduler.js";
import { runningSlots } from "../../daemon/service/pool.js";
import { waitFor } from "../helpers/engine.js";
import { fakeDispatcher, tempCallStore, type fakeLauncher, type FakeContainer } from "../helpers/fake-launcher.js";

describe("Dispatcher: input prefetch", () => {
  let store: ReturnType<typeof tempCallStore>;
  let calls: CallStore;
  let dispatcher: Dispatcher;
  let fake: ReturnType<typeof fakeLauncher>;

  const submit = () => dispatcher.submit("a", "f", { args: [], kwargs: null });
  const status = (id: string) => calls.get(id)?.status;
  const inputsSent = (l: FakeContainer) =>
    l.sent.flatMap((m) => (m.type === "input" ? [m] : m.type === "inputs" ? m.inputs : [])).map((i) => ({ callId: i.callId, queued: i.queued === true }));

  /** A ready container of f (maxInputs 1, one container) that has run one short call. */
  const warmed = async (options: Record<string, unknown> = {}) => {
    ({ dispatcher, fake } = await fakeDispatcher(calls, resolveFunctionSpec("f", { maxContainers: 1, ...options }, "node"), { cancelGraceMs: 30_000 }));
    const first = await submit();
    await waitFor("its container", async () => fake.launched.length === 1, 5000);
    const l = fake.launched[0]!;
    l.h.onReady();
    await waitFor("the first call running", async () => l.c.leases.size === 1, 5000);
    dispatcher.onOutput(l.pool, l.c, { callId: first, attempt: 1, ok: true, value: 1 });
    expect(l.pool.callMs).toBeLessThan(PREFETCH_BELOW_MS);
    return l;
  };

  beforeEach(() => {
    store = tempCallStore("gantry-prefetch-");
    calls = store.calls;
  });
  afterEach(async () => {
    await dispatcher.shutdown();
    store.close();
  });

  it("sends a short-call container inputs beyond its free slots, queued and without a timeout until it starts", async () => {
    const l = await warmed();
    l.pool.callMs = 100; // one slot, 100 ms calls: one input ahead covers the next 5 ms
    const [a, b, c] = [await submit(), await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    expect(inputsSent(l).slice(1)).toEqual([{ callId: a, queued: false }, { callId: b, queued: true }]);
    expect(status(c)).toBe("queued"); // maxInputs 1 + one ahead: the third waits in the daemon
    expect(runningSlots(l.c)).toBe(1);
    expect(dispatcher.functionLive("a", "f")).toMatchObject({ running: 1, queued: 2 }); // b waits in the container, c in the daemon
    expect(l.c.leases.get(b)).toMatchObject({ waiting: true, timer: undefined });

    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: true, value: "a" });
    dispatcher.onStarted(l.pool, l.c, { callId: b, attempt: 1 });
    expect(l.c.leases.get(b)?.waiting).toBe(false);
    expect(l.c.leases.get(b)?.timer).toBeDefined(); // its timeout counts from here
    await waitFor("c sent, prefetched behind b", async () => inputsSent(l).some((i) => i.callId === c), 5000);
    expect(inputsSent(l).find((i) => i.callId === c)).toEqual({ callId: c, queued: true });
  });

  it("cancels a prefetched input through its agent, which answers for it at once", async () => {
    const l = await warmed();
    const [a, b] = [await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    await dispatcher.cancel(b);
    expect(l.sent.filter((m) => m.type === "cancel")).toEqual([{ type: "cancel", callId: b, attempt: 1, reason: "the call was cancelled" }]);
    dispatcher.onOutput(l.pool, l.c, { callId: b, attempt: 1, ok: false, error: { type: "InputCancellation", message: "before it began", traceback: "" } });
    await waitFor("b cancelled", async () => status(b) === "cancelled", 5000);
    expect(l.c.leases.get(a)?.waiting).toBeUndefined(); // a runs on
  });

  it("prefetches nothing for long calls", async () => {
    const l = await warmed();
    l.pool.callMs = PREFETCH_BELOW_MS * 4;
    const [, b] = [await submit(), await submit()];
    await waitFor("one lease", async () => l.c.leases.size === 1, 5000);
    expect(status(b)).toBe("queued");
    expect(inputsSent(l).every((i) => !i.queued)).toBe(true);
  });

  it("gives a prefetched input back when its container goes: same attempt, nothing counted, first in line", async () => {
    const l = await warmed({ retries: 0 });
    const [a, b] = [await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    const c = await submit(); // queued in the daemon behind b
    l.h.onGone({ kind: "exited", reason: "exit code 1", error: { type: "ContainerExitError", message: "the process exited with code 1", traceback: "" } }, false);
    // a ran alone (b had not begun): the container's end is a's doing; no retries left, it fails.
    await waitFor("a failed", async () => status(a) === "failed", 5000);
    expect(calls.get(a)?.error?.type).toBe("ContainerExitError");
    await waitFor("a new container", async () => fake.launched.length === 2, 5000);
    const next = fake.launched[1]!;
    next.h.onReady();
    await waitFor("b dispatched to it", async () => next.c.leases.has(b), 5000);
    expect(inputsSent(next)[0]).toEqual({ callId: b, queued: false }); // before c, which came later
    dispatcher.onOutput(next.pool, next.c, { callId: b, attempt: 1, ok: true, value: "b" });
    await waitFor("b succeeded", async () => status(b) === "succeeded", 5000);
    expect(calls.get(b)).toMatchObject({ attempt: 1, lost: 0 });
    expect(calls.attempts(b)).toEqual([]); // no attempt of it ended: none is on record
    expect(["queued", "running"]).toContain(status(c));
  });

  it("asks a draining container for its prefetched inputs back; given back, they run on the new deployment's container", async () => {
    const l = await warmed();
    const [a, b] = [await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    l.h.onWithdrawn({ callId: b, attempt: 1 }); // not asked (the container is not draining): ignored
    expect(l.c.leases.get(b)?.waiting).toBe(true);
    const spec = resolveFunctionSpec("f", { maxContainers: 2 }, "node");
    dispatcher.applyDeployment("a", [{ app: "a", spec, image: "img", bundleDir: "/b", revision: "r2", runtime: "node", module: "m" }]);
    expect(l.c.state).toBe("draining");
    expect(l.sent.filter((m) => m.type === "withdraw")).toEqual([{ type: "withdraw", inputs: [{ callId: b, attempt: 1 }] }]);
    l.h.onWithdrawn({ callId: b, attempt: 1 }); // the agent gave it back unbegun
    expect(l.c.leases.has(b)).toBe(false);
    l.h.onWithdrawn({ callId: b, attempt: 1 }); // said twice: changes nothing
    l.h.onWithdrawn({ callId: a, attempt: 1 }); // a began: not given back
    expect(l.c.leases.has(a)).toBe(true);
    await waitFor("a container of r2", async () => fake.launched.length === 2, 5000);
    const next = fake.launched[1]!;
    expect(next.c.revision).toBe("r2");
    next.h.onReady();
    await waitFor("b dispatched to it", async () => next.c.leases.has(b), 5000);
    dispatcher.onOutput(next.pool, next.c, { callId: b, attempt: 1, ok: true, value: "b" });
    await waitFor("b succeeded", async () => status(b) === "succeeded", 5000);
    expect(calls.get(b)).toMatchObject({ attempt: 1, containerId: next.c.id });
    expect(calls.attempts(b)).toEqual([]);
    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: true, value: "a" }); // a ends where it began
    await waitFor("a succeeded, its draining container stopped", async () => status(a) === "succeeded" && l.killed !== null, 5000);
  });

  it("cancels a prefetched input given back after its app stopped, as the app's queued calls were", async () => {
    const l = await warmed();
    const [a, b] = [await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    dispatcher.applyDeployment("a", []);
    expect(l.sent.filter((m) => m.type === "withdraw")).toEqual([{ type: "withdraw", inputs: [{ callId: b, attempt: 1 }] }]);
    l.h.onWithdrawn({ callId: b, attempt: 1 });
    expect(l.c.leases.has(b)).toBe(false);
    await waitFor("b cancelled", async () => status(b) === "cancelled", 5000);
    expect(calls.get(b)?.error).toMatchObject({ type: "CancelledError" });
    expect(l.c.leases.has(a)).toBe(true); // a runs on to its end
    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: true, value: "a" });
    await waitFor("a succeeded", async () => status(a) === "succeeded", 5000);
  });

  it("an app stopped cancels its queued calls, not one running whose running mark is not written yet", async () => {
    const l = await warmed();
    l.pool.callMs = PREFETCH_BELOW_MS * 4; // long calls: nothing prefetched, b waits in the daemon
    const [a, b] = [await submit(), await submit()];
    await waitFor("a running", async () => l.c.leases.has(a), 5000);
    expect(status(a)).toBe("queued"); // its running mark waits: the store still has it queued
    dispatcher.applyDeployment("a", []);
    await waitFor("b cancelled", async () => status(b) === "cancelled", 5000);
    dispatcher.onOutput(l.pool, l.c, { callId: a, attempt: 1, ok: true, value: "a" });
    await waitFor("a succeeded", async () => status(a) === "succeeded", 5000);
  });

  it("keeps a prefetched input queued in the store until it begins; its running step comes then", async () => {
    const l = await warmed();
    const [, b] = [await submit(), await submit()];
    await waitFor("two leases", async () => l.c.leases.size === 2, 5000);
    const marked = Date.now() + 200;
    await waitFor("200 ms, past the running mark's delay", async () => Date.now() > marked, 5000);
    expect(status(b)).toBe("queued"); // it waits in its agent: not running yet
    dispatcher.onStarted(l.pool, l.c, { callId: b, attempt: 1 });
    await waitFor("b marked running", async () => status(b) === "running", 5000);
  });
});
