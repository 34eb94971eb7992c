/**
 * The daemon's metrics (issue 23). Follows committed changes on the EventBus (calls' steps,
 * containers starting) into prom-client's counters and histograms (GET /metrics, metrics-prom.ts)
 * and into the rolling history of the last hour (daemon/core/metric-buckets.ts: the dashboard's
 * charts, `gantry top`); samples what each function is doing every few seconds, and each GPU's
 * use (metrics-gpu.ts). Everything is in memory and bounded: the history by its ring and its cap on
 * functions, the calls being timed by MAX_RUNNING_FOLLOWED.
 */
import { METRICS_HISTORY, type MetricsHistoryView, type TopFunctionView, type TopView } from "../../protocol/metrics.js";
import { MetricBuckets, type FunctionRef, type LiveSample } from "../core/metric-buckets.js";
import type { GpuReading } from "../core/gpu-samples.js";
import type { Logger } from "../logger.js";
import type { CallRecord } from "../store/call-store.js";
import { notFound } from "./errors.js";
import type { CallStatusEvent, EventBus, GantryEvent } from "./event-bus.js";
import { GpuSampler } from "./metrics-gpu.js";
import { PromMetrics } from "./metrics-prom.js";

/** Calls timed at once (running); beyond, the one that started longest ago is no longer timed. */
export const MAX_RUNNING_FOLLOWED = 100_000;
/** How often each function's queued, running and containers are sampled into the history. */
export const LIVE_SAMPLE_MS = 10_000;
/** Per minute and function, the durations (and queue waits) kept for p50/p95; all functions together keep more. */
const RESERVOIR = 32;
const RESERVOIR_ALL = 512;
/** What `gantry top` sums over: the last 5 minutes. */
const TOP_MINUTES = 5;
const CONTAINER_STATES = ["starting", "ready", "draining", "stopping"] as const;
type ContainerState = (typeof CONTAINER_STATES)[number];

export interface MetricsDeps {
  bus: EventBus;
  calls: { get(id: string): CallRecord | null };
  /** What runs now (the dispatcher). */
  live: {
    functionLive(app: string, fn: string): LiveSample;
    containers(): Array<{ pool: { app: string; spec: { name: string } }; c: { state: string; gpus: readonly unknown[] } }>;
  };
  /** The deployed functions. */
  functions: () => FunctionRef[];
  gpus: {
    readonly inventory: ReadonlyArray<{ index: number; uuid: string; name: string; memoryMiB: number }>;
    held(): Set<string>;
    view(): Array<{ index: number; name: string; memory_mib: number; holder: { app: string; function: string } | null }>;
  };
  dicts: { list(): Array<{ name: string; len: number }> };
  queues: { list(): Array<{ name: string; len: number }> };
  /** Each GPU's utilization and memory now (nvidia-smi); null: none can be read here. */
  gpuUsage: (() => Promise<GpuReading[]>) | null;
  log: Logger;
  clock?: () => number;
  random?: () => number;
  liveSampleMs?: number;
  gpuSampleMs?: number;
  maxRunning?: number;
}

export class Metrics {
  readonly prom: PromMetrics;
  readonly gpuSamples: GpuSampler;
  private readonly history: MetricBuckets;
  private readonly now: () => number;
  /** Calls running now, and when each started (insertion order: the oldest first). */
  private readonly running = new Map<string, number>();
  private readonly listener = (e: GantryEvent) => this.onEvent(e);
  private timer: NodeJS.Timeout | null = null;
  /** An event failed to count (said once in the log). */
  private eventFailed = false;
  /** The deployed functions, read at most once a second (the store parses every spec). */
  private deployedCache = { atMs: -Infinity, refs: [] as FunctionRef[] };
  /** The last event time parsed: events of one batch share their ts text. */
  private lastTs = { text: "", ms: 0 };

  constructor(private readonly d: MetricsDeps) {
    this.now = d.clock ?? Date.now;
    this.history = new MetricBuckets({ ...METRICS_HISTORY, reservoir: RESERVOIR, reservoirAll: RESERVOIR_ALL, random: d.random ?? Math.random });
    this.gpuSamples = new GpuSampler({
      inventory: () => d.gpus.inventory,
      usage: d.gpuUsage,
      log: d.log,
      clock: this.now,
      sampleMs: d.gpuSampleMs ?? METRICS_HISTORY.gpuSampleMs,
      samples: METRICS_HISTORY.gpuSamples,
    });
    this.prom = new PromMetrics({
      functions: () => this.deployed().map((f) => ({ ...f, ...this.liveOf(f) })),
      containers: () => this.containerCounts(),
      gpus: () => {
        const held = d.gpus.held().size;
        return { held, free: Math.max(0, d.gpus.inventory.length - held), readings: this.gpuSamples.latest() };
      },
      dicts: () => d.dicts.list(),
      queues: () => d.queues.list(),
    });
    d.bus.on("event", this.listener);
  }

