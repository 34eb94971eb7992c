import { z } from "zod";

/** The most base64 characters a pickled exception may take (a larger one is left out: the type, message and traceback remain). */
export const MAX_PICKLED_ERROR_CHARS = 1024 * 1024;

/** An error that crossed a process boundary: always data, never a serialised Error object. */
export const remoteErrorSchema = z.object({
  type: z.string().max(200),
  message: z.string(),
  traceback: z.string().default(""),
  /**
   * The exception itself, pickled (base64), when a Python function failed on a pickled input: the
   * Python caller raises it as its own type. The daemon never unpickles it.
   */
  pickled: z.string().max(MAX_PICKLED_ERROR_CHARS).optional(),
});
export type RemoteError = z.infer<typeof remoteErrorSchema>;

/** Error types gantry itself produces (user code produces any other `type`). */
export const SystemErrorType = {
  timeout: "FunctionTimeoutError",
  /** The container went away without the function failing, more often than a call is re-run for it. */
  containerLost: "ContainerLostError",
  containerStart: "ContainerStartError",
  cancelled: "CancelledError",
  functionRemoved: "FunctionRemovedError",
  /** The function asks for GPUs this machine cannot give (fewer GPUs than at deploy). */
  gpuUnavailable: "GpuUnavailableError",
  /** The kernel killed the container for passing its memory limit; counts against retries. */
  outOfMemory: "OutOfMemoryError",
  /** The container's process ended by itself during a call (exit, crash); counts against retries. */
  containerExit: "ContainerExitError",
} as const;

const MAX_TRACEBACK = 64 * 1024;
/** The schema's limit on an error's type name (a longer one would be refused with its output). */
const MAX_TYPE = 200;

export function toRemoteError(err: unknown): RemoteError {
  if (err instanceof Error) {
    return {
      type: (err.name || err.constructor?.name || "Error").slice(0, MAX_TYPE),
      message: err.message,
      traceback: (err.stack ?? "").slice(0, MAX_TRACEBACK),
    };
  }
  return { type: "Error", message: typeof err === "string" ? err : safeJson(err), traceback: "" };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
