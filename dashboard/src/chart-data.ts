/**
 * The daemon's metrics history as the dashboard's charts draw it: pure mapping from the API's
 * shapes (protocol/metrics.ts) to uPlot's aligned columns (x in Unix seconds first, then one
 * column per series; null is a gap). No DOM, no uPlot: unit-tested on its own.
 */
import type { GpuHistoryView, MetricsHistoryView, MetricsPoint } from "../../protocol/metrics.js";

export type Column = Array<number | null>;
/** uPlot's AlignedData: the x column (Unix seconds), then one column per series. */
export type Aligned = [number[], ...Column[]];
/** The theme's colors (styles.css variables), so a chart follows light and dark. */
export type ThemeColor = "ok" | "danger" | "warn" | "run" | "muted" | "accent";
/** How a chart's y values read: a count, a duration in seconds, or a percentage (0–100). */
export type ChartUnit = "count" | "seconds" | "percent";

export interface ChartSeries {
  label: string;
  color: ThemeColor;
  dashed?: boolean;
}

export interface ChartSpec {
  /** Names the chart in the page (data-chart) and in tests. */
  key: string;
  title: string;
  unit: ChartUnit;
  series: ChartSeries[];
  data: Aligned;
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

function columns(points: MetricsPoint[], pick: Array<(p: MetricsPoint) => number | null>): Aligned {
  return [points.map((p) => seconds(p.at)), ...pick.map((f) => points.map(f))];
}

/** Calls that ended each minute, by how they ended. */
export function callsChart(view: MetricsHistoryView): ChartSpec {
  return {
    key: "calls",
    title: "Calls per minute",
    unit: "count",
    series: [
      { label: "succeeded", color: "ok" },
      { label: "failed", color: "danger" },
      { label: "cancelled", color: "warn" },
    ],
    data: columns(view.points, [(p) => p.succeeded, (p) => p.failed, (p) => p.cancelled]),
  };
}

/** Durations of the calls that ended each minute; minutes with none are gaps. */
export function durationChart(view: MetricsHistoryView): ChartSpec {
  return {
    key: "duration",
    title: "Duration",
    unit: "seconds",
    series: [
      { label: "p50", color: "run" },
      { label: "p95", color: "warn", dashed: true },
    ],
    data: columns(view.points, [(p) => p.duration_p50_s, (p) => p.duration_p95_s]),
  };
}

/** Calls waiting and running, and the containers serving them, at each minute's end. */
export function loadChart(view: MetricsHistoryView): ChartSpec {
  return {
    key: "load",
    title: "Queue and containers",
    unit: "count",
    series: [
      { label: "queued", color: "muted" },
      { label: "running", color: "run" },
      { label: "containers", color: "ok", dashed: true },
    ],
    data: columns(view.points, [(p) => p.queued, (p) => p.running, (p) => p.containers]),
  };
}

export function metricsCharts(view: MetricsHistoryView): ChartSpec[] {
  return [callsChart(view), durationChart(view), loadChart(view)];
}

/** Whether any call was submitted, ended, waited or ran in the window: otherwise there is nothing to draw. */
export function hadCalls(view: MetricsHistoryView): boolean {
  return view.points.some((p) => p.submitted + p.succeeded + p.failed + p.cancelled + p.queued + p.running > 0);
}

/** The values a chart draws that are there and not zero, all series together (0: a flat, empty chart). */
export function pointsShown(data: Aligned): number {
  let n = 0;
  for (const col of data.slice(1) as Column[]) for (const v of col) if (v !== null && v !== 0) n++;
  return n;
}

/** The sum of a chart's values, all series together (for calls per minute: the calls that ended in the window). */
export function totalShown(data: Aligned): number {
  let sum = 0;
  for (const col of data.slice(1) as Column[]) for (const v of col) sum += v ?? 0;
  return Math.round(sum * 1000) / 1000;
}

type GpuEntry = GpuHistoryView["gpus"][number];

/** One GPU's utilization and memory in use (as a share of its memory), a point per sample. */
export function gpuChart(gpu: GpuEntry): ChartSpec {
  const memPct = (used: number | null) => (used === null || gpu.memory_mib <= 0 ? null : Math.min(100, (used / gpu.memory_mib) * 100));
  return {
    key: `gpu-${gpu.index}`,
    title: "Utilization and memory",
    unit: "percent",
    series: [
      { label: "utilization", color: "run" },
      { label: `memory (of ${Math.round(gpu.memory_mib / 1024)} GiB)`, color: "ok", dashed: true },
    ],
    data: [gpu.samples.map((s) => seconds(s.at)), gpu.samples.map((s) => s.utilization_pct), gpu.samples.map((s) => memPct(s.memory_used_mib))],
  };
}
