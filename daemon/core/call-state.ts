/**
 * The call state machine (DESIGN 1.2). One exhaustive `transition` function decides every change;
 * callers persist what it returns with a compare-and-set on (id, attempt, status).
 *
 *   queued ──dispatch──▶ running ──succeed──▶ succeeded
 *     ▲                    │ fail/timeout/lose, retries left: attempt+1, back to queued after a delay
 *     └────────────────────┘ fail/timeout/lose, none left: failed
 *   queued|running ──cancel──▶ cancelled          (never retried)
 */
import type { RetryPolicy } from "../../protocol/function-spec.js";
import { SystemErrorType, type RemoteError } from "../../protocol/remote-error.js";
import { assertExhaustive } from "./assert.js";
import { retriesLeft, retryDelayMs } from "./retry.js";

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
}

export type CallEvent =
  | { type: "dispatch"; attempt: number }
  | { type: "succeed"; attempt: number }
  /** The function raised (or the agent reported an error). */
  | { type: "fail"; attempt: number; error: RemoteError }
  /** The attempt overran its timeout. */
  | { type: "timeout"; attempt: number; timeoutMs: number }
  /** The container running the attempt went away (crash, daemon restart). */
  | { type: "lose"; attempt: number; reason: string }
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
  if (retriesLeft(policy, state.attempt) > 0) {
    const retry = state.attempt; // the n-th retry follows attempt n
    return {
      ok: true,
      from: state,
      to: { status: CallStatus.queued, attempt: state.attempt + 1 },
      retryInMs: retryDelayMs(policy, retry),
      error,
    };
  }
  return { ok: true, from: state, to: { status: CallStatus.failed, attempt: state.attempt }, error };
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
      return (
        stale(state, event.attempt) ??
        failOrRetry(state, policy, { type: SystemErrorType.containerLost, message: event.reason, traceback: "" })
      );
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
