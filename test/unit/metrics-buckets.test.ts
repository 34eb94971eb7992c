/** The rolling history of calls and the GPU sample ring (daemon/core/metric-buckets.ts, gpu-samples.ts), on a fake clock. */
import { describe, expect, it } from "vitest";
import { MetricBuckets, quantile, type MetricBucketsOptions } from "../../daemon/core/metric-buckets.js";
import { GpuSamples } from "../../daemon/core/gpu-samples.js";
import { parseGpuUsage } from "../../daemon/host/nvidia.js";

const MIN = 60_000;
/** A minute's start, well after the epoch. */
const T0 = 29_000_000 * MIN;
const f = { app: "a", function: "f" };
const g = { app: "a", function: "g" };

/** A small deterministic random source (an LCG), so reservoir tests do not flake. */
function seeded(seed = 42): () => number {
  let s = seed;
  return () => {
    s = (s * 1664525 + 1013904223) % 4294967296;
    return s / 4294967296;
  };
}

const buckets = (o: Partial<MetricBucketsOptions> = {}) =>
  new MetricBuckets({ bucketMs: MIN, buckets: 60, maxFunctions: 1000, reservoir: 1000, reservoirAll: 1000, random: seeded(), ...o });

describe("MetricBuckets", () => {
  it("answers 60 points a minute apart, oldest first, the current minute last, empty minutes zeroed", () => {
    const b = buckets();
    b.submitted(f, T0 + 1000);
    b.submitted(f, T0 + 2000);
    b.ended(f, "succeeded", 1.5, T0 + 3000);
    b.ended(f, "failed", 0.5, T0 + 4000);
    b.ended(f, "cancelled", null, T0 + MIN + 10); // the next minute
    const points = b.points(f, T0 + 2 * MIN + 5);
    expect(points).toHaveLength(60);
    expect(points.at(-1)!.at).toBe(new Date(T0 + 2 * MIN).toISOString());
    expect(points[0]!.at).toBe(new Date(T0 - 57 * MIN).toISOString());
    expect(points.at(-3)).toEqual({
      at: new Date(T0).toISOString(),
      submitted: 2,
      succeeded: 1,
      failed: 1,
      cancelled: 0,
      duration_p50_s: 0.5,
      duration_p95_s: 1.5,
      wait_p50_s: null,
      queued: 0,
      running: 0,
      containers: 0,
    });
    expect(points.at(-2)).toMatchObject({ cancelled: 1, submitted: 0, duration_p50_s: null, duration_p95_s: null });
    expect(points.at(-1)).toMatchObject({ submitted: 0, succeeded: 0, failed: 0, cancelled: 0, duration_p50_s: null });
    // All functions together count every function's calls.
    b.ended(g, "succeeded", 3, T0 + 5000);
    expect(b.points(null, T0 + 2 * MIN).at(-3)).toMatchObject({ submitted: 2, succeeded: 2, failed: 1, duration_p50_s: 1.5, duration_p95_s: 3 });
    expect(b.points(g, T0 + 2 * MIN).at(-3)).toMatchObject({ submitted: 0, succeeded: 1, duration_p50_s: 3 });
  });

  it("computes p50 and p95 of a minute's durations and the p50 of its queue waits", () => {
    const b = buckets();
    // 1..100 s, in a shuffled order.
    const shuffle = seeded(7);
    const values = Array.from({ length: 100 }, (_, i) => i + 1).sort(() => shuffle() - 0.5);
    for (const v of values) b.ended(f, "succeeded", v, T0 + v * 100);
    for (const w of [0.1, 0.2, 0.3, 10]) b.started(f, w, T0 + 50);
    const p = b.points(f, T0).at(-1)!;
    expect(p.duration_p50_s).toBe(50);
    expect(p.duration_p95_s).toBe(95);
    expect(p.wait_p50_s).toBe(0.2);
    expect(p.succeeded).toBe(100);
  });

  it("keeps a bounded sample of a busy minute's durations, and its percentiles stay close", () => {
    const b = buckets({ reservoir: 64 });
    for (let i = 0; i < 20_000; i++) b.ended(f, "succeeded", (i % 1000) / 100, T0 + (i % 60_000)); // uniform on 0..9.99 s
    const p = b.points(f, T0).at(-1)!;
    expect(p.succeeded).toBe(20_000); // counts are exact
    expect(p.duration_p50_s!).toBeGreaterThan(3.5);
    expect(p.duration_p50_s!).toBeLessThan(6.5);
    expect(p.duration_p95_s!).toBeGreaterThan(8);
    // Memory: the reservoir never holds more than its size (read through the minute's values).
    const held = (b as unknown as { functions: Map<string, { slots: Array<{ durations: { values: number[] } } | undefined> }> }).functions;
    expect(Math.max(...[...held.values()].flatMap((s) => s.slots.map((x) => x?.durations.values.length ?? 0)))).toBe(64);
  });

  it("rolls over: minutes older than an hour are gone, a slot is reused, a late event for a gone minute changes nothing", () => {
    const b = buckets();
    b.ended(f, "succeeded", 1, T0);
    expect(b.points(f, T0 + 59 * MIN)[0]).toMatchObject({ at: new Date(T0).toISOString(), succeeded: 1 });
    expect(b.points(f, T0 + 60 * MIN).every((p) => p.succeeded === 0)).toBe(true);
    // Minute T0+60 takes T0's slot; an event for T0 arriving after is dropped, not mixed in.
    b.ended(f, "failed", 2, T0 + 60 * MIN);
    b.ended(f, "succeeded", 9, T0 + 10);
    const points = b.points(f, T0 + 60 * MIN);
    expect(points.at(-1)).toMatchObject({ failed: 1, succeeded: 0, duration_p50_s: 2 });
    expect(points.reduce((s, p) => s + p.succeeded + p.failed, 0)).toBe(1);
  });

  it("samples queued, running and containers: the minute keeps its last sample, the current minute shows now", () => {
    const b = buckets();
    b.sample(f, { queued: 5, running: 2, containers: 1 }, T0 + 10_000);
    b.sample(f, { queued: 3, running: 2, containers: 2 }, T0 + 50_000);
    b.sample(null, { queued: 7, running: 4, containers: 3 }, T0 + 50_000);
    expect(b.points(f, T0 + MIN).at(-2)).toMatchObject({ queued: 3, running: 2, containers: 2 });
    expect(b.points(null, T0 + MIN).at(-2)).toMatchObject({ queued: 7, running: 4, containers: 3 });
    const now = b.points(f, T0 + MIN + 1, { queued: 9, running: 1, containers: 4 });
    expect(now.at(-1)).toMatchObject({ queued: 9, running: 1, containers: 4 });
    expect(now.at(-2)).toMatchObject({ queued: 3 }); // past minutes keep their sample
  });

  it("follows at most maxFunctions, forgetting the least recently active; an idle sample follows nothing", () => {
    const b = buckets({ maxFunctions: 3 });
    const fn = (i: number) => ({ app: "a", function: `f${i}` });
    for (let i = 0; i < 3; i++) b.submitted(fn(i), T0 + i);
    b.ended(fn(0), "succeeded", 1, T0 + 10); // f0 is active again: f1 is now the stalest
    b.submitted(fn(3), T0 + 20);
    expect(b.followed().map((x) => x.function)).toEqual(["f2", "f0", "f3"]);
    expect(b.has(fn(1))).toBe(false);
    expect(b.points(fn(1), T0).at(-1)!.submitted).toBe(0);
    // All functions together still count the forgotten one's calls.
    expect(b.points(null, T0).at(-1)!.submitted).toBe(4);
    b.sample(fn(9), { queued: 0, running: 0, containers: 0 }, T0);
    expect(b.has(fn(9))).toBe(false);
    b.sample(fn(9), { queued: 1, running: 0, containers: 0 }, T0);
    expect(b.has(fn(9))).toBe(true);
    expect(b.followed()).toHaveLength(3);
  });

  it("sums the last minutes for gantry top: calls ended, failed, the duration p50", () => {
    const b = buckets();
    b.ended(f, "succeeded", 1, T0 - 10 * MIN); // too old for the last 5 minutes
    b.ended(f, "succeeded", 2, T0 - 4 * MIN);
    b.ended(f, "failed", 4, T0 - 2 * MIN);
    b.ended(f, "succeeded", 3, T0);
    expect(b.recent(f, T0 + 1, 5)).toEqual({ ended: 3, failed: 1, p50_s: 3 });
    expect(b.recent(g, T0, 5)).toEqual({ ended: 0, failed: 0, p50_s: null });
  });

  it("refuses options that cannot hold anything, naming them", () => {
    expect(() => buckets({ buckets: 0 })).toThrow(/buckets, maxFunctions, reservoir, reservoirAll >= 1/);
  });
});

