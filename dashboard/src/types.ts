/** The API's shapes, shared with the daemon (protocol/api.ts), and the events of /v1/events. */
export type {
  CallStatusName,
  CallView,
  ContainerView,
  FunctionLiveView,
  FunctionView,
  GpuStatusView,
  GpuView,
  GpuWaitView,
} from "../../protocol/api.js";
export type { VolumeEntry, VolumeView } from "../../protocol/volumes.js";
export type { GpuHistoryView, GpuSample, MetricsHistoryView, MetricsPoint } from "../../protocol/metrics.js";
import type { CallStatusName, FunctionLiveView, FunctionView, GpuStatusView, GpuView, GpuWaitView } from "../../protocol/api.js";

export type GantryEventView =
  | { type: "call.status"; call_id: string; app: string; function: string; status: CallStatusName; attempt: number; ts: string }
  | { type: "container.status"; container_id: string; app: string; function: string; status: string; detail?: string; ts: string }
  | { type: "log"; app: string; function: string; container_id: string; call_id?: string; stream: "stdout" | "stderr"; line: string; ts: string };

export interface AppSummary {
  name: string;
  state: "deployed" | "stopped";
  deployed_at: string;
  source: string | null;
  /** Deployed by gantry serve or app.run(): stopped when its client stops heartbeating. */
  ephemeral?: boolean;
  functions: string[];
  endpoints: Array<{ function: string; url: string }>;
}

export interface AppDetail {
  name: string;
  state: "deployed" | "stopped";
  deployed_at: string;
  source: string | null;
  ephemeral?: boolean;
  expires_at?: string | null;
  functions: Array<FunctionView & { live: FunctionLiveView }>;
}

export interface Health {
  version: string;
  pid: number;
  home: string;
  http: string | null;
  live: number;
  queued: number;
  containers: number;
  gpu: GpuStatusView;
}

export interface GpuBoard extends GpuStatusView {
  gpus: GpuView[];
  waiting: GpuWaitView[];
}

export interface LogLine {
  ts: string;
  function: string;
  container_id: string;
  call_id?: string;
  stream: "stdout" | "stderr";
  line: string;
}

export interface Session {
  token_required: boolean;
  signed_in: boolean;
}

/**
 * Sandboxes' answer shapes, as protocol/sandboxes.ts has them (the fields the dashboard reads):
 * mirrored, since that file's schemas reach node:crypto and Buffer, which the page cannot type.
 */
export type SandboxState = "pending" | "running" | "finished" | "timed_out" | "terminated" | "failed";

export interface SandboxView {
  id: string;
  app: string;
  name: string | null;
  state: SandboxState;
  returncode: number | null;
  error: string | null;
  timeout_kind: "timeout" | "idle" | null;
  command: string[];
  image: string | null;
  tags: Record<string, string>;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  timeout: number;
  idle_timeout: number | null;
  block_network: boolean;
  pty: boolean;
  running_execs: number;
}

export interface ProcessView {
  id: string;
  running: boolean;
  returncode: number | null;
  stdout_bytes: number;
  stderr_bytes: number;
  dropped: boolean;
}
