/** Shapes of the daemon's /v1 API answers, shared by daemon, CLI and SDK. */
import type { ClsParam, ParamValue } from "./cls-params.js";

/** `fc-` + 10 characters of time + 16 random, in Crockford base32 (see daemon/core/ids.ts). */
export const CALL_ID_PATTERN = /^fc-[0-9a-hjkmnp-tv-z]{26}$/;
import type { RemoteError } from "./remote-error.js";

/** The request header that makes a submit idempotent (POST …/calls, POST /submit/…). */
export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";
/** The answer's header when a submit returned the call an earlier submit with its key made. */
export const IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed";
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;
/** How long a key keeps answering with its first call. */
export const IDEMPOTENCY_KEY_TTL_S = 24 * 3600;

/** Why `key` cannot be an idempotency key (1–255 printable ASCII characters), or null when it can. */
export function idempotencyKeyProblem(key: string): string | null {
  if (key.length < 1 || key.length > MAX_IDEMPOTENCY_KEY_CHARS) {
    return `${IDEMPOTENCY_KEY_HEADER} must be 1 to ${MAX_IDEMPOTENCY_KEY_CHARS} characters; got ${key.length}`;
  }
  const bad = /[^\x20-\x7e]/.exec(key);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).padStart(2, "0");
    return `${IDEMPOTENCY_KEY_HEADER} must be printable ASCII (space to ~); character ${bad.index + 1} is U+${code.toUpperCase().padStart(4, "0")}`;
  }
  return null;
}

export type CallStatusName = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface CallView {
  call_id: string;
  app: string;
  function: string;
  status: CallStatusName;
  attempt: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** The finished call's result was dropped after its resultTtl. */
  expired: boolean;
  expires_at: string | null;
  /** The container running the call, or the one that ran its last attempt. */
  container_id: string | null;
  result?: unknown;
  /**
   * A Python function's result for a Python caller: base64 of its pickle, in place of `result`.
   * Only Python clients read it; the HTTP /result route and the TypeScript client say so (406).
   */
  result_pickle?: string;
  error?: RemoteError;
  /** The call's arguments: only in the answer about one call (GET /v1/calls/{id}). */
  input?: {
    args: unknown[];
    kwargs: Record<string, unknown> | null;
    /** A Python caller's pickled arguments: their size (the daemon never unpickles them). */
    pickled_bytes?: number;
    /** A class's call: the method it ran. */
    method?: string;
    /** A class's call with parameters or options: its parameter set (defaults applied) and the options it overrides. */
    params?: Record<string, ParamValue>;
    options?: Record<string, unknown>;
    /** Started by the function's schedule, not by a caller. */
    scheduled?: boolean;
  };
  /** Its earlier attempts, why each ended and the call ran again: only in the answer about one call. */
  attempts?: AttemptView[];
  /**
   * GPU-seconds the call used, once finished: each attempt's duration × the GPUs its container
   * held, summed; null for a call that held no GPU (or has not finished).
   */
  gpu_seconds?: number | null;
}

/**
 * An attempt that was not the call's last: "failed" (the function failed, a retry followed) or
 * "lost" (its container went away without the function failing: a re-run that used no retry).
 */
export interface AttemptView {
  attempt: number;
  outcome: "failed" | "lost";
  container_id: string | null;
  started_at: string | null;
  ended_at: string;
  error: RemoteError | null;
}

/** A finished call as a results stream gives it (POST /v1/calls/results). */
export type CallOutcome = Pick<CallView, "call_id" | "status" | "attempt" | "expired" | "result" | "result_pickle" | "error"> & { expires_at?: string | null };

/** GET /v1/calls/{id}/graph: a call and the calls it spawned from inside its container. */
export interface CallGraphNode {
  call_id: string;
  app: string;
  function: string;
  status: CallStatusName;
  children: CallGraphNode[];
}

