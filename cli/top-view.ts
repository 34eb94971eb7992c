/**
 * What `gantry top` draws: a TopView as lines that fit a terminal's width (and height, when given).
 * Pure: no I/O, no clock but the view's own `at`.
 */
import type { TopFunctionView, TopView } from "../protocol/metrics.js";

export interface TopScreen {
  /** Columns available; Infinity: no limit (output piped to another program). */
  width: number;
  /** Rows available; undefined: no limit. The functions' rows are cut first (the busiest stay). */
  height?: number;
  /** Shown when the view is filtered to one app (`--app`). */
  app?: string;
  /** The refresh interval, shown in the title of a live view. */
  intervalS?: number;
}

/** A name column narrower than this goes only after every other droppable column has gone. */
const NAME_MIN = 16;
const GAP = "  ";

interface Column {
  header: string;
  right?: boolean;
  /** Truncated with "…" when the screen is narrow. */
  flex?: boolean;
  /** Never dropped. */
  keep?: boolean;
}

/** The view with only `app`'s functions, and totals of those. Containers and GPUs stay the machine's. */
export function filterTop(view: TopView, app: string | undefined): TopView {
  if (app === undefined) return view;
  const functions = view.functions.filter((f) => f.app === app);
  const sum = (k: "queued" | "running" | "rate_per_min") => functions.reduce((n, f) => n + f[k], 0);
  return { ...view, functions, totals: { queued: sum("queued"), running: sum("running"), rate_per_min: sum("rate_per_min") } };
}

/** Busiest first: by running, then queued, then name. */
export function sortFunctions(fns: TopFunctionView[]): TopFunctionView[] {
  const name = (f: TopFunctionView) => `${f.app}.${f.function}`;
  return [...fns].sort((a, b) => b.running - a.running || b.queued - a.queued || name(a).localeCompare(name(b)));
}

/** "…" at the end when `s` is longer than `n`. */
export function truncate(s: string, n: number): string {
  if (s.length <= n) return s;
  return n <= 1 ? "…".slice(0, n) : s.slice(0, n - 1) + "…";
}

export function formatRate(perMin: number): string {
  if (perMin === 0) return "0";
  return perMin < 10 ? perMin.toFixed(1) : String(Math.round(perMin));
}

