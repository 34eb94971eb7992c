/**
 * The Metrics service (daemon/service/metrics.ts) fed events on a real EventBus, with a fake clock,
 * a fake store of call records and fake views of what runs: its counters and histograms as
 * Prometheus' text shows them, the gauges read at scrape, the history and `gantry top`'s snapshot.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { CallStatus } from "../../daemon/core/call-state.js";
import type { GpuReading } from "../../daemon/core/gpu-samples.js";
import { silentLogger } from "../../daemon/logger.js";
import { EventBus } from "../../daemon/service/event-bus.js";
import { Metrics, type MetricsDeps } from "../../daemon/service/metrics.js";
import { capNamed } from "../../daemon/service/metrics-prom.js";
import { ServiceError } from "../../daemon/service/errors.js";
import type { CallRecord } from "../../daemon/store/call-store.js";

const MIN = 60_000;
const T0 = 29_000_000 * MIN;

/** The value of one sample of Prometheus' text format (labels in any order); undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(labels).length === Object.keys(got).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

interface Fake {
  now: number;
  bus: EventBus;
  records: Map<string, CallRecord>;
  live: Map<string, { queued: number; running: number; containers: number }>;
  containers: Array<{ pool: { app: string; spec: { name: string } }; c: { state: string; gpus: unknown[] } }>;
  functions: Array<{ app: string; function: string }>;
  held: Set<string>;
  dicts: Array<{ name: string; len: number }>;
  usage: GpuReading[] | Error;
  metrics: Metrics;
}

const made: Metrics[] = [];
afterEach(() => made.splice(0).forEach((m) => m.stop()));

function setup(more: Partial<MetricsDeps> = {}): Fake {
  const f = {
    now: T0,
    bus: new EventBus(),
    records: new Map(),
    live: new Map(),
    containers: [],
    functions: [{ app: "a", function: "f" }],
    held: new Set(),
    dicts: [],
    usage: [{ index: 0, utilization_pct: 50, memory_used_mib: 1024 }],
  } as unknown as Fake;
  const inventory = [0, 1].map((i) => ({ index: i, uuid: `GPU-${i}`, name: "A100", memoryMiB: 81920 }));
  f.metrics = new Metrics({
    bus: f.bus,
    calls: { get: (id) => f.records.get(id) ?? null },
    live: {
      functionLive: (app, fn) => f.live.get(`${app}.${fn}`) ?? { queued: 0, running: 0, containers: 0 },
      containers: () => f.containers,
    },
    functions: () => f.functions,
    gpus: {
      inventory,
      held: () => f.held,
      view: () => inventory.map((g) => ({ index: g.index, name: g.name, memory_mib: g.memoryMiB, holder: f.held.has(g.uuid) ? { app: "a", function: "f" } : null })),
    },
    dicts: { list: () => f.dicts },
    queues: { list: () => [{ name: "jobs", len: 3 }] },
    gpuUsage: async () => {
      if (f.usage instanceof Error) throw f.usage;
      return f.usage;
    },
    log: silentLogger,
    clock: () => f.now,
    ...more,
  });
  made.push(f.metrics);
  return f;
}

/** A call's step as the dispatcher publishes it; its record as the store would hold it. */
function step(f: Fake, id: string, status: CallStatus, atMs: number, attempt = 1, fn = "f"): void {
  const rec = f.records.get(id) ?? ({ id, app: "a", function: fn, status, attempt, createdAt: atMs, startedAt: null, finishedAt: null } as unknown as CallRecord);
  rec.status = status;
  rec.attempt = attempt;
  if (status === "running") rec.startedAt = atMs;
  if (status === "succeeded" || status === "failed" || status === "cancelled") rec.finishedAt = atMs;
  f.records.set(id, rec);
  f.bus.publish({ type: "call.status", call_id: id, app: "a", function: fn, status, attempt, ts: new Date(atMs).toISOString() });
}

/** A call submitted at `t`, started `waitMs` later, ended `runMs` after that. */
function call(f: Fake, id: string, t: number, waitMs: number, runMs: number, end: CallStatus = "succeeded"): void {
  step(f, id, "queued", t);
  step(f, id, "running", t + waitMs);
  step(f, id, end, t + waitMs + runMs);
}

