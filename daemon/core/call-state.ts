/**
 * The call state machine (DESIGN 1.2). One exhaustive `transition` function decides every change;
 * callers persist what it returns with a compare-and-set on (id, attempt, status).
 *
 *   queued ──dispatch──▶ running ──succeed──▶ succeeded
 *     ▲                    │ fail/timeout, retries left: attempt+1, back to queued after a delay
 *     │                    │ lose (the container went away, not the function's doing), fewer than
 *     │                    │   MAX_CONTAINER_LOSSES so far: attempt+1 at once, no retry used
 *     └────────────────────┘ fail/timeout with no retries left, or lose once too often: failed
 *   queued|running ──cancel──▶ cancelled          (never retried)
 *   running ──return──▶ queued, same attempt: a prefetched input given back before it began (its
 *                       container went away): nothing ran, so nothing is counted
 */
import type { RetryPolicy } from "../../protocol/function-spec.js";
import { SystemErrorType, type RemoteError } from "../../protocol/remote-error.js";
import { assertExhaustive } from "./assert.js";
import { retriesLeft, retriesUsed, retryDelayMs } from "./retry.js";

/** How many times a call is re-run because its container was lost before it fails with ContainerLostError. */
export const MAX_CONTAINER_LOSSES = 3;

export const CallStatus = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
} as const;
export type CallStatus = (typeof CallStatus)[keyof typeof CallStatus];

export const TERMINAL: ReadonlySet<CallStatus> = new Set([CallStatus.succeeded, CallStatus.failed, CallStatus.cancelled]);

export interface CallState {
  status: CallStatus;
  attempt: number;
  /** Attempts that ended with their container lost (they used no retry); 0 when absent. */
  lost?: number;
}

export type CallEvent =
  | { type: "dispatch"; attempt: number }
  | { type: "succeed"; attempt: number }
  /** The function raised (or the agent reported an error). */
  | { type: "fail"; attempt: number; error: RemoteError }
  /** The attempt overran its timeout. */
  | { type: "timeout"; attempt: number; timeoutMs: number }
  /**
   * The container running the attempt went away without the function failing (killed from
   * outside, an engine or daemon restart, its agent unreachable): not the function's fault.
   */
  | { type: "lose"; attempt: number; reason: string }
  /** A prefetched input that never began is given back (its container went away first). */
  | { type: "return"; attempt: number }
  | { type: "cancel" };

export type Transition =
  | { ok: true; from: CallState; to: CallState; retryInMs?: number; error?: RemoteError }
  | { ok: false; reason: "stale_attempt" | "not_allowed"; detail: string };

function stale(state: CallState, attempt: number): Transition | null {
  if (attempt !== state.attempt) {
    return { ok: false, reason: "stale_attempt", detail: `attempt ${attempt} is not the current attempt ${state.attempt}` };
  }
  if (state.status !== CallStatus.running) {
    return { ok: false, reason: "not_allowed", detail: `call is ${state.status}, not running` };
  }
  return null;
}

function failOrRetry(state: CallState, policy: RetryPolicy, error: RemoteError): Transition {
  const lost = state.lost ?? 0;
  if (retriesLeft(policy, state.attempt, lost) > 0) {
    const retry = retriesUsed(state.attempt, lost) + 1;
    return {
      ok: true,
      from: state,
      to: { status: CallStatus.queued, attempt: state.attempt + 1, ...(lost ? { lost } : {}) },
      retryInMs: retryDelayMs(policy, retry),
      error,
    };
  }
  return { ok: true, from: state, to: { status: CallStatus.failed, attempt: state.attempt, ...(lost ? { lost } : {}) }, error };
}

/** A lost container re-runs the call at once, up to MAX_CONTAINER_LOSSES times, without using a retry. */
function rerunOrFail(state: CallState, reason: string): Transition {
  const lost = state.lost ?? 0;
  if (lost < MAX_CONTAINER_LOSSES) {
    const error = { type: SystemErrorType.containerLost, message: reason, traceback: "" };
    return { ok: true, from: state, to: { status: CallStatus.queued, attempt: state.attempt + 1, lost: lost + 1 }, retryInMs: 0, error };
  }
  const message = `${reason}; the call's containers were lost ${lost + 1} times (at most ${MAX_CONTAINER_LOSSES} re-runs), so it failed`;
  return { ok: true, from: state, to: { status: CallStatus.failed, attempt: state.attempt, lost: lost + 1 }, error: { type: SystemErrorType.containerLost, message, traceback: "" } };
}

export function transition(state: CallState, event: CallEvent, policy: RetryPolicy): Transition {
  switch (event.type) {
    case "dispatch":
      if (state.status !== CallStatus.queued) return { ok: false, reason: "not_allowed", detail: `cannot dispatch a ${state.status} call` };
      if (event.attempt !== state.attempt) return { ok: false, reason: "stale_attempt", detail: `dispatch of attempt ${event.attempt}, current is ${state.attempt}` };
      return { ok: true, from: state, to: { status: CallStatus.running, attempt: state.attempt } };
    case "succeed":
      return stale(state, event.attempt) ?? { ok: true, from: state, to: { status: CallStatus.succeeded, attempt: state.attempt } };
    case "fail":
      return stale(state, event.attempt) ?? failOrRetry(state, policy, event.error);
    case "timeout":
      return (
        stale(state, event.attempt) ??
        failOrRetry(state, policy, {
          type: SystemErrorType.timeout,
          message: `attempt ${event.attempt} ran longer than the function's timeout of ${event.timeoutMs / 1000} s`,
          traceback: "",
        })
      );
    case "lose":
      return stale(state, event.attempt) ?? rerunOrFail(state, event.reason);
    case "return":
      return stale(state, event.attempt) ?? { ok: true, from: state, to: { ...state, status: CallStatus.queued } };
    case "cancel":
      if (TERMINAL.has(state.status)) return { ok: false, reason: "not_allowed", detail: `call is already ${state.status}` };
      return {
        ok: true,
        from: state,
        to: { status: CallStatus.cancelled, attempt: state.attempt },
        error: { type: SystemErrorType.cancelled, message: "the call was cancelled", traceback: "" },
      };
    default:
      return assertExhaustive(event, "call event");
  }
}
