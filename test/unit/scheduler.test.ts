import { describe, it, expect } from "vitest";
import { planPool, prefetchDepth, PREFETCH_BELOW_MS, PREFETCH_MAX, SYNC_HOLD_MAX_MS, syncHoldMs, type ContainerSlots, type PoolLimits, type PoolPlan, type PoolView } from "../../daemon/core/scheduler.js";

/** A fake clock: every test plans "now" at this instant. */
const NOW = 1_000_000;
const WINDOW = 60_000;

const limits = (o: Partial<PoolLimits> = {}): PoolLimits => ({
  maxContainers: 10,
  minContainers: 0,
  bufferContainers: 0,
  maxInputs: 1,
  scaledownWindowMs: WINDOW,
  ...o,
});

/** A ready container, idle since NOW unless told otherwise. */
const ready = (id: string, o: Partial<ContainerSlots> = {}): ContainerSlots => ({
  id,
  state: "ready",
  active: 0,
  idleSinceMs: NOW,
  lastUsedMs: 0,
  ...o,
});
const busy = (id: string, active = 1, o: Partial<ContainerSlots> = {}) => ready(id, { active, idleSinceMs: null, ...o });
const starting = (id: string): ContainerSlots => ({ id, state: "starting", active: 0, idleSinceMs: null, lastUsedMs: 0 });

function plan(view: Partial<Omit<PoolView, "limits">> & { limits?: Partial<PoolLimits> }): PoolPlan {
  return planPool({
    queued: 0,
    containers: [],
    startBlockedUntilMs: 0,
    nowMs: NOW,
    ...view,
    limits: limits(view.limits),
  });
}

describe("assigning queued calls", () => {
  it("gives queued calls to ready containers with a free slot", () => {
    const p = plan({ queued: 2, containers: [ready("a"), ready("b")] });
    expect([...p.assign].sort()).toEqual(["a", "b"]);
    expect(p.start).toBe(0);
    expect(p.stop).toEqual([]);
  });

  it("never gives a container more than maxInputs calls", () => {
    const p = plan({ queued: 5, limits: { maxInputs: 2, maxContainers: 2 }, containers: [busy("a", 1), ready("b")] });
    expect(p.assign).toEqual(["a", "b", "b"]);
    expect(p.start).toBe(0); // at maxContainers: the other 2 calls wait
  });

  it("packs the busiest container first", () => {
    const p = plan({
      queued: 2,
      limits: { maxInputs: 4 },
      containers: [ready("idle", { lastUsedMs: NOW }), busy("busy", 1, { lastUsedMs: 0 })],
    });
    expect(p.assign).toEqual(["busy", "busy"]);
  });

  it("among equally busy containers, picks the most recently used", () => {
    const p = plan({ queued: 1, containers: [ready("old", { lastUsedMs: 100 }), ready("recent", { lastUsedMs: 500 }), ready("mid", { lastUsedMs: 300 })] });
    expect(p.assign).toEqual(["recent"]);
  });

  it("sequential calls reuse one warm container, leaving the others to go idle", () => {
    const containers = [ready("a", { lastUsedMs: 10 }), ready("b", { lastUsedMs: 20 }), ready("c", { lastUsedMs: 5 })];
    const used: string[] = [];
    let now = NOW;
    for (let i = 0; i < 5; i++) {
      const p = plan({ queued: 1, containers, nowMs: now });
      expect(p.assign).toHaveLength(1);
      const id = p.assign[0]!;
      used.push(id);
      // the call runs for a second and finishes; the container is idle and freshly used
      now += 1000;
      const c = containers.find((x) => x.id === id)!;
      c.lastUsedMs = now;
      c.idleSinceMs = now;
    }
    expect(used).toEqual(["b", "b", "b", "b", "b"]);
  });

  it("never assigns to draining, stopping or starting containers", () => {
    const p = plan({
      queued: 3,
      containers: [
        { ...ready("d"), state: "draining" },
        { ...ready("s"), state: "stopping" },
        starting("n"),
      ],
    });
    expect(p.assign).toEqual([]);
  });
});