describe("Metrics: GET /metrics", () => {
  it("counts calls by function and how they ended, with duration and queue-wait histograms", async () => {
    const f = setup();
    call(f, "fc-1", T0, 100, 200);
    call(f, "fc-2", T0, 300, 2000);
    call(f, "fc-3", T0, 50, 30_000, "failed");
    step(f, "fc-4", "queued", T0);
    step(f, "fc-4", "cancelled", T0 + 10); // never ran: no duration
    const text = await f.metrics.prom.text();
    expect(sample(text, "gantry_calls_total", { app: "a", function: "f", status: "succeeded" })).toBe(2);
    expect(sample(text, "gantry_calls_total", { app: "a", function: "f", status: "failed" })).toBe(1);
    expect(sample(text, "gantry_calls_total", { app: "a", function: "f", status: "cancelled" })).toBe(1);
    expect(sample(text, "gantry_call_duration_seconds_count", { app: "a", function: "f" })).toBe(3);
    expect(sample(text, "gantry_call_duration_seconds_sum", { app: "a", function: "f" })).toBeCloseTo(32.2);
    expect(sample(text, "gantry_call_duration_seconds_bucket", { app: "a", function: "f", le: "0.25" })).toBe(1);
    expect(sample(text, "gantry_call_duration_seconds_bucket", { app: "a", function: "f", le: "2.5" })).toBe(2);
    expect(sample(text, "gantry_call_duration_seconds_bucket", { app: "a", function: "f", le: "+Inf" })).toBe(3);
    expect(sample(text, "gantry_call_queue_wait_seconds_count", { app: "a", function: "f" })).toBe(3);
    expect(sample(text, "gantry_call_queue_wait_seconds_sum", { app: "a", function: "f" })).toBeCloseTo(0.45);
    // The process' own metrics come along.
    expect(sample(text, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(f.metrics.prom.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("times a retried call's last attempt and its wait to the first run only", async () => {
    const f = setup();
    step(f, "fc-r", "queued", T0);
    step(f, "fc-r", "running", T0 + 1000);
    step(f, "fc-r", "queued", T0 + 5000, 2); // the first attempt failed: a retry
    step(f, "fc-r", "running", T0 + 6000, 2);
    step(f, "fc-r", "succeeded", T0 + 6500, 2);
    const text = await f.metrics.prom.text();
    expect(sample(text, "gantry_call_queue_wait_seconds_count", { app: "a", function: "f" })).toBe(1);
    expect(sample(text, "gantry_call_queue_wait_seconds_sum", { app: "a", function: "f" })).toBe(1);
    expect(sample(text, "gantry_call_duration_seconds_sum", { app: "a", function: "f" })).toBe(0.5);
    expect(f.metrics.historyView({ app: "a", function: "f" }).points.at(-1)).toMatchObject({ submitted: 1, succeeded: 1 });
  });

  it("reads queued, running, containers, GPUs, Dicts and Queues when scraped", async () => {
    const f = setup();
    f.live.set("a.f", { queued: 4, running: 2, containers: 3 });
    f.containers.push(
      { pool: { app: "a", spec: { name: "f" } }, c: { state: "ready", gpus: [{}] } },
      { pool: { app: "a", spec: { name: "f" } }, c: { state: "ready", gpus: [] } },
      { pool: { app: "a", spec: { name: "f" } }, c: { state: "starting", gpus: [] } },
    );
    f.held.add("GPU-0");
    f.dicts.push({ name: "d1", len: 5 });
    await f.metrics.gpuSamples.tick();
    let text = await f.metrics.prom.text();
    expect(sample(text, "gantry_calls_queued", { app: "a", function: "f" })).toBe(4);
    expect(sample(text, "gantry_calls_running", { app: "a", function: "f" })).toBe(2);
    expect(sample(text, "gantry_containers", { state: "ready" })).toBe(2);
    expect(sample(text, "gantry_containers", { state: "starting" })).toBe(1);
    expect(sample(text, "gantry_containers", { state: "draining" })).toBe(0);
    expect(sample(text, "gantry_gpus", { state: "held" })).toBe(1);
    expect(sample(text, "gantry_gpus", { state: "free" })).toBe(1);
    expect(sample(text, "gantry_gpu_utilization_ratio", { gpu: "0" })).toBe(0.5);
    expect(sample(text, "gantry_gpu_memory_used_bytes", { gpu: "0" })).toBe(1024 * 1024 * 1024);
    expect(sample(text, "gantry_gpu_utilization_ratio", { gpu: "1" })).toBeUndefined(); // nvidia-smi said nothing of GPU 1
    expect(sample(text, "gantry_dict_entries", { dict: "d1" })).toBe(5);
    expect(sample(text, "gantry_queue_items", { queue: "jobs" })).toBe(3);
    // A function no longer deployed leaves the gauges (the deployed functions are read at most once a second).
    f.functions = [];
    f.now += 1000;
    text = await f.metrics.prom.text();
    expect(sample(text, "gantry_calls_queued", { app: "a", function: "f" })).toBeUndefined();
  });

  it("labels at most 200 Dicts by name, the largest; the rest are summed as _other", async () => {
    const f = setup();
    for (let i = 0; i < 250; i++) f.dicts.push({ name: `d${i}`, len: i });
    const text = await f.metrics.prom.text();
    const lines = text.split("\n").filter((l) => l.startsWith("gantry_dict_entries{"));
    expect(lines).toHaveLength(201);
    expect(sample(text, "gantry_dict_entries", { dict: "d249" })).toBe(249);
    expect(sample(text, "gantry_dict_entries", { dict: "d49" })).toBeUndefined();
    expect(sample(text, "gantry_dict_entries", { dict: "_other" })).toBe((49 * 50) / 2);
    expect(capNamed([], 200).size).toBe(0);
  });

  it("counts a cold start when a container starts while its function has calls waiting, not a warm-up", async () => {
    const f = setup();
    const starting = () => f.bus.publish({ type: "container.status", container_id: "ct-1", app: "a", function: "f", status: "starting", ts: new Date(f.now).toISOString() });
    starting(); // nothing queued: minContainers or a buffer
    f.live.set("a.f", { queued: 2, running: 0, containers: 0 });
    starting();
    expect(sample(await f.metrics.prom.text(), "gantry_cold_starts_total", { app: "a", function: "f" })).toBe(1);
  });

  it("counts image builds and their durations, and GPU-seconds of finished calls", async () => {
    const f = setup();
    f.metrics.imageBuilt({ ok: true, seconds: 42 });
    f.metrics.imageBuilt({ ok: false, seconds: 3 });
    step(f, "fc-g", "queued", T0);
    step(f, "fc-g", "running", T0 + 10);
    f.records.get("fc-g")!.gpuSeconds = 12.5;
    step(f, "fc-g", "succeeded", T0 + 6260);
    const text = await f.metrics.prom.text();
    expect(sample(text, "gantry_image_builds_total", { status: "succeeded" })).toBe(1);
    expect(sample(text, "gantry_image_builds_total", { status: "failed" })).toBe(1);
    expect(sample(text, "gantry_image_build_seconds_sum", { status: "succeeded" })).toBe(42);
    expect(sample(text, "gantry_gpu_seconds_total", { app: "a", function: "f" })).toBe(12.5);
  });

  it("keeps each daemon's metrics apart (a Registry each), and stops listening when stopped", async () => {
    const one = setup();
    const two = setup();
    call(one, "fc-1", T0, 1, 1);
    expect(sample(await two.metrics.prom.text(), "gantry_calls_total", { app: "a", function: "f", status: "succeeded" })).toBeUndefined();
    one.metrics.stop();
    call(one, "fc-2", T0, 1, 1);
    expect(one.metrics.historyView(null).points.at(-1)!.succeeded).toBe(1);
  });

  it("never throws into the publisher (the call path) when counting fails, and says so once", () => {
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (msg: string) => void warned.push(msg) };
    const f = setup({ calls: { get: () => { throw new Error("the database is closed"); } }, log });
    expect(() => call(f, "fc-1", T0, 1, 1)).not.toThrow();
    expect(() => call(f, "fc-2", T0, 1, 1)).not.toThrow();
    expect(warned).toEqual(["metrics could not count an event"]);
  });

  it("times at most maxRunning calls at once, forgetting the longest running first", async () => {
    const f = setup({ maxRunning: 2 });
    for (const id of ["fc-1", "fc-2", "fc-3"]) {
      step(f, id, "queued", T0);
      step(f, id, "running", T0 + 10);
    }
    for (const id of ["fc-1", "fc-2", "fc-3"]) step(f, id, "succeeded", T0 + 1000);
    const text = await f.metrics.prom.text();
    expect(sample(text, "gantry_calls_total", { app: "a", function: "f", status: "succeeded" })).toBe(3); // every end is counted
    expect(sample(text, "gantry_call_duration_seconds_count", { app: "a", function: "f" })).toBe(2); // fc-1 was no longer timed
  });
});

describe("Metrics: history and top", () => {
  it("answers a function's last hour, and all functions', with the current minute's live numbers", () => {
    const f = setup();
    call(f, "fc-1", T0 + 1000, 500, 1500);
    call(f, "fc-2", T0 + 2000, 500, 2500, "failed");
    f.live.set("a.f", { queued: 1, running: 1, containers: 1 });
    f.now = T0 + 30_000;
    const h = f.metrics.historyView({ app: "a", function: "f" });
    expect(h).toMatchObject({ app: "a", function: "f", bucket_s: 60 });
    expect(h.points).toHaveLength(60);
    expect(h.points.at(-1)).toMatchObject({ submitted: 2, succeeded: 1, failed: 1, duration_p50_s: 1.5, duration_p95_s: 2.5, wait_p50_s: 0.5, queued: 1, running: 1, containers: 1 });
    expect(f.metrics.historyView(null)).toMatchObject({ app: null, function: null });
    expect(f.metrics.historyView(null).points.at(-1)).toMatchObject({ succeeded: 1, failed: 1, queued: 1 });
  });

  it("samples each function into its minute, so past minutes show what was queued then", () => {
    const f = setup();
    f.live.set("a.f", { queued: 7, running: 2, containers: 2 });
    f.metrics.sampleLive();
    f.live.set("a.f", { queued: 0, running: 0, containers: 0 });
    f.now = T0 + MIN;
    const points = f.metrics.historyView({ app: "a", function: "f" }).points;
    expect(points.at(-2)).toMatchObject({ queued: 7, running: 2, containers: 2 });
    expect(points.at(-1)).toMatchObject({ queued: 0 });
    expect(f.metrics.historyView(null).points.at(-2)).toMatchObject({ queued: 7 });
  });

  it("refuses the history of a function neither deployed nor seen, naming it (404)", () => {
    const f = setup();
    let err: unknown;
    try {
      f.metrics.historyView({ app: "a", function: "nope" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({ code: "not_found", message: expect.stringContaining("no function a.nope") });
    // A function that had calls is known even once no longer deployed.
    call(f, "fc-1", T0, 1, 1);
    f.functions = [];
    expect(f.metrics.historyView({ app: "a", function: "f" }).points.at(-1)!.succeeded).toBe(1);
  });

  it("gives gantry top a snapshot: each function's load, rate and p50, containers, GPUs with their use", async () => {
    const f = setup();
    for (let i = 0; i < 10; i++) call(f, `fc-${i}`, T0 - 3 * MIN, 0, 1000 * (i + 1), i < 2 ? "failed" : "succeeded");
    f.live.set("a.f", { queued: 3, running: 1, containers: 1 });
    f.containers.push({ pool: { app: "a", spec: { name: "f" } }, c: { state: "ready", gpus: [{}] } });
    f.held.add("GPU-0");
    await f.metrics.gpuSamples.tick();
    const top = f.metrics.top();
    expect(top.at).toBe(new Date(T0).toISOString());
    expect(top.functions).toEqual([{ app: "a", function: "f", queued: 3, running: 1, containers: 1, rate_per_min: 2, p50_s: 5, failed_5m: 2, gpus_held: 1 }]);
    expect(top.containers).toEqual({ starting: 0, ready: 1, draining: 0, stopping: 0 });
    expect(top.gpus).toEqual([
      { index: 0, name: "A100", holder: "a.f", utilization_pct: 50, memory_used_mib: 1024, memory_mib: 81920 },
      { index: 1, name: "A100", holder: null, utilization_pct: null, memory_used_mib: null, memory_mib: 81920 },
    ]);
    expect(top.totals).toEqual({ queued: 3, running: 1, rate_per_min: 2 });
  });
});

describe("Metrics: GPU samples", () => {
  it("samples each GPU's use; a failing nvidia-smi gives null samples, and the history keeps 15 minutes", async () => {
    const f = setup();
    await f.metrics.gpuSamples.tick();
    f.now += 5000;
    f.usage = new Error("nvidia-smi: Unknown Error");
    await f.metrics.gpuSamples.tick();
    const view = f.metrics.gpuSamples.view();
    expect(view.sample_s).toBe(5);
    expect(view.gpus.map((g) => [g.index, g.uuid, g.memory_mib])).toEqual([[0, "GPU-0", 81920], [1, "GPU-1", 81920]]);
    expect(view.gpus[0]!.samples).toEqual([
      { at: new Date(T0).toISOString(), utilization_pct: 50, memory_used_mib: 1024 },
      { at: new Date(T0 + 5000).toISOString(), utilization_pct: null, memory_used_mib: null },
    ]);
    f.now += 15 * MIN;
    expect(f.metrics.gpuSamples.view().gpus[0]!.samples).toEqual([]);
  });

  it("takes no sample without GPUs, and null ones where GPU use cannot be read (a cluster)", async () => {
    const f = setup({ gpuUsage: null });
    await f.metrics.gpuSamples.tick();
    expect(f.metrics.gpuSamples.view().gpus[0]!.samples).toEqual([{ at: new Date(T0).toISOString(), utilization_pct: null, memory_used_mib: null }]);
    const none = setup({ gpus: { inventory: [], held: () => new Set(), view: () => [] } });
    await none.metrics.gpuSamples.tick();
    expect(none.metrics.gpuSamples.view()).toEqual({ sample_s: 5, gpus: [] });
  });
});