/** 340ms, 2.3s, 4m05s, 1h02m; "-" for none. */
export function formatSeconds(s: number | null): string {
  if (s === null) return "-";
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** Column widths: every column's natural width, the flexible ones shrunk and the droppable ones (right to left) dropped until the line fits. */
function fitColumns(columns: Column[], rows: string[][], width: number): number[] {
  const natural = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const shown = columns.map(() => true);
  const widthOf = (w: number[]) => w.reduce((n, x, i) => n + (shown[i] ? x : 0), 0) + GAP.length * (shown.filter(Boolean).length - 1);
  const atMin = natural.map((n, i) => (columns[i]!.flex ? Math.min(n, NAME_MIN) : n));
  for (let i = columns.length - 1; i >= 0 && widthOf(atMin) > width; i--) {
    if (!columns[i]!.keep) shown[i] = false;
  }
  const widths = [...natural];
  // Shrink the widest flexible column a character at a time (names first to their minimum, then below it).
  while (widthOf(widths) > width) {
    let widest = -1;
    widths.forEach((w, i) => {
      if (shown[i] && columns[i]!.flex && w > 1 && (widest < 0 || w > widths[widest]!)) widest = i;
    });
    if (widest < 0) break;
    widths[widest]!--;
  }
  return widths.map((w, i) => (shown[i] ? w : 0));
}

/** A table whose every line fits `width` (a line still too wide after all is cut). */
export function fitTable(columns: Column[], rows: string[][], width: number): string[] {
  const widths = fitColumns(columns, rows, width);
  const line = (cells: string[]) => {
    const parts: string[] = [];
    columns.forEach((c, i) => {
      const w = widths[i]!;
      if (w === 0) return;
      const cell = truncate(cells[i] ?? "", w);
      parts.push(c.right ? cell.padStart(w) : cell.padEnd(w));
    });
    return truncate(parts.join(GAP).trimEnd(), width);
  };
  return [line(columns.map((c) => c.header)), ...rows.map(line)];
}

const FUNCTION_COLUMNS: Column[] = [
  { header: "APP/FUNCTION", flex: true, keep: true },
  { header: "QUEUED", right: true, keep: true },
  { header: "RUNNING", right: true, keep: true },
  { header: "CONTAINERS", right: true },
  { header: "RATE/MIN", right: true },
  { header: "P50", right: true },
  { header: "FAILED(5m)", right: true },
  { header: "GPUS", right: true },
];

function functionRow(f: TopFunctionView): string[] {
  return [
    `${f.app}.${f.function}`,
    String(f.queued),
    String(f.running),
    String(f.containers),
    formatRate(f.rate_per_min),
    formatSeconds(f.p50_s),
    String(f.failed_5m),
    String(f.gpus_held),
  ];
}

function totalsRow(view: TopView): string[] {
  const containers = view.functions.reduce((n, f) => n + f.containers, 0);
  const gpus = view.functions.reduce((n, f) => n + f.gpus_held, 0);
  const failed = view.functions.reduce((n, f) => n + f.failed_5m, 0);
  const t = view.totals;
  return ["TOTAL", String(t.queued), String(t.running), String(containers), formatRate(t.rate_per_min), "", String(failed), String(gpus)];
}

const GPU_COLUMNS: Column[] = [
  { header: "GPU", keep: true },
  { header: "NAME", flex: true, keep: true },
  { header: "HOLDER", flex: true, keep: true },
  { header: "UTIL", right: true },
  { header: "MEMORY", right: true },
];

const gib = (mib: number) => (mib / 1024).toFixed(1);

function gpuRow(g: TopView["gpus"][number]): string[] {
  return [
    String(g.index),
    g.name,
    g.holder ?? "-",
    g.utilization_pct === null ? "-" : `${Math.round(g.utilization_pct)}%`,
    `${g.memory_used_mib === null ? "-" : gib(g.memory_used_mib)}/${gib(g.memory_mib)} GiB`,
  ];
}

function titleLines(view: TopView, screen: TopScreen): string[] {
  const time = new Date(view.at).toTimeString().slice(0, 8);
  const scope = screen.app === undefined ? "" : ` · app ${screen.app}`;
  const every = screen.intervalS === undefined ? "" : ` · every ${screen.intervalS}s, Ctrl-C quits`;
  const c = view.containers;
  const all = screen.app === undefined ? "" : " (all apps)";
  return [
    truncate(`gantry top · ${time}${scope}${every}`, screen.width),
    truncate(`containers${all}: ${c.starting} starting, ${c.ready} ready, ${c.draining} draining, ${c.stopping} stopping`, screen.width),
    "",
  ];
}

/** The lines of one `gantry top` screen. */
export function renderTop(view: TopView, screen: TopScreen): string[] {
  const lines = titleLines(view, screen);
  const gpus = view.gpus.length ? ["", ...fitTable(GPU_COLUMNS, view.gpus.map(gpuRow), screen.width)] : [];
  if (view.functions.length === 0) {
    lines.push(screen.app === undefined ? "no functions deployed" : `no functions deployed in app ${screen.app}`);
    return [...lines, ...gpus];
  }
  let fns = sortFunctions(view.functions);
  let more: string[] = [];
  if (screen.height !== undefined) {
    // Title, header, TOTAL and the GPUs always show; the functions get what rows are left.
    const room = Math.max(1, screen.height - lines.length - 2 - gpus.length);
    if (fns.length > room) {
      const keep = Math.max(0, room - 1);
      more = [truncate(`… ${fns.length - keep} more functions (a taller terminal shows them)`, screen.width)];
      fns = fns.slice(0, keep);
    }
  }
  const table = fitTable(FUNCTION_COLUMNS, [...fns.map(functionRow), totalsRow(view)], screen.width);
  lines.push(...table.slice(0, -1), ...more, table[table.length - 1]!);
  return [...lines, ...gpus];
}
