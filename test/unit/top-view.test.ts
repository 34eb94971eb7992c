import { describe, expect, it } from "vitest";
import { parseInterval } from "../../cli/commands/top.js";
import { filterTop, formatSeconds, renderTop } from "../../cli/top-view.js";
import type { TopFunctionView, TopView } from "../../protocol/metrics.js";

const fn = (app: string, name: string, more: Partial<TopFunctionView> = {}): TopFunctionView => ({
  app,
  function: name,
  queued: 0,
  running: 0,
  containers: 0,
  rate_per_min: 0,
  p50_s: null,
  failed_5m: 0,
  gpus_held: 0,
  ...more,
});

const LONG = "a_function_whose_name_goes_on_and_on_well_past_any_terminal";

function view(more: Partial<TopView> = {}): TopView {
  const functions = [
    fn("shop", "idle"),
    fn("my-job-queue", "process_job", { queued: 3, running: 2, containers: 2, rate_per_min: 12.4, p50_s: 1.25, failed_5m: 1 }),
    fn("shop", "checkout", { queued: 7, running: 0, containers: 1, rate_per_min: 0.5, p50_s: 0.34 }),
    fn("batch", LONG, { running: 1, containers: 1, gpus_held: 1 }),
  ];
  return {
    at: "2025-01-01T12:00:00.000Z",
    functions,
    containers: { starting: 1, ready: 3, draining: 0, stopping: 0 },
    gpus: [],
    totals: { queued: 10, running: 3, rate_per_min: 12.9 },
    ...more,
  };
}

const GPUS: TopView["gpus"] = [
  { index: 0, name: "NVIDIA A100-SXM4-80GB", holder: `batch.${LONG}`, utilization_pct: 87, memory_used_mib: 40960, memory_mib: 81920 },
  { index: 1, name: "NVIDIA A100-SXM4-80GB", holder: null, utilization_pct: null, memory_used_mib: null, memory_mib: 81920 },
];

/** The row of the functions table that starts with `name` (maybe truncated). */
const rowOf = (lines: string[], prefix: string) => lines.find((l) => l.startsWith(prefix));

describe("gantry top's screen", () => {
  it.each([60, 100, 160])("fits every line in %i columns", (width) => {
    const lines = renderTop(view({ gpus: GPUS }), { width });
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(width);
    expect(lines.some((l) => /^APP\/FUNCTION +QUEUED +RUNNING/.test(l))).toBe(true);
    expect(lines.some((l) => /^GPU +NAME/.test(l))).toBe(true);
  });

  it("shows every column at 160, drops them right to left when narrow, never the name, queued or running", () => {
    const header = (width: number) => renderTop(view(), { width }).find((l) => l.startsWith("APP/FUNCTION"))!.split(/ {2,}/);
    expect(header(160)).toEqual(["APP/FUNCTION", "QUEUED", "RUNNING", "CONTAINERS", "RATE/MIN", "P50", "FAILED(5m)", "GPUS"]);
    const h60 = header(60);
    expect(h60.slice(0, 3)).toEqual(["APP/FUNCTION", "QUEUED", "RUNNING"]);
    expect(h60).not.toContain("GPUS");
    expect(header(160).slice(0, h60.length)).toEqual(h60);
    expect(header(30)[0]).toMatch(/^APP/);
  });

  it("sorts by running, then queued, and sums a TOTAL line", () => {
    const lines = renderTop(view(), { width: 160 });
    const order = lines.filter((l) => /^(shop|my-job-queue|batch)\./.test(l)).map((l) => l.split(" ")[0]);
    expect(order).toEqual(["my-job-queue.process_job", `batch.${LONG}`, "shop.checkout", "shop.idle"]);
    expect(rowOf(lines, "my-job-queue.process_job")).toMatch(/process_job +3 +2 +2 +12 +1\.3s +1 +0$/);
    expect(rowOf(lines, "shop.checkout")).toMatch(/ +7 +0 +1 +0\.5 +340ms +0 +0$/);
    expect(rowOf(lines, "TOTAL")).toMatch(/^TOTAL +10 +3 +4 +13 +1 +1$/);
    expect(lines).toContainEqual("containers: 1 starting, 3 ready, 0 draining, 0 stopping");
  });

  it("truncates long names with … to fit, whole when there is room or no limit (piped)", () => {
    const narrow = renderTop(view(), { width: 60 });
    const row = rowOf(narrow, "batch.")!;
    expect(row).toMatch(/^batch\.a_function\S*… +0 +1/);
    expect(row.length).toBeLessThanOrEqual(60);
    expect(rowOf(renderTop(view(), { width: 160 }), "batch.")).toContain(`batch.${LONG} `);
    expect(rowOf(renderTop(view({ gpus: GPUS }), { width: Infinity }), "batch.")).toContain(`batch.${LONG} `);
  });

  it("says no functions are deployed when there are none", () => {
    const lines = renderTop(view({ functions: [], totals: { queued: 0, running: 0, rate_per_min: 0 } }), { width: 100 });
    expect(lines).toContain("no functions deployed");
    expect(lines.some((l) => l.startsWith("APP/FUNCTION"))).toBe(false);
  });

  it("shows the GPU section only when there are GPUs", () => {
    expect(renderTop(view(), { width: 100 }).some((l) => /^GPU\b/.test(l))).toBe(false);
    const lines = renderTop(view({ gpus: GPUS }), { width: 160 });
    expect(lines).toContainEqual(expect.stringMatching(/^GPU +NAME +HOLDER +UTIL +MEMORY$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^0 +NVIDIA A100-SXM4-80GB +batch\\.${LONG} +87% +40\\.0/80\\.0 GiB$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^1 +NVIDIA A100-SXM4-80GB +- +- +-\/80\.0 GiB$/));
  });

  it("cuts the quietest functions on a short terminal, keeping the TOTAL line and saying how many are hidden", () => {
    const lines = renderTop(view(), { width: 100, height: 8 });
    expect(lines.length).toBeLessThanOrEqual(8);
    expect(lines).toContainEqual(expect.stringMatching(/^… 2 more functions/));
    expect(rowOf(lines, "my-job-queue.process_job")).toBeDefined();
    expect(rowOf(lines, "TOTAL")).toBeDefined();
  });

  it("--app keeps that app's functions and totals them alone", () => {
    const shop = filterTop(view(), "shop");
    expect(shop.functions.map((f) => f.function).sort()).toEqual(["checkout", "idle"]);
    expect(shop.totals).toEqual({ queued: 7, running: 0, rate_per_min: 0.5 });
    const lines = renderTop(filterTop(view(), "nope"), { width: 100, app: "nope" });
    expect(lines).toContain("no functions deployed in app nope");
    expect(lines).toContain("containers (all apps): 1 starting, 3 ready, 0 draining, 0 stopping");
  });

  it("formats durations short", () => {
    expect([null, 0.0342, 2.34, 42, 245, 3720].map(formatSeconds)).toEqual(["-", "34ms", "2.3s", "42s", "4m05s", "1h02m"]);
  });
});

describe("gantry top --interval", () => {
  it("takes 0.5 to 60 seconds", () => {
    expect(parseInterval("0.5")).toBe(0.5);
    expect(parseInterval("60")).toBe(60);
  });

  it.each(["0", "0.4", "61", "soon", "", "-1"])("refuses %j, naming the limits", (bad) => {
    expect(() => parseInterval(bad)).toThrow(`--interval must be between 0.5 and 60 seconds, got ${JSON.stringify(bad)}`);
  });
});