/** GET /v1/calls/{id}/items: a generator call's items from `from` on. */
export interface CallItemsView {
  call_id: string;
  status: CallStatusName;
  /** Each item: `value` (JSON) or `pickled` (base64 of a Python caller's pickle). */
  items: Array<{ index: number; value?: unknown; pickled?: string }>;
  /** The index to ask from next. */
  next: number;
  /** The call ended and every item has been read. */
  done: boolean;
  /** The items were dropped with the call's result (after its resultTtl). */
  expired: boolean;
  /** Why it failed, once done. */
  error?: RemoteError;
}

/** Why a pickled result cannot be read as JSON, and how to read it (the HTTP /result route, the TypeScript client, the CLI). */
export const pickledResultMessage = (callId: string) =>
  `call ${callId} returned a Python value (pickled for the Python caller that spawned it), which only a Python client can read: ` +
  `gantry.FunctionCall.from_id("${callId}").get()`;

export interface ApiErrorBody {
  error: { code: string; message: string; type?: string; traceback?: string };
}

/** Web endpoints are served under /web/APP/FUNCTION/ on the daemon's listeners. */
export const WEB_PREFIX = "/web/";

/** The URL of a function's web endpoint, given the daemon's HTTP base (or none: the path alone). */
export const webUrl = (base: string | null, app: string, fn: string) => `${base ?? ""}${WEB_PREFIX}${encodeURIComponent(app)}/${encodeURIComponent(fn)}/`;

export interface FunctionView {
  app: string;
  name: string;
  image: string;
  /** A web endpoint's URL (its path alone when the daemon serves no TCP); null for other functions. */
  web_url: string | null;
  /** The GPU request and its fallbacks, as written ("A100", "H100:2"); null: no GPU. */
  gpu: string[] | null;
  deployed_at: string;
  max_containers: number;
  max_inputs: number;
  timeout_s: number;
  retries: number;
  runtime: "node" | "python";
  min_containers: number;
  buffer_containers: number;
  scaledown_window_s: number;
  /** Cores and MiB the container may use; null: unlimited. */
  cpu: number | null;
  memory_mib: number | null;
  result_ttl_s: number;
  network: "bridge" | "none";
  /** The names of the environment variables it sets (not their values). */
  env: string[];
  /** The names of the secrets it uses, in order (never their keys' values). */
  secrets: string[];
  /** A web endpoint's kind ("fetch", "asgi", …); null for other functions. */
  web: string | null;
  /** A generator function: call it with remote_gen (Python) or remoteGen (TypeScript). */
  generator: boolean;
  /** A class (@app.cls): its methods; null for a function. */
  methods: string[] | null;
  /** A class's generator methods (called with remote_gen). */
  generator_methods: string[];
  /** Its schedule, as it reads ("every 5 min", "cron 0 9 * * 1-5"); null when it has none. */
  schedule: string | null;
  /** A class's web endpoint methods and their URLs (query parameters name the parameter set); {} for others. */
  web_methods: Record<string, string>;
  /** A class's parameters (each distinct set is a pool of its own); [] for functions and classes without. */
  params: ClsParam[];
  public: boolean;
}

/** What one function is doing now (GET /v1/apps/{app}). */
export interface FunctionLiveView {
  queued: number;
  running: number;
  containers: number;
  /** Calls waiting for GPUs, since when; null when it waits for none. */
  gpu_wait_since: string | null;
  /** A scheduled function's next run; null without a schedule. */
  next_run_at?: string | null;
  /** A class's pools for parameter sets and options in use (`size=2`), beside its own. */
  variants: Array<{ variant: string; queued: number; running: number; containers: number }>;
}