  /** Starts sampling (functions every LIVE_SAMPLE_MS, GPUs every gpuSampleMs). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.sampleLive();
      } catch (err) {
        this.d.log.warn("metrics could not sample the functions", { err: (err as Error)?.message ?? String(err) });
      }
    }, this.d.liveSampleMs ?? LIVE_SAMPLE_MS);
    this.timer.unref();
    this.gpuSamples.start();
  }

  stop(): void {
    this.d.bus.off("event", this.listener);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.gpuSamples.stop();
    this.prom.close();
  }

  /** An image build ran (cached images are not builds). */
  imageBuilt(b: { ok: boolean; seconds: number }): void {
    const status = b.ok ? "succeeded" : "failed";
    this.prom.builds.inc({ status });
    this.prom.buildSeconds.observe({ status }, b.seconds);
  }

  /** Never throws: the bus's publisher is the call path, which metrics must not break. */
  private onEvent(e: GantryEvent): void {
    try {
      if (e.type === "call.status") this.onCall(e);
      else if (e.type === "container.status" && e.status === "starting") {
        // A container started while its function had calls waiting: they wait for it (a cold start).
        if (this.d.live.functionLive(e.app, e.function).queued > 0) this.prom.coldStarts.inc({ app: e.app, function: e.function });
      }
    } catch (err) {
      if (!this.eventFailed) this.d.log.warn("metrics could not count an event", { type: e.type, err: (err as Error)?.message ?? String(err) });
      this.eventFailed = true;
    }
  }

  private onCall(e: CallStatusEvent): void {
    const f = { app: e.app, function: e.function };
    if (e.ts !== this.lastTs.text) this.lastTs = { text: e.ts, ms: Date.parse(e.ts) };
    const at = this.lastTs.ms;
    switch (e.status) {
      case "queued":
        this.running.delete(e.call_id); // a retry: its attempt ended
        if (e.attempt === 1) this.history.submitted(f, at);
        return;
      case "running":
        this.followRunning(e.call_id, at);
        if (e.attempt === 1) this.firstRun(f, e.call_id);
        return;
      case "succeeded":
      case "failed":
      case "cancelled":
        return this.ended(f, e, at);
    }
  }

  /** The call's queue wait, from the store's record (the event may come a little after the start). */
  private firstRun(f: FunctionRef, callId: string): void {
    const rec = this.d.calls.get(callId);
    if (!rec || rec.attempt !== 1 || rec.startedAt === null) return;
    const waitS = Math.max(0, rec.startedAt - rec.createdAt) / 1000;
    this.prom.wait.observe({ app: f.app, function: f.function }, waitS);
    this.history.started(f, waitS, rec.startedAt);
  }

  private followRunning(callId: string, at: number): void {
    this.running.delete(callId);
    this.running.set(callId, at);
    const max = this.d.maxRunning ?? MAX_RUNNING_FOLLOWED;
    while (this.running.size > max) this.running.delete(this.running.keys().next().value!);
  }

  private ended(f: FunctionRef, e: CallStatusEvent, at: number): void {
    const ranAt = this.running.get(e.call_id);
    this.running.delete(e.call_id);
    let durationS: number | null = null;
    if (ranAt !== undefined) {
      // The record is in memory (just finished); its times are exact where the events' may lag.
      const rec = this.d.calls.get(e.call_id);
      const start = rec?.startedAt ?? ranAt;
      durationS = Math.max(0, (rec?.finishedAt ?? at) - start) / 1000;
      this.prom.duration.observe({ app: f.app, function: f.function }, durationS);
      if (rec?.gpuSeconds) this.prom.gpuSeconds.inc({ app: f.app, function: f.function }, rec.gpuSeconds);
    }
    this.prom.calls.inc({ app: f.app, function: f.function, status: e.status });
    this.history.ended(f, e.status as "succeeded" | "failed" | "cancelled", durationS, at);
  }

  private deployed(): FunctionRef[] {
    const now = this.now();
    if (now - this.deployedCache.atMs >= 1000 || now < this.deployedCache.atMs) this.deployedCache = { atMs: now, refs: this.d.functions() };
    return this.deployedCache.refs;
  }

