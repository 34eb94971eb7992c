/**
 * Metrics (issue 23): what the daemon measures, as the dashboard's charts, `gantry top` and the
 * API read it. Prometheus reads `GET /metrics` (text format, prom-client) instead.
 *
 * Routes (same access rule as the rest of /v1: the socket, or the token over TCP):
 *   GET /metrics                                   → Prometheus text format
 *   GET /v1/metrics/history[?app=A&function=F]     → MetricsHistoryView (the last hour, a point a minute;
 *                                                    without app/function: all functions together)
 *   GET /v1/metrics/top                            → TopView (a snapshot: what `gantry top` shows)
 *   GET /v1/gpus/history                           → GpuHistoryView (each GPU's utilization and memory, the last 15 minutes)
 */

/** How much history the daemon keeps in memory (a bounded rolling store: no database). */
export const METRICS_HISTORY = {
  /** One point per function per minute, for the last hour. */
  bucketMs: 60_000,
  buckets: 60,
  /** GPU samples every 5 s for the last 15 minutes. */
  gpuSampleMs: 5_000,
  gpuSamples: 180,
  /** Functions followed at most (beyond, the least recently active are dropped). */
  maxFunctions: 1_000,
} as const;

/** One minute of one function (or of all). Times are the minute's start, ISO 8601. */
export interface MetricsPoint {
  at: string;
  /** Calls that ended in this minute, by how. */
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Calls submitted in this minute. */
  submitted: number;
  /** Durations (running → end) of calls that ended this minute, seconds; null when none ended. */
  duration_p50_s: number | null;
  duration_p95_s: number | null;
  /** Queue wait (submitted → first running) of calls that started this minute, seconds. */
  wait_p50_s: number | null;
  /** Sampled at the minute's end (or now, for the current minute). */
  queued: number;
  running: number;
  containers: number;
}

export interface MetricsHistoryView {
  /** null: all functions together. */
  app: string | null;
  function: string | null;
  bucket_s: number;
  /** Oldest first, the current (partial) minute last; minutes with nothing are there, zeroed. */
  points: MetricsPoint[];
}

/** One function's row in `gantry top`. */
export interface TopFunctionView {
  app: string;
  function: string;
  queued: number;
  running: number;
  containers: number;
  /** Calls ended per minute, over the last 5 minutes. */
  rate_per_min: number;
  /** Duration p50 over the last 5 minutes, seconds; null when none ended. */
  p50_s: number | null;
  failed_5m: number;
  gpus_held: number;
}

export interface TopView {
  at: string;
  functions: TopFunctionView[];
  containers: { starting: number; ready: number; draining: number; stopping: number };
  gpus: Array<{ index: number; name: string; holder: string | null; utilization_pct: number | null; memory_used_mib: number | null; memory_mib: number }>;
  totals: { queued: number; running: number; rate_per_min: number };
}

export interface GpuSample {
  at: string;
  /** null when nvidia-smi does not report it. */
  utilization_pct: number | null;
  memory_used_mib: number | null;
}

export interface GpuHistoryView {
  sample_s: number;
  gpus: Array<{ index: number; uuid: string; name: string; memory_mib: number; samples: GpuSample[] }>;
}
