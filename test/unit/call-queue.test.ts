import { describe, expect, it } from "vitest";
import { CallQueue } from "../../daemon/service/call-queue.js";
import { FunctionPool, type LiveCall } from "../../daemon/service/pool.js";
import { resolveFunctionSpec } from "../../protocol/function-spec.js";

const call = (id: string, runAt = 0): LiveCall => ({ id, app: "a", function: "f", status: "queued", attempt: 1, input: { args: [], kwargs: null }, runAt, containerId: null, createdAt: 0, startedAt: null, runningMark: null, lost: 0 });

describe("CallQueue", () => {
  it("is first in, first out, across compactions", () => {
    const q = new CallQueue();
    for (let i = 0; i < 5000; i++) q.push(call(`c${i}`));
    const out: string[] = [];
    for (let i = 0; i < 3000; i++) out.push(q.shift()!.id);
    for (let i = 5000; i < 6000; i++) q.push(call(`c${i}`));
    expect(q.length).toBe(3000);
    while (q.length) out.push(q.shift()!.id);
    expect(out).toEqual(Array.from({ length: 6000 }, (_, i) => `c${i}`));
    expect(q.shift()).toBeUndefined();
  });

  it("removes by ID, iterates and drains in order", () => {
    const q = new CallQueue();
    ["a", "b", "c", "d"].forEach((id) => q.push(call(id)));
    q.shift();
    expect(q.remove("c")).toBe(true);
    expect(q.remove("a")).toBe(false); // already taken
    expect([...q].map((c) => c.id)).toEqual(["b", "d"]);
    expect(q.drain().map((c) => c.id)).toEqual(["b", "d"]);
    expect(q.length).toBe(0);
  });
});

describe("FunctionPool waiting lists", () => {
  const pool = () => new FunctionPool("a", { spec: resolveFunctionSpec("f", {}), image: "img", bundleDir: "/code", revision: "r1", runtime: "node", module: "app.mjs" });

  it("keeps retries ordered by runAt and releases the due ones into the queue in order", () => {
    const p = pool();
    [call("late", 300), call("early", 100), call("mid", 200), call("mid2", 200)].forEach((c) => p.addDelayed(c));
    expect(p.delayed.map((c) => c.id)).toEqual(["early", "mid", "mid2", "late"]);
    expect(p.releaseDelayed(200)).toBe(300);
    expect([...p.queue].map((c) => c.id)).toEqual(["early", "mid", "mid2"]);
    expect(p.releaseDelayed(1000)).toBeNull();
    expect(p.queue.length).toBe(4);
  });

  it("unqueues from either list", () => {
    const p = pool();
    p.queue.push(call("q"));
    p.addDelayed(call("d", 50));
    expect(p.unqueue("d")).toBe(true);
    expect(p.unqueue("q")).toBe(true);
    expect(p.unqueue("q")).toBe(false);
  });
});
