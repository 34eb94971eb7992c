/**
 * The charts of the daemon's metrics history: the last hour, a point a minute, of all functions
 * (the apps page) or of one (its part of the app's page); and each GPU's last 15 minutes. They
 * read again every 10 s and soon after a call of theirs changes status.
 */
import { useEffect, useMemo, useRef } from "preact/hooks";
import { api, ApiFailure, qs } from "../api.js";
import { gpuChart, hadCalls, metricsCharts } from "../chart-data.js";
import { Chart } from "../charts.js";
import { ErrorBox, Loading } from "../components.js";
import { useData, useLiveReload } from "../hooks.js";
import type { GpuHistoryView, MetricsHistoryView } from "../types.js";

const REFRESH_MS = 10_000;
/** At most one extra read per this long while calls change status. */
const EVENT_THROTTLE_MS = 2_000;

/** Calls `fn` every `everyMs` while mounted. */
function useEvery(fn: () => void, everyMs: number): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const t = setInterval(() => ref.current(), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
}

/** Calls per minute, durations, queue and containers: of one function when `app` and `fn` are given, else of all. */
export function MetricsCharts({ app, fn }: { app?: string; fn?: string }) {
  const { data, error, reload } = useData(
    (signal) => api<MetricsHistoryView>("GET", `/v1/metrics/history${qs({ app, function: fn })}`, undefined, signal),
    [app, fn],
  );
  useEvery(reload, REFRESH_MS);
  useLiveReload(reload, (e) => e.type === "call.status" && (!app || e.app === app) && (!fn || e.function === fn), EVENT_THROTTLE_MS);
  const charts = useMemo(() => (data ? metricsCharts(data) : []), [data]);
  const scope = fn ? `${app}.${fn}` : "all";
  // 404: the function is not deployed (a stopped app's) and had no calls in the hour.
  const unknown = error instanceof ApiFailure && error.status === 404;
  if (error && !data && !unknown) return <ErrorBox error={error} />;
  if (!data && !unknown) return <Loading />;
  if (!data || unknown || !hadCalls(data)) {
    return (
      <p class="muted charts-empty" data-charts={scope} data-empty="yes">
        No calls in the last hour.
      </p>
    );
  }
  return (
    <div class="charts" data-charts={scope}>
      {charts.map((c) => (
        <Chart key={c.key} spec={c} />
      ))}
    </div>
  );
}

/** The GPUs' recent samples, read again every sample period (GpuChart draws one GPU's). */
export function useGpuHistory() {
  const history = useData((signal) => api<GpuHistoryView>("GET", "/v1/gpus/history", undefined, signal), []);
  useEvery(history.reload, Math.max(5, history.data?.sample_s ?? 5) * 1000);
  return history;
}

/** One GPU's utilization and memory over the last minutes. */
export function GpuChart({ history, uuid }: { history: GpuHistoryView | undefined; uuid: string }) {
  const gpu = history?.gpus.find((g) => g.uuid === uuid);
  const spec = useMemo(() => (gpu ? gpuChart(gpu) : null), [gpu]);
  if (!history) return null;
  if (!spec || !spec.data[0].length) return <p class="muted small" data-gpu-chart="none">No samples yet (one every {history.sample_s} s).</p>;
  return <Chart spec={spec} height={120} />;
}
