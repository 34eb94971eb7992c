/**
 * The dashboard's charts read the daemon's metrics history through a pure mapping
 * (dashboard/src/chart-data.ts): MetricsHistoryView and GpuHistoryView to uPlot's columns.
 */
import { describe, expect, it } from "vitest";
import { callsChart, durationChart, gpuChart, hadCalls, loadChart, metricsCharts, pointsShown, totalShown } from "../../dashboard/src/chart-data.js";
import type { GpuHistoryView, MetricsHistoryView, MetricsPoint } from "../../protocol/metrics.js";

const T0 = Date.parse("2025-03-01T10:00:00.000Z");
const minute = (i: number) => new Date(T0 + i * 60_000).toISOString();

function point(i: number, more: Partial<MetricsPoint> = {}): MetricsPoint {
  return {
    at: minute(i),
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    submitted: 0,
    duration_p50_s: null,
    duration_p95_s: null,
    wait_p50_s: null,
    queued: 0,
    running: 0,
    containers: 0,
    ...more,
  };
}

function history(points: MetricsPoint[]): MetricsHistoryView {
  return { app: null, function: null, bucket_s: 60, points };
}

describe("the metrics charts' data", () => {
  const view = history([
    point(0),
    point(1, { submitted: 5, succeeded: 3, failed: 1, duration_p50_s: 0.2, duration_p95_s: 1.5, queued: 1, running: 2, containers: 1 }),
    point(2, { cancelled: 1, containers: 1 }),
  ]);

  it("puts each minute's start on x, in Unix seconds, oldest first", () => {
    const x = callsChart(view).data[0];
    expect(x).toEqual([T0 / 1000, T0 / 1000 + 60, T0 / 1000 + 120]);
  });

  it("draws calls per minute by how they ended", () => {
    const c = callsChart(view);
    expect(c.series.map((s) => s.label)).toEqual(["succeeded", "failed", "cancelled"]);
    expect(c.data.slice(1)).toEqual([
      [0, 3, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(c.unit).toBe("count");
  });

  it("keeps minutes where no call ended as gaps in the durations, not as zero", () => {
    const d = durationChart(view);
    expect(d.series.map((s) => s.label)).toEqual(["p50", "p95"]);
    expect(d.data.slice(1)).toEqual([
      [null, 0.2, null],
      [null, 1.5, null],
    ]);
    expect(d.unit).toBe("seconds");
  });

  it("draws the queue, running calls and containers", () => {
    const l = loadChart(view);
    expect(l.series.map((s) => s.label)).toEqual(["queued", "running", "containers"]);
    expect(l.data.slice(1)).toEqual([
      [0, 1, 0],
      [0, 2, 0],
      [0, 1, 1],
    ]);
  });

  it("gives every chart as many values per series as there are minutes", () => {
    for (const c of metricsCharts(view)) {
      expect(c.data).toHaveLength(c.series.length + 1);
      for (const col of c.data) expect(col).toHaveLength(3);
    }
    expect(metricsCharts(view).map((c) => c.key)).toEqual(["calls", "duration", "load"]);
  });

  it("counts the points a chart shows, leaving out zeros and gaps", () => {
    expect(pointsShown(callsChart(view).data)).toBe(3);
    expect(pointsShown(durationChart(view).data)).toBe(2);
    expect(pointsShown(callsChart(history([point(0), point(1)])).data)).toBe(0);
  });

  it("sums what a chart shows: for calls per minute, the calls that ended in the hour", () => {
    expect(totalShown(callsChart(view).data)).toBe(5);
    expect(totalShown(durationChart(view).data)).toBe(1.7);
    expect(totalShown(callsChart(history([])).data)).toBe(0);
  });

  it("says an hour had no calls when nothing was submitted, ended, queued or ran (warm containers alone are not calls)", () => {
    expect(hadCalls(view)).toBe(true);
    expect(hadCalls(history([]))).toBe(false);
    expect(hadCalls(history([point(0, { containers: 2 }), point(1, { containers: 2 })]))).toBe(false);
    expect(hadCalls(history([point(0, { queued: 1 })]))).toBe(true);
  });

  it("maps an empty history to empty columns, not to a failure", () => {
    for (const c of metricsCharts(history([]))) expect(c.data.every((col) => col.length === 0)).toBe(true);
  });
});

describe("a GPU's chart data", () => {
  const gpu: GpuHistoryView["gpus"][number] = {
    index: 1,
    uuid: "GPU-1",
    name: "NVIDIA A100-SXM4-80GB",
    memory_mib: 81920,
    samples: [
      { at: "2025-03-01T10:00:00.000Z", utilization_pct: 0, memory_used_mib: 0 },
      { at: "2025-03-01T10:00:05.000Z", utilization_pct: 87, memory_used_mib: 40960 },
      { at: "2025-03-01T10:00:10.000Z", utilization_pct: null, memory_used_mib: null },
    ],
  };

  it("draws utilization and memory in use as a share of the GPU's memory, a point per sample", () => {
    const c = gpuChart(gpu);
    expect(c.key).toBe("gpu-1");
    expect(c.unit).toBe("percent");
    expect(c.series.map((s) => s.label)).toEqual(["utilization", "memory (of 80 GiB)"]);
    expect(c.data).toEqual([
      [T0 / 1000, T0 / 1000 + 5, T0 / 1000 + 10],
      [0, 87, null],
      [0, 50, null],
    ]);
  });

  it("keeps a memory share within 0–100 and leaves it out when the GPU's size is unknown", () => {
    const over = gpuChart({ ...gpu, samples: [{ at: gpu.samples[0]!.at, utilization_pct: 100, memory_used_mib: 90_000 }] });
    expect(over.data[2]).toEqual([100]);
    const unknown = gpuChart({ ...gpu, memory_mib: 0 });
    expect(unknown.data[2]).toEqual([null, null, null]);
  });
});