  /** Functions to sample and show: the deployed ones and those with history. */
  private functionRefs(): FunctionRef[] {
    const seen = new Map<string, FunctionRef>();
    for (const f of [...this.deployed(), ...this.history.followed()]) seen.set(`${f.app}\u0000${f.function}`, f);
    return [...seen.values()];
  }

  /** Samples what each function, and all together, is doing now into the history. */
  sampleLive(): void {
    const now = this.now();
    const total: LiveSample = { queued: 0, running: 0, containers: 0 };
    for (const f of this.functionRefs()) {
      const live = this.liveOf(f);
      this.history.sample(f, live, now);
      total.queued += live.queued;
      total.running += live.running;
      total.containers += live.containers;
    }
    this.history.sample(null, total, now);
  }

  private liveOf(f: FunctionRef): LiveSample {
    const l = this.d.live.functionLive(f.app, f.function);
    return { queued: l.queued, running: l.running, containers: l.containers };
  }

  private isKnown(f: FunctionRef): boolean {
    const same = (x: FunctionRef) => x.app === f.app && x.function === f.function;
    // A miss reads the store again: a function deployed within the last second is known.
    return this.history.has(f) || this.deployed().some(same) || this.d.functions().some(same);
  }

  /** The last hour of a function (or of all, null), a point a minute; 404 for a function neither deployed nor with history. */
  historyView(f: FunctionRef | null): MetricsHistoryView {
    if (f && !this.isKnown(f)) {
      throw notFound(`no function ${`${f.app}.${f.function}`.slice(0, 160)}: it is not deployed and had no calls in the last hour`);
    }
    const live = f ? this.liveOf(f) : this.functionRefs().map((x) => this.liveOf(x)).reduce(sum, { queued: 0, running: 0, containers: 0 });
    return { app: f?.app ?? null, function: f?.function ?? null, bucket_s: METRICS_HISTORY.bucketMs / 1000, points: this.history.points(f, this.now(), live) };
  }

  /** A snapshot of what runs, for `gantry top`. */
  top(): TopView {
    const now = this.now();
    const gpusHeld = new Map<string, number>();
    for (const { pool, c } of this.d.live.containers()) {
      const key = `${pool.app}\u0000${pool.spec.name}`;
      gpusHeld.set(key, (gpusHeld.get(key) ?? 0) + c.gpus.length);
    }
    const functions: TopFunctionView[] = this.functionRefs()
      .map((f) => {
        const live = this.liveOf(f);
        const r = this.history.recent(f, now, TOP_MINUTES);
        const gpus_held = gpusHeld.get(`${f.app}\u0000${f.function}`) ?? 0;
        return { app: f.app, function: f.function, ...live, rate_per_min: r.ended / TOP_MINUTES, p50_s: r.p50_s, failed_5m: r.failed, gpus_held };
      })
      .sort((a, b) => a.app.localeCompare(b.app) || a.function.localeCompare(b.function));
    const readings = new Map(this.gpuSamples.latest().map((r) => [r.index, r]));
    const gpus = this.d.gpus.view().map((g) => ({
      index: g.index,
      name: g.name,
      holder: g.holder ? `${g.holder.app}.${g.holder.function}` : null,
      utilization_pct: readings.get(g.index)?.utilization_pct ?? null,
      memory_used_mib: readings.get(g.index)?.memory_used_mib ?? null,
      memory_mib: g.memory_mib,
    }));
    const all = this.history.recent(null, now, TOP_MINUTES);
    const totals = { queued: sumOf(functions, "queued"), running: sumOf(functions, "running"), rate_per_min: all.ended / TOP_MINUTES };
    return { at: new Date(now).toISOString(), functions, containers: this.containerCounts(), gpus, totals };
  }

  private containerCounts(): Record<ContainerState, number> {
    const out = Object.fromEntries(CONTAINER_STATES.map((s) => [s, 0])) as Record<ContainerState, number>;
    for (const { c } of this.d.live.containers()) if (c.state in out) out[c.state as ContainerState]++;
    return out;
  }
}

const sum = (a: LiveSample, b: LiveSample): LiveSample => ({ queued: a.queued + b.queued, running: a.running + b.running, containers: a.containers + b.containers });
const sumOf = (rows: readonly TopFunctionView[], key: "queued" | "running") => rows.reduce((s, r) => s + r[key], 0);
