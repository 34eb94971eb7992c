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

export type { ProcessView, SandboxState, SandboxView } from "../../protocol/sandbox-views.js";
