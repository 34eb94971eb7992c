/**
 * What `GET /metrics` answers (issue 23), in Prometheus' text format by prom-client: counters and
 * histograms fed from the daemon's events (metrics.ts), gauges read when scraped (collect()), and
 * the process' own metrics. Each daemon has a Registry of its own (never prom-client's global one:
 * tests run several daemons in one process).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FunctionRef } from "../core/metric-buckets.js";
import type { GpuReading } from "../core/gpu-samples.js";

/** Call durations, seconds: 5 ms to an hour. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Queue waits, seconds: 1 ms to an hour. */
export const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Image builds, seconds: 1 s to an hour. */
export const BUILD_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/** Dicts and Queues labelled by their name, the largest first; the rest are summed as name="_other". */
export const MAX_NAMED_OBJECTS = 200;
export const OTHER_LABEL = "_other";

/** What the gauges read when Prometheus scrapes. */
export interface PromReaders {
  /** Deployed functions and what each does now. */
  functions(): Array<FunctionRef & { queued: number; running: number }>;
  /** Containers by state: starting, ready, draining, stopping. */
  containers(): Record<string, number>;
  gpus(): { held: number; free: number; readings: GpuReading[] };
  dicts(): Array<{ name: string; len: number }>;
  queues(): Array<{ name: string; len: number }>;
}

/** The `max` largest by `len`, each under its name, the rest summed under OTHER_LABEL. */
export function capNamed(rows: ReadonlyArray<{ name: string; len: number }>, max = MAX_NAMED_OBJECTS): Map<string, number> {
  const sorted = [...rows].sort((a, b) => b.len - a.len || a.name.localeCompare(b.name));
  const out = new Map<string, number>();
  sorted.forEach((r, i) => {
    const name = i < max ? r.name : OTHER_LABEL;
    out.set(name, (out.get(name) ?? 0) + r.len);
  });
  return out;
}

export class PromMetrics {
  readonly registry = new Registry();
  readonly calls: Counter<"app" | "function" | "status">;
  readonly duration: Histogram<"app" | "function">;
  readonly wait: Histogram<"app" | "function">;
  readonly coldStarts: Counter<"app" | "function">;
  readonly gpuSeconds: Counter<"app" | "function">;
  readonly builds: Counter<"status">;
  readonly buildSeconds: Histogram<"status">;

  constructor(read: PromReaders) {
    const registers = [this.registry];
    this.calls = new Counter({ name: "gantry_calls_total", help: "Calls ended, by function and how they ended (succeeded, failed, cancelled).", labelNames: ["app", "function", "status"], registers });
    this.duration = new Histogram({ name: "gantry_call_duration_seconds", help: "How long calls ran, from running to their end (the last attempt).", labelNames: ["app", "function"], buckets: DURATION_BUCKETS, registers });
    this.wait = new Histogram({ name: "gantry_call_queue_wait_seconds", help: "How long calls waited from submission to their first run.", labelNames: ["app", "function"], buckets: WAIT_BUCKETS, registers });
    this.coldStarts = new Counter({ name: "gantry_cold_starts_total", help: "Containers started while the function had calls waiting.", labelNames: ["app", "function"], registers });
    this.gpuSeconds = new Counter({ name: "gantry_gpu_seconds_total", help: "GPU-seconds used by finished calls (duration × GPUs held).", labelNames: ["app", "function"], registers });
    this.builds = new Counter({ name: "gantry_image_builds_total", help: "Image builds that ran (cached images aside), by outcome.", labelNames: ["status"], registers });
    this.buildSeconds = new Histogram({ name: "gantry_image_build_seconds", help: "How long image builds took.", labelNames: ["status"], buckets: BUILD_BUCKETS, registers });
    this.gauges(read, registers);
    collectDefaultMetrics({ register: this.registry });
  }

  /** The gauges, each read from the daemon when scraped (reset first: a function gone is gone from the answer). */
  private gauges(read: PromReaders, registers: Registry[]): void {
    const byFunction = (name: string, help: string, value: (f: FunctionRef & { queued: number; running: number }) => number) => {
      const g: Gauge<"app" | "function"> = new Gauge({
        name,
        help,
        labelNames: ["app", "function"],
        registers,
        collect: () => {
          g.reset();
          for (const f of read.functions()) g.set({ app: f.app, function: f.function }, value(f));
        },
      });
    };
    byFunction("gantry_calls_queued", "Calls waiting to run, per deployed function.", (f) => f.queued);
    byFunction("gantry_calls_running", "Calls running now, per deployed function.", (f) => f.running);
    const containers: Gauge<"state"> = new Gauge({
      name: "gantry_containers",
      help: "Containers by state.",
      labelNames: ["state"],
      registers,
      collect: () => {
        for (const [state, n] of Object.entries(read.containers())) containers.set({ state }, n);
      },
    });
    const gpus: Gauge<"state"> = new Gauge({
      name: "gantry_gpus",
      help: "GPUs held by containers and free.",
      labelNames: ["state"],
      registers,
      collect: () => {
        const g = read.gpus();
        gpus.set({ state: "held" }, g.held);
        gpus.set({ state: "free" }, g.free);
      },
    });
    const perGpu = (name: string, help: string, value: (r: GpuReading) => number | null) => {
      const g: Gauge<"gpu"> = new Gauge({
        name,
        help,
        labelNames: ["gpu"],
        registers,
        collect: () => {
          g.reset();
          for (const r of read.gpus().readings) {
            const v = value(r);
            if (v !== null) g.set({ gpu: String(r.index) }, v);
          }
        },
      });
    };
    perGpu("gantry_gpu_utilization_ratio", "Each GPU's utilization (0 to 1), as nvidia-smi last reported it.", (r) => (r.utilization_pct === null ? null : r.utilization_pct / 100));
    perGpu("gantry_gpu_memory_used_bytes", "Each GPU's memory in use, as nvidia-smi last reported it.", (r) => (r.memory_used_mib === null ? null : r.memory_used_mib * 1024 * 1024));
    const named = (name: string, label: "dict" | "queue", help: string, rows: () => Array<{ name: string; len: number }>) => {
      const g: Gauge<typeof label> = new Gauge({
        name,
        help,
        labelNames: [label],
        registers,
        collect: () => {
          g.reset();
          for (const [n, len] of capNamed(rows())) g.set({ [label]: n } as Record<typeof label, string>, len);
        },
      });
    };
    named("gantry_dict_entries", "dict", `Entries per Dict (the ${MAX_NAMED_OBJECTS} largest by name, the rest as ${OTHER_LABEL}).`, () => read.dicts());
    named("gantry_queue_items", "queue", `Items per Queue (the ${MAX_NAMED_OBJECTS} largest by name, the rest as ${OTHER_LABEL}).`, () => read.queues());
  }

  /** The text Prometheus reads. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.registry.clear();
  }
}
