import { afterEach, describe, expect, it, vi } from "vitest";
import type { OwnedContainer } from "../../daemon/docker/types.js";
import { silentLogger } from "../../daemon/logger.js";
import { LeftoverSweep, leftoverMarks } from "../../daemon/service/leftovers.js";

const owned = (containerId: string, dockerId = `d-${containerId}`): OwnedContainer => ({ dockerId, containerId, app: "a", function: "f", running: true });

afterEach(() => {
  vi.useRealTimers();
});

describe("leftoverMarks", () => {
  it("never removes a container the daemon knows, however old", () => {
    const r = leftoverMarks([owned("ct-1")], new Set(["ct-1"]), new Map([["d-ct-1", 0]]), 1_000_000, 60_000);
    expect(r.remove).toEqual([]);
    expect(r.unknownSince.size).toBe(0);
  });

  it("marks an unknown container first and removes it only once it has been unknown for the margin", () => {
    const first = leftoverMarks([owned("ct-9")], new Set(), new Map(), 1_000, 60_000);
    expect(first.remove).toEqual([]);
    expect(first.unknownSince).toEqual(new Map([["d-ct-9", 1_000]]));
    const early = leftoverMarks([owned("ct-9")], new Set(), first.unknownSince, 60_999, 60_000);
    expect(early.remove).toEqual([]);
    const due = leftoverMarks([owned("ct-9")], new Set(), early.unknownSince, 61_000, 60_000);
    expect(due.remove.map((c) => c.containerId)).toEqual(["ct-9"]);
    expect(due.unknownSince.get("d-ct-9")).toBe(1_000); // kept until it is gone: a removal that fails is tried again
  });

  it("forgets the mark of a container that became known (it was being created) or is gone", () => {
    const marks = new Map([
      ["d-ct-1", 0],
      ["d-ct-2", 0],
    ]);
    const r = leftoverMarks([owned("ct-1")], new Set(["ct-1"]), marks, 100_000, 60_000);
    expect(r.remove).toEqual([]);
    expect(r.unknownSince.size).toBe(0);
  });

  it("counts a container without gantry's container label as unknown", () => {
    const r = leftoverMarks([owned("", "d-bare")], new Set([""]), new Map([["d-bare", 0]]), 60_000, 60_000);
    expect(r.remove.map((c) => c.dockerId)).toEqual(["d-bare"]);
  });
});

function fakeRuntime(listed: OwnedContainer[]) {
  const removed: string[] = [];
  let failRemove = false;
  const runtime = {
    engine: { down: null as null | { sinceMs: number; reason: string }, whenUp: async () => undefined, onChange: () => () => undefined },
    listOwned: vi.fn(async (_daemonId: string) => listed.filter((c) => !removed.includes(c.dockerId))),
    remove: vi.fn(async (dockerId: string) => {
      if (failRemove) throw new Error("engine said no");
      removed.push(dockerId);
    }),
  };
  return { runtime, removed, failRemove: (v: boolean) => (failRemove = v) };
}

describe("LeftoverSweep", () => {
  it("removes only unknown containers, in a sweep a margin after the one that first saw them, and retries a failed removal", async () => {
    let now = 0;
    const { runtime, removed, failRemove } = fakeRuntime([owned("ct-known"), owned("ct-lost")]);
    const sweep = new LeftoverSweep({ runtime, daemonId: "gd-1", known: () => ["ct-known"], intervalMs: 1000, marginMs: 5000, log: silentLogger, clock: () => now });
    expect(await sweep.sweepOnce()).toBe(0);
    expect(runtime.listOwned).toHaveBeenCalledWith("gd-1");
    now = 4999;
    expect(await sweep.sweepOnce()).toBe(0);
    now = 5000;
    failRemove(true);
    expect(await sweep.sweepOnce()).toBe(0);
    failRemove(false);
    now = 6000;
    expect(await sweep.sweepOnce()).toBe(1);
    expect(removed).toEqual(["d-ct-lost"]);
    await sweep.close();
  });

  it("sweeps on its interval, skipping ticks while the engine is away, and stops on close()", async () => {
    vi.useFakeTimers();
    const { runtime } = fakeRuntime([]);
    const sweep = new LeftoverSweep({ runtime, daemonId: "gd-1", known: () => [], intervalMs: 1000, marginMs: 0, log: silentLogger });
    sweep.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(runtime.listOwned).toHaveBeenCalledTimes(1);
    runtime.engine.down = { sinceMs: 0, reason: "restarting" };
    await vi.advanceTimersByTimeAsync(3000);
    expect(runtime.listOwned).toHaveBeenCalledTimes(1);
    runtime.engine.down = null;
    await vi.advanceTimersByTimeAsync(1000);
    expect(runtime.listOwned).toHaveBeenCalledTimes(2);
    await sweep.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(runtime.listOwned).toHaveBeenCalledTimes(2);
  });
});