describe("quantile", () => {
  it("is the nearest rank, each value counting its weight", () => {
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([{ v: 3, w: 1 }], 0.95)).toBe(3);
    expect(quantile([1, 2, 3, 4].map((v) => ({ v, w: 1 })), 0.5)).toBe(2);
    // A value standing for many outweighs several standing for one each.
    expect(quantile([{ v: 10, w: 100 }, { v: 1, w: 1 }, { v: 2, w: 1 }], 0.5)).toBe(10);
  });
});

describe("GpuSamples", () => {
  it("keeps the last `capacity` samples per GPU, oldest first, nulls for what was not read", () => {
    const s = new GpuSamples(3);
    for (let i = 0; i < 5; i++) s.add(T0 + i * 5000, [0, 1], [{ index: 0, utilization_pct: i * 10, memory_used_mib: 100 + i }]);
    const zero = s.samples(0, 0);
    expect(zero.map((x) => x.utilization_pct)).toEqual([20, 30, 40]);
    expect(zero[0]!.at).toBe(new Date(T0 + 10_000).toISOString());
    expect(s.samples(1, 0).map((x) => [x.utilization_pct, x.memory_used_mib])).toEqual([[null, null], [null, null], [null, null]]);
    expect(s.samples(0, T0 + 15_000).map((x) => x.utilization_pct)).toEqual([40]);
    expect(s.latest(0)).toEqual({ index: 0, utilization_pct: 40, memory_used_mib: 104 });
    expect(s.latest(7)).toBeNull();
    expect(s.samples(7, 0)).toEqual([]);
  });

  it("follows at most maxGpus GPUs", () => {
    const s = new GpuSamples(2, 2);
    s.add(T0, [0, 1, 2], []);
    expect(s.samples(2, 0)).toEqual([]);
    expect(s.samples(1, 0)).toHaveLength(1);
  });
});

describe("parseGpuUsage", () => {
  it("reads nvidia-smi's index, utilization.gpu, memory.used; [N/A] is null, a foreign line is skipped", () => {
    expect(parseGpuUsage("0, 45, 1234\n1, [N/A], [Not Supported]\nGPU 2 is lost\n\n")).toEqual([
      { index: 0, utilization_pct: 45, memory_used_mib: 1234 },
      { index: 1, utilization_pct: null, memory_used_mib: null },
    ]);
  });
});