describe("starting containers", () => {
  it("starts ceil((active + queued) / maxInputs) + bufferContainers", () => {
    // 5 queued, 2 per container -> 3, plus a buffer of 1
    expect(plan({ queued: 5, limits: { maxInputs: 2, bufferContainers: 1 } }).start).toBe(4);
    // 2 running on one ready container + 3 queued, 4 per container -> 2 containers: 1 more
    expect(plan({ queued: 3, limits: { maxInputs: 4 }, containers: [busy("a", 2)] }).start).toBe(1);
  });

  it("starts nothing when there is no demand and no minimum", () => {
    expect(plan({ queued: 0 })).toEqual({ assign: [], start: 0, stop: [], wakeAtMs: null });
  });

  it("keeps minContainers even without demand", () => {
    expect(plan({ limits: { minContainers: 2 } }).start).toBe(2);
    expect(plan({ limits: { minContainers: 2, bufferContainers: 1 }, containers: [ready("a")] }).start).toBe(1);
  });

  it("never starts above maxContainers: calls beyond wait in the queue", () => {
    expect(plan({ queued: 50, limits: { maxContainers: 3 } }).start).toBe(3);
    expect(plan({ queued: 50, limits: { maxContainers: 3, bufferContainers: 5 } }).start).toBe(3);

    const p = plan({ queued: 5, limits: { maxContainers: 3 }, containers: [ready("a"), ready("b")] });
    expect(p.assign).toHaveLength(2);
    expect(p.start).toBe(1);

    const full = plan({ queued: 5, limits: { maxContainers: 3 }, containers: [busy("a"), busy("b"), busy("c")] });
    expect(full.assign).toEqual([]);
    expect(full.start).toBe(0);
  });

  it("counts starting containers as capacity", () => {
    expect(plan({ queued: 2, containers: [starting("s1"), starting("s2")] }).start).toBe(0);
    expect(plan({ queued: 3, containers: [starting("s1"), starting("s2")] }).start).toBe(1);
  });

  it("does not count draining or stopping containers as capacity", () => {
    const p = plan({ queued: 1, containers: [{ ...busy("d"), state: "draining" }, { ...ready("s"), state: "stopping" }] });
    expect(p.start).toBe(1);
  });

  it("starts nothing while starts are blocked, and wakes when the block ends", () => {
    const blocked = plan({ queued: 2, startBlockedUntilMs: NOW + 5000 });
    expect(blocked.start).toBe(0);
    expect(blocked.wakeAtMs).toBe(NOW + 5000);

    const lifted = plan({ queued: 2, startBlockedUntilMs: NOW + 5000, nowMs: NOW + 5000 });
    expect(lifted.start).toBe(2);
    expect(lifted.wakeAtMs).toBeNull();
  });

  it("a start block does not matter (nor wake the pool) when nothing needs starting", () => {
    const p = plan({ queued: 1, containers: [ready("a")], startBlockedUntilMs: NOW + 5000 });
    expect(p.assign).toEqual(["a"]);
    expect(p.start).toBe(0);
    expect(p.wakeAtMs).toBeNull();
  });
});

describe("scaling down", () => {
  it("stops an idle container only once scaledownWindow has passed", () => {
    const early = plan({ containers: [ready("a", { idleSinceMs: NOW - WINDOW + 1 })] });
    expect(early.stop).toEqual([]);
    expect(early.wakeAtMs).toBe(NOW + 1);

    const due = plan({ containers: [ready("a", { idleSinceMs: NOW - WINDOW })] });
    expect(due.stop).toEqual(["a"]);
    expect(due.wakeAtMs).toBeNull();
  });

  it("keeps minContainers warm however long they idle", () => {
    const p = plan({ limits: { minContainers: 1 }, containers: [ready("a", { idleSinceMs: NOW - 10 * WINDOW })] });
    expect(p.stop).toEqual([]);
    expect(p.wakeAtMs).toBeNull();
  });

  it("stops only down to the aim, longest idle first", () => {
    const p = plan({
      limits: { minContainers: 1 },
      containers: [
        ready("newest", { idleSinceMs: NOW - WINDOW - 1 }),
        ready("oldest", { idleSinceMs: NOW - 3 * WINDOW }),
        ready("middle", { idleSinceMs: NOW - 2 * WINDOW }),
      ],
    });
    expect(p.stop).toEqual(["oldest", "middle"]);
  });

  it("keeps bufferContainers idle containers", () => {
    const p = plan({ limits: { bufferContainers: 1 }, containers: [busy("a"), ready("b", { idleSinceMs: NOW - 2 * WINDOW })] });
    expect(p.stop).toEqual([]);
  });

  it("never stops a busy container", () => {
    const p = plan({ containers: [busy("a", 1, { lastUsedMs: NOW - 10 * WINDOW })] });
    expect(p.stop).toEqual([]);
  });

  it("does not stop an idle container that this plan gives a call to", () => {
    const p = plan({ queued: 1, containers: [ready("a", { idleSinceMs: NOW - 2 * WINDOW })] });
    expect(p.assign).toEqual(["a"]);
    expect(p.stop).toEqual([]);
  });

  it("wakes at the earliest idle deadline", () => {
    const p = plan({
      containers: [ready("a", { idleSinceMs: NOW - 10_000 }), ready("b", { idleSinceMs: NOW - 30_000 }), ready("c", { idleSinceMs: NOW - 20_000 })],
    });
    expect(p.stop).toEqual([]);
    expect(p.wakeAtMs).toBe(NOW - 30_000 + WINDOW);
  });

  it("stops the due containers and wakes for the next deadline", () => {
    const p = plan({ containers: [ready("due", { idleSinceMs: NOW - 2 * WINDOW }), ready("later", { idleSinceMs: NOW - 1000 })] });
    expect(p.stop).toEqual(["due"]);
    expect(p.wakeAtMs).toBe(NOW - 1000 + WINDOW);
  });
});

