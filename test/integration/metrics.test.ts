/**
 * Metrics (issue 23) against a real daemon, Docker engine and SQLite: GET /metrics read by
 * Prometheus' own parser (Debian's python3-prometheus-client), the same access rule as /v1 over
 * TCP, the history and `gantry top`'s snapshot, and a GPU call's GPU-seconds with the stand-in
 * GPUs of test/fake-gpu (their nvidia-smi reports 0 % and 0 MiB in use).
 */
import { execFileSync } from "node:child_process";
import http from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView } from "../../protocol/api.js";
import type { GpuHistoryView, MetricsHistoryView, MetricsPoint, TopView } from "../../protocol/metrics.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const FAKE = join(import.meta.dirname, "..", "fake-gpu");
const TOKEN = "metrics-token-of-32-characters!!";
const auth = { authorization: `Bearer ${TOKEN}` };

let t: TestDaemon;
const fn = (name: string) => t.client.functions.fromName("metrics", name);
const json = <T>(path: string) => t.client.transport.json<T>("GET", path);
const sum = (points: MetricsPoint[], key: "succeeded" | "failed" | "submitted") => points.reduce((s, p) => s + p[key], 0);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number | string;
}

/** The daemon's /metrics over TCP with the token, as Prometheus' own parser reads it. */
async function scrape(): Promise<{ samples: Sample[]; contentType: string | null }> {
  const res = await fetch(`${t.baseUrl}/metrics`, { headers: auth });
  expect(res.status).toBe(200);
  const text = await res.text();
  const script = [
    "import sys, json, math",
    "from prometheus_client.parser import text_string_to_metric_families",
    "out = [{'name': s.name, 'labels': s.labels, 'value': s.value if math.isfinite(s.value) else str(s.value)}",
    "       for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]",
    "print(json.dumps(out))",
  ].join("\n");
  const samples = JSON.parse(execFileSync("/usr/bin/python3", ["-c", script], { input: text, encoding: "utf8" })) as Sample[];
  return { samples, contentType: res.headers.get("content-type") };
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v) && Object.keys(x.labels).length === Object.keys(labels).length);
  return s === undefined ? undefined : Number(s.value);
}

/** GET over the daemon's unix socket with no token at all. */
function overSocket(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: join(t.home, "gantry.sock"), path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("error", reject);
  });
}

beforeAll(async () => {
  execFileSync(join(FAKE, "device-nodes"), ["add", "2"]);
  t = await startTestDaemon({ token: TOKEN, nvidiaSmi: join(FAKE, "nvidia-smi") });
  await deploy(t, fixture("metrics.ts"));
});
afterAll(async () => {
  await t?.dispose();
  execFileSync(join(FAKE, "device-nodes"), ["remove"]);
});

describe("GET /metrics", () => {
  it("counts calls by function and how they ended, with duration and queue-wait histograms, in Prometheus' format", async () => {
    const ok = await fn("ok");
    for (const v of [1, 2, 3]) expect(await ok.remote(v)).toBe(v);
    await expect((await fn("boom")).remote("no")).rejects.toThrow(/no/);

    // The ends are counted as they are published, a moment after the results are read.
    await vi.waitFor(async () => {
      const { samples } = await scrape();
      expect(value(samples, "gantry_calls_total", { app: "metrics", function: "ok", status: "succeeded" })).toBe(3);
    });
    const { samples, contentType } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(samples, "gantry_calls_total", { app: "metrics", function: "boom", status: "failed" })).toBe(1);
    expect(value(samples, "gantry_calls_total", { app: "metrics", function: "ok", status: "failed" })).toBeUndefined();
    expect(value(samples, "gantry_call_duration_seconds_count", { app: "metrics", function: "ok" })).toBe(3);
    expect(value(samples, "gantry_call_duration_seconds_bucket", { app: "metrics", function: "ok", le: "+Inf" })).toBe(3);
    expect(value(samples, "gantry_call_duration_seconds_count", { app: "metrics", function: "boom" })).toBe(1);
    expect(value(samples, "gantry_call_queue_wait_seconds_count", { app: "metrics", function: "ok" })).toBe(3);
    // The first call waited for a container started for it.
    expect(value(samples, "gantry_cold_starts_total", { app: "metrics", function: "ok" })).toBeGreaterThanOrEqual(1);
    expect(value(samples, "gantry_calls_queued", { app: "metrics", function: "ok" })).toBe(0);
    expect(value(samples, "gantry_containers", { state: "ready" })).toBeGreaterThanOrEqual(1);
    expect(value(samples, "gantry_gpus", { state: "free" })).toBe(2);
    expect(value(samples, "process_resident_memory_bytes", {})).toBeGreaterThan(0);
  });

  it("is open on the unix socket and needs the token over TCP, like /v1", async () => {
    const socket = await overSocket("/metrics");
    expect(socket.status).toBe(200);
    expect(socket.body).toContain("# TYPE gantry_calls_total counter");
    for (const path of ["/metrics", "/v1/metrics/top", "/v1/metrics/history", "/v1/gpus/history"]) {
      const none = await fetch(`${t.baseUrl}${path}`);
      expect(none.status, path).toBe(401);
      expect(await none.json()).toMatchObject({ error: { code: "unauthorized" } });
      const wrong = await fetch(`${t.baseUrl}${path}`, { headers: { authorization: "Bearer not-the-token-at-all" } });
      expect(wrong.status, path).toBe(401);
    }
  });
});

