/**
 * A time chart drawn with uPlot (one small canvas library, ~50 KB): sized to its container, in
 * the theme's colors (light or dark, re-drawn when the system switches), and updated in place
 * when its data changes, so a live refresh does not flicker.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { pointsShown, totalShown, type ChartSpec, type ChartUnit, type ThemeColor } from "./chart-data.js";
import { duration } from "./format.js";

const DARK = "(prefers-color-scheme: dark)";
const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
const PERCENT_STEPS = [10, 25, 50, 100];
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif';

/** Points with no neighbour (a minute between gaps) get a dot: a line of one point would not show. */
const lonely = (u: uPlot, si: number): number[] | null => {
  const col = u.data[si] ?? [];
  const idxs: number[] = [];
  for (let i = 0; i < col.length; i++) if (col[i] != null && col[i - 1] == null && col[i + 1] == null) idxs.push(i);
  return idxs.length ? idxs : null;
};

/** The y axis' width: its longest label ("100 ms", "2m 30s") as drawn, plus its ticks and gap. */
function labelsWidth(u: uPlot, values: string[] | null): number {
  const ctx = u.ctx;
  ctx.save();
  ctx.font = AXIS_FONT;
  const widest = Math.max(0, ...(values ?? []).map((v) => ctx.measureText(v).width));
  ctx.restore();
  return Math.max(32, Math.ceil(widest) + 18);
}

const hhmm = (unixS: number, seconds = false) =>
  new Date(unixS * 1000).toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined });

/** "light" or "dark", following the system as styles.css does. */
function useScheme(): "light" | "dark" {
  const [dark, setDark] = useState(() => matchMedia(DARK).matches);
  useEffect(() => {
    const query = matchMedia(DARK);
    const on = (e: MediaQueryListEvent) => setDark(e.matches);
    query.addEventListener("change", on);
    return () => query.removeEventListener("change", on);
  }, []);
  return dark ? "dark" : "light";
}

function themeColor(name: ThemeColor | "text" | "line"): string {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || "#888";
}

function formatValue(unit: ChartUnit, v: number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  if (unit === "seconds") return v === 0 ? "0" : duration(v * 1000);
  if (unit === "percent") return `${Math.round(v)}%`;
  return String(Math.round(v * 100) / 100);
}

function yRange(unit: ChartUnit): uPlot.Scale.Range {
  if (unit === "percent") return [0, 100];
  return (_u, _min, max) => [0, unit === "count" ? Math.max(1, max) : max > 0 ? max * 1.1 : 1];
}

function options(spec: ChartSpec, width: number, height: number): uPlot.Options {
  const muted = themeColor("muted");
  const grid = { stroke: themeColor("line"), width: 1 };
  const fmt = (v: number | null | undefined) => formatValue(spec.unit, v);
  return {
    width,
    height,
    scales: { x: { time: true }, y: { range: yRange(spec.unit) } },
    axes: [
      { stroke: muted, font: AXIS_FONT, grid, ticks: grid, size: 30, values: (_u, splits) => splits.map((v) => hhmm(v)) },
      {
        stroke: muted,
        font: AXIS_FONT,
        grid,
        ticks: grid,
        size: (u, values) => labelsWidth(u, values),
        incrs: spec.unit === "count" ? COUNT_STEPS : spec.unit === "percent" ? PERCENT_STEPS : undefined,
        values: (_u, splits) => splits.map((v) => fmt(v)),
      },
    ],
    series: [
      { label: "at", value: (_u: uPlot, v: number | null) => (v === null ? "—" : hhmm(v, true)) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: themeColor(s.color),
        width: 1.75,
        dash: s.dashed ? [6, 4] : undefined,
        points: { show: false, size: 6, fill: themeColor(s.color), filter: lonely },
        value: (_u: uPlot, v: number | null) => fmt(v),
      })),
    ],
    legend: { show: true, live: true },
  };
}

export function Chart({ spec, height = 150 }: { spec: ChartSpec; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(spec.data);
  latest.current = spec.data;
  const scheme = useScheme();
  // Series and units fix the plot's shape; a change of them (or of the theme) draws it anew.
  const shape = `${spec.unit}|${spec.series.map((s) => `${s.label}:${s.color}:${s.dashed ?? false}`).join(",")}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const u = new uPlot(options(spec, Math.max(200, el.clientWidth), height), latest.current, el);
    plot.current = u;
    const resize = new ResizeObserver(([entry]) => {
      const width = Math.floor(entry?.contentRect.width ?? 0);
      if (width > 0 && width !== u.width) u.setSize({ width, height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, scheme, height]);

  useEffect(() => {
    const u = plot.current;
    if (u && u.data !== spec.data) u.setData(spec.data);
  }, [spec.data]);

  return (
    <figure class="chart" data-chart={spec.key} data-series={spec.series.length} data-samples={spec.data[0].length} data-points={pointsShown(spec.data)} data-total={totalShown(spec.data)}>
      <figcaption>{spec.title}</figcaption>
      <div class="chart-plot" ref={box} />
    </figure>
  );
}