describe("draining containers", () => {
  it("stops an idle draining container at once, without waiting for the window", () => {
    const p = plan({ containers: [{ ...ready("old", { idleSinceMs: NOW }), state: "draining" }] });
    expect(p.stop).toEqual(["old"]);
  });

  it("lets a busy draining container finish its calls", () => {
    const p = plan({ queued: 2, containers: [{ ...busy("old", 1), state: "draining" }] });
    expect(p.stop).toEqual([]);
    expect(p.assign).toEqual([]);
    expect(p.start).toBe(2);
  });

  it("does not stop a container that is already stopping", () => {
    const p = plan({ containers: [{ ...ready("s", { idleSinceMs: NOW - 10 * WINDOW }), state: "stopping" }] });
    expect(p.stop).toEqual([]);
  });
});

describe("holding a submit's log sync for its result (issue 25)", () => {
  it("holds only for calls expected to take at most half a sync, and never longer than a sync", () => {
    expect(syncHoldMs(null, 5)).toBe(0); // no call's length known yet
    expect(syncHoldMs(1, null)).toBe(0); // no sync measured (or none waited for: relaxed)
    expect(syncHoldMs(0.6, 0.5)).toBe(0); // the call takes longer than a sync: nothing to gain
    expect(syncHoldMs(0.3, 0.5)).toBe(0); // a gain too small for what a late result would cost
    expect(syncHoldMs(0.2, 0.5)).toBeCloseTo(0.5); // 0.2 × 1.5 + 0.25 = 0.55, at most a sync
    expect(syncHoldMs(1, 5)).toBeCloseTo(1.75); // a slow disk: the call's time and a margin
    expect(syncHoldMs(20, 40)).toBe(SYNC_HOLD_MAX_MS);
  });
});

describe("prefetch (issue 25)", () => {
  it("holds enough inputs ahead to cover 5 ms of a container's work: 16 at most, none for calls of 250 ms or more", () => {
    expect(prefetchDepth(1, null)).toBe(0); // nothing known yet
    expect(prefetchDepth(1, 0.05)).toBe(PREFETCH_MAX); // a no-op: as many as allowed
    expect(prefetchDepth(1, 2)).toBe(3);
    expect(prefetchDepth(1, 20)).toBe(1); // at least one
    expect(prefetchDepth(8, 10)).toBe(4);
    expect(prefetchDepth(50, 1)).toBe(PREFETCH_MAX);
    expect(prefetchDepth(1, PREFETCH_BELOW_MS - 1)).toBe(1);
    expect(prefetchDepth(64, PREFETCH_BELOW_MS)).toBe(0);
  });

  it("fills free slots first, then holds up to `prefetch` more in each container, fewest first", () => {
    const p = plan({ queued: 7, containers: [busy("a", 1), ready("b")], limits: { maxContainers: 2, maxInputs: 2, prefetch: 2 } });
    // b's two free slots and a's one, then two prefetched each: a 4, b 4.
    expect(p.assign.filter((id) => id === "a")).toHaveLength(3);
    expect(p.assign.filter((id) => id === "b")).toHaveLength(4);
    expect(p.assign.slice(0, 3).sort()).toEqual(["a", "b", "b"]); // free slots before any prefetch
    expect(p.start).toBe(0);
  });

  it("prefetches nothing while the pool may start containers, or one is starting", () => {
    expect(plan({ queued: 5, containers: [busy("a", 1)], limits: { maxContainers: 3, prefetch: 4 } }).assign).toEqual([]);
    expect(plan({ queued: 5, containers: [busy("a", 1), starting("b")], limits: { maxContainers: 2, prefetch: 4 } }).assign).toEqual([]);
    expect(plan({ queued: 5, containers: [busy("a", 1)], limits: { maxContainers: 1, prefetch: 4 } }).assign).toEqual(["a", "a", "a", "a"]);
  });

  it("never prefetches into a draining container, nor without a prefetch allowance", () => {
    expect(plan({ queued: 3, containers: [busy("a", 1, { state: "draining" }), busy("b", 1)], limits: { maxContainers: 1, prefetch: 2 } }).assign).toEqual(["b", "b"]);
    expect(plan({ queued: 3, containers: [busy("a", 1)], limits: { maxContainers: 1 } }).assign).toEqual([]);
  });
});