describe("GET /v1/metrics/history", () => {
  it("shows the calls in the last hour's points, per function and for all", async () => {
    const h = await json<MetricsHistoryView>("/v1/metrics/history?app=metrics&function=ok");
    expect(h).toMatchObject({ app: "metrics", function: "ok", bucket_s: 60 });
    expect(h.points).toHaveLength(60);
    expect(sum(h.points, "succeeded")).toBe(3);
    expect(sum(h.points, "submitted")).toBe(3);
    expect(h.points.some((p) => p.duration_p50_s !== null && p.duration_p50_s >= 0 && p.wait_p50_s !== null)).toBe(true);
    const all = await json<MetricsHistoryView>("/v1/metrics/history");
    expect(all).toMatchObject({ app: null, function: null });
    expect(sum(all.points, "succeeded")).toBeGreaterThanOrEqual(3);
    expect(sum(all.points, "failed")).toBeGreaterThanOrEqual(1);
  });

  it("refuses an unknown function (404, naming it) and half a question (400)", async () => {
    await expect(json("/v1/metrics/history?app=metrics&function=nope")).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining("no function metrics.nope") });
    const half = await fetch(`${t.baseUrl}/v1/metrics/history?app=metrics`, { headers: auth });
    expect(half.status).toBe(400);
    expect(await half.json()).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining("give both app and function") } });
  });
});

describe("GET /v1/metrics/top", () => {
  it("reflects a running call, then its end", async () => {
    const call = await (await fn("hold")).spawn(60_000);
    const row = async () => (await json<TopView>("/v1/metrics/top")).functions.find((f) => f.function === "hold");
    await vi.waitFor(async () => expect(await row()).toMatchObject({ app: "metrics", running: 1, containers: 1 }), { timeout: 30_000, interval: 100 });
    const top = await json<TopView>("/v1/metrics/top");
    expect(top.totals.running).toBeGreaterThanOrEqual(1);
    expect(top.containers.ready).toBeGreaterThanOrEqual(1);
    expect(top.gpus).toHaveLength(2);
    await call.cancel();
    await vi.waitFor(async () => expect(await row()).toMatchObject({ running: 0 }), { timeout: 30_000, interval: 100 });
  });
});

describe("GPU use", () => {
  it("gives a GPU call's GPU-seconds on its page, kept across a restart; a CPU call has none", async () => {
    const gpuCall = await (await fn("on_gpu")).spawn(1500);
    expect(await gpuCall.get()).toBe(1500);
    const cpuCall = await (await fn("ok")).spawn("x");
    expect(await cpuCall.get()).toBe("x");
    const view = await json<CallView>(`/v1/calls/${gpuCall.callId}`);
    // One GPU for at least the 1.5 s it slept.
    expect(view.gpu_seconds).toBeGreaterThanOrEqual(1.4);
    expect(view.gpu_seconds).toBeLessThan(60);
    expect((await json<CallView>(`/v1/calls/${cpuCall.callId}`)).gpu_seconds).toBeNull();
    await vi.waitFor(async () => {
      const { samples } = await scrape();
      expect(value(samples, "gantry_gpu_seconds_total", { app: "metrics", function: "on_gpu" })).toBeCloseTo(view.gpu_seconds!, 3);
    });

    // The GPUs page's samples: the stand-in nvidia-smi reports 0 % and 0 MiB.
    const g = await json<GpuHistoryView>("/v1/gpus/history");
    expect(g.sample_s).toBe(5);
    expect(g.gpus.map((x) => [x.index, x.memory_mib])).toEqual([[0, 81920], [1, 81920]]);
    expect(g.gpus[0]!.samples.length).toBeGreaterThanOrEqual(1);
    expect(g.gpus[0]!.samples.at(-1)).toMatchObject({ utilization_pct: 0, memory_used_mib: 0 });
    const { samples } = await scrape();
    expect(value(samples, "gantry_gpu_utilization_ratio", { gpu: "0" })).toBe(0);
    expect(value(samples, "gantry_gpu_memory_used_bytes", { gpu: "1" })).toBe(0);

    await t.restart();
    expect((await json<CallView>(`/v1/calls/${gpuCall.callId}`)).gpu_seconds).toBe(view.gpu_seconds);
  });
});