export interface ContainerView {
  id: string;
  docker_id: string | null;
  app: string;
  function: string;
  state: "starting" | "ready" | "draining" | "stopping";
  /** Calls running in it now (at most max_inputs). */
  active_calls: number;
  max_inputs: number;
  started_at: string;
  /** The GPUs this container holds (none for CPU functions). */
  gpus: Array<{ index: number; uuid: string }>;
  /** The calls it is running now. */
  calls: string[];
  /** Calls sent ahead to it (short calls, every slot busy): each begins there as a slot frees. */
  prefetched: string[];
  /** The cluster node it runs on (Swarm), once known; null on one machine. */
  node: string | null;
  /** A class's container for one parameter set or options (`Model(size=2)`): as "size=2, gpu=\"A100\""; null for the class's own pool and functions. */
  variant: string | null;
}

/** A machine containers run on (GET /v1/nodes): this one, or a node of the Swarm cluster. */
export interface NodeView {
  id: string;
  hostname: string;
  role: "manager" | "worker" | "local";
  state: string;
  availability: string;
  cpus: number;
  memory_mib: number;
  gpus: Array<{ uuid: string; type: string | null; holder: { app: string; function: string; container_id: string } | null }>;
  labels: Record<string, string>;
  /** gantry's containers on it, and their busy slots of all their slots. */
  containers: number;
  busy_slots: number;
  slots: number;
}

/** One GPU of the machine and the container holding it (GET /v1/gpus). */
export interface GpuView {
  index: number;
  uuid: string;
  name: string;
  memory_mib: number;
  /** Its device node on the host (its node's name in a cluster). */
  device: string;
  /** The cluster node it is on; null on one machine. */
  node: string | null;
  holder: { app: string; function: string; container_id: string } | null;
}

/** The daemon's GPU summary (health, GET /v1/gpus). */
export interface GpuStatusView {
  count: number;
  /** How containers get their GPUs; null when the machine has none. */
  passthrough: "device-requests" | "device-nodes" | "swarm" | null;
  driver_version: string | null;
  /** Why no GPU is listed (nvidia-smi missing or failing). */
  problem: string | null;
  held: number;
}

/** A function whose calls wait for GPUs (GET /v1/gpus). */
export interface GpuWaitView {
  app: string;
  function: string;
  gpu: string[];
  queued: number;
  since: string;
}

/** Lines of the NDJSON stream that answers POST /v1/apps/deploy. */
export type DeployEvent =
  | { type: "image"; image: string; status: "cached" | "building" | "built"; functions: string[] }
  | { type: "build"; image: string; step: number; total: number; line: string }
  | { type: "log"; line: string }
  | {
      type: "done";
      app: string;
      functions: FunctionView[];
      built: string[];
      cached: string[];
      /** The version this deploy is (gantry app history); absent when it could not be recorded. */
      version?: number;
      /** Deployed as ephemeral: stopped unless its client heartbeats (POST /v1/apps/:app/heartbeat). */
      ephemeral?: boolean;
    }
  | { type: "error"; error: ApiErrorBody["error"] };

/**
 * One version of an app (GET /v1/apps/:app/versions, newest first): every deploy and every
 * rollback is one, numbered 1, 2, … per app; the newest is the one served (`current`).
 */
export interface VersionView {
  version: number;
  deployed_at: string;
  /** Its functions: name, image tag, and the hash of the app's code they ran. */
  functions: Array<{ name: string; image: string; bundle_hash: string; runtime: "node" | "python" }>;
  /** What changed from the version before: "added function f", "code changed (…)", "f: image changed", "rollback to v3". */
  changes: string[];
  current: boolean;
  source: string | null;
  /** A rollback's: the version served before it (the one rolled back from), and the version it served again. */
  rolled_back_from?: number;
  rollback_to?: number;
}

/** The answer to POST /v1/apps/:app/rollback: the version now served (a new one), and the version it served again. */
export interface RollbackView {
  app: string;
  version: VersionView;
  rollback_to: number;
  functions: FunctionView[];
}

/** A secret as the API shows it (GET /v1/secrets): its keys, never their values. */
export interface SecretView {
  name: string;
  keys: string[];
  created_at: string;
  updated_at: string;
  /** Deployed functions that use it, as "app.function". */
  used_by: string[];
}
