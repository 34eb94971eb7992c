/** How calls look in the API's answers, and how a call's arguments are read from a request body. */
import type { AttemptView, CallOutcome, CallView } from "../../protocol/api.js";
import { CallStatus } from "../core/call-state.js";
import type { AttemptRecord, CallRecord } from "../store/call-store.js";
import { invalid } from "./errors.js";

export const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** Expired once the sweep dropped the result, or as soon as expires_at has passed (before the sweep). */
export function isExpired(r: CallRecord, nowMs: number): boolean {
  return r.expired || (r.expiresAt !== null && r.expiresAt <= nowMs);
}

/** What a client needs of a finished call to settle it (results streams): no times but an expiry. */
export function callOutcome(r: CallRecord, nowMs: number): CallOutcome {
  const expired = isExpired(r, nowMs);
  const o: CallOutcome = { call_id: r.id, status: r.status, attempt: r.attempt, expired };
  if (expired) o.expires_at = iso(r.expiresAt);
  if (r.status === CallStatus.succeeded && !expired) o.result = r.resultJson === null ? null : JSON.parse(r.resultJson);
  if (r.error && r.status !== CallStatus.succeeded) o.error = r.error;
  return o;
}

export function callView(r: CallRecord, nowMs = Date.now()): CallView {
  const expired = isExpired(r, nowMs);
  const v: CallView = {
    call_id: r.id,
    app: r.app,
    function: r.function,
    status: r.status,
    attempt: r.attempt,
    created_at: iso(r.createdAt)!,
    started_at: iso(r.startedAt),
    finished_at: iso(r.finishedAt),
    expired,
    expires_at: iso(r.expiresAt),
    container_id: r.containerId,
  };
  if (r.status === CallStatus.succeeded && !expired) v.result = r.resultJson === null ? null : JSON.parse(r.resultJson);
  if (r.error && r.status !== CallStatus.succeeded) v.error = r.error;
  return v;
}

/** A call's earlier attempts: how each ended, and why the call ran again. */
export function attemptViews(attempts: readonly AttemptRecord[]): AttemptView[] {
  return attempts.map((a) => ({
    attempt: a.attempt,
    outcome: a.outcome,
    container_id: a.containerId,
    started_at: iso(a.startedAt),
    ended_at: iso(a.endedAt)!,
    error: a.error,
  }));
}

/** `{"args": [...], "kwargs": {...}}`, both optional: a call's positional and keyword arguments. */
export function callInput(body: unknown): { args: unknown[]; kwargs: Record<string, unknown> | null } {
  if (body === undefined) return { args: [], kwargs: null };
  const shape = `the body must be {"args": [...], "kwargs": {...}}, the function's arguments (both optional)`;
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid(shape);
  const { args = [], kwargs, ...rest } = body as { args?: unknown; kwargs?: unknown };
  const extra = Object.keys(rest);
  if (extra.length) throw invalid(`${shape}; unknown field ${JSON.stringify(extra[0])}`);
  if (!Array.isArray(args)) throw invalid(`"args" must be an array: ${shape}`);
  if (kwargs !== undefined && (kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs))) {
    throw invalid(`"kwargs" must be an object of named arguments: ${shape}`);
  }
  const named = kwargs as Record<string, unknown> | undefined;
  return { args, kwargs: named && Object.keys(named).length ? named : null };
}
