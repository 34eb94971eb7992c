/**
 * Metrics (issue 23): GET /metrics in Prometheus' text format, and the history, `gantry top`'s
 * snapshot and the GPUs' use as JSON (protocol/metrics.ts). The same access rule as all of /v1
 * (server.ts): open on the unix socket, the token (or a dashboard session) over TCP.
 */
import type { Metrics } from "../service/metrics.js";
import { invalid } from "./errors.js";
import type { Router } from "./http-kit.js";

export interface MetricsRouteDeps {
  metrics: Metrics;
}

/** The longest app or function name quoted back in an error. */
const QUOTED = 80;

export function registerMetricsRoutes(r: Router, d: MetricsRouteDeps): void {
  r.on("GET", "/metrics", async ({ res }) => {
    const text = await d.metrics.prom.text();
    res.writeHead(200, { "content-type": d.metrics.prom.contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
    res.end(text);
    return undefined;
  });

  r.on("GET", "/v1/metrics/history", async ({ query }) => {
    const app = query.get("app");
    const fn = query.get("function");
    if ((app === null) !== (fn === null) || app === "" || fn === "") {
      const q = (v: string | null) => (v === null ? "(none)" : JSON.stringify(v.slice(0, QUOTED)));
      throw invalid(`give both app and function (one function's history) or neither (all functions together); got app ${q(app)} and function ${q(fn)}`);
    }
    return { status: 200, body: d.metrics.historyView(app === null ? null : { app, function: fn! }) };
  });

  r.on("GET", "/v1/metrics/top", async () => ({ status: 200, body: d.metrics.top() }));

  r.on("GET", "/v1/gpus/history", async () => ({ status: 200, body: d.metrics.gpuSamples.view() }));
}
