/** How calls look in the API's answers, and how a call's arguments are read from a request body. */
import type { Variant } from "../../protocol/cls-variant.js";
import { BASE64 } from "../../protocol/agent-messages.js";
import type { AttemptView, CallGraphNode, CallItemsView, CallOutcome, CallView } from "../../protocol/api.js";
import { CallStatus, TERMINAL } from "../core/call-state.js";
import { pickledValue, type AttemptRecord, type CallInput, type CallRecord, type CallStore } from "../store/call-store.js";
import { ITEMS_PER_READ } from "../store/item-store.js";
import type http from "node:http";
import { callerApp } from "./caller.js";
import { ApiError, invalid } from "./errors.js";

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
  if (r.status === CallStatus.succeeded && !expired) setResult(o, r.resultJson);
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
    gpu_seconds: r.gpuSeconds ?? null,
  };
  if (r.status === CallStatus.succeeded && !expired) setResult(v, r.resultJson);
  if (r.error && r.status !== CallStatus.succeeded) v.error = r.error;
  return v;
}

/** A JSON result as `result`; a pickled one (for Python callers) as `result_pickle`, base64, never unpickled here. */
function setResult(v: { result?: unknown; result_pickle?: string }, resultJson: string | null): void {
  const pickled = pickledValue(resultJson);
  if (pickled !== null) v.result_pickle = pickled;
  else v.result = resultJson === null ? null : JSON.parse(resultJson);
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

/**
 * `{"args": [...], "kwargs": {...}}`, both optional: a call's positional and keyword arguments; or
 * `{"pickle": "<base64>"}` from a Python caller (pickled (args, kwargs), for Python functions).
 */
export function callInput(body: unknown): CallInput {
  if (body === undefined) return { args: [], kwargs: null };
  const shape = `the body must be {"args": [...], "kwargs": {...}}, the function's arguments (both optional)`;
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid(shape);
  const { method, params, options, ...fields } = body as { method?: unknown; params?: unknown; options?: unknown };
  const which = classTarget(method, params, options);
  if ("pickle" in fields) {
    const { pickle, ...others } = fields as { pickle?: unknown };
    if (Object.keys(others).length) throw invalid(`a pickled input is {"pickle": "<base64>"} alone; this one also has ${JSON.stringify(Object.keys(others)[0])}`);
    if (typeof pickle !== "string" || !BASE64.test(pickle)) throw invalid(`"pickle" must be the base64 of a pickled (args, kwargs)`);
    return { args: [], kwargs: null, pickle, ...which };
  }
  const { args = [], kwargs, ...rest } = fields as { args?: unknown; kwargs?: unknown };
  const extra = Object.keys(rest);
  if (extra.length) throw invalid(`${shape}; unknown field ${JSON.stringify(extra[0])}`);
  if (!Array.isArray(args)) throw invalid(`"args" must be an array: ${shape}`);
  if (kwargs !== undefined && (kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs))) {
    throw invalid(`"kwargs" must be an object of named arguments: ${shape}`);
  }
  const named = kwargs as Record<string, unknown> | undefined;
  return { args, kwargs: named && Object.keys(named).length ? named : null, ...which };
}

/**
 * A class's call names its method, and may name a parameter set (`"params": {"size": 2}`) and
 * options (`"options": {"gpu": "A100"}`, as `with_options`): the dispatcher checks these against
 * the class and keeps their canonical form.
 */
function classTarget(method: unknown, params: unknown, options: unknown): Pick<CallInput, "method" | "variant"> {
  if (method !== undefined && (typeof method !== "string" || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(method))) {
    throw invalid(`"method" must be the name of one of the class's methods, got ${JSON.stringify(method).slice(0, 80)}`);
  }
  for (const [what, v] of [["params", params], ["options", options]] as const) {
    if (v !== undefined && (v === null || typeof v !== "object" || Array.isArray(v))) throw invalid(`"${what}" must be an object, got ${JSON.stringify(v).slice(0, 80)}`);
  }
  if ((params !== undefined || options !== undefined) && method === undefined) throw invalid(`"params" and "options" are for a class's calls, which name a "method"`);
  return {
    ...(method !== undefined ? { method: method as string } : {}),
    // Unchecked here: Dispatcher.submit resolves it against the class (types, defaults, limits).
    ...(params !== undefined || options !== undefined ? { variant: { params: (params ?? {}) as Variant["params"], options: (options ?? {}) as Variant["options"] } } : {}),
  };
}

/**
 * What a submit takes from the container that sent it (none for other clients). Unpickling runs
 * code: a function's container may send pickled arguments only to functions of its own app (whose
 * containers already run its code); to another app it sends JSON. And the call it names as its
 * parent (the call graph) is recorded when that call is its own app's.
 */
export function fromCaller(req: http.IncomingMessage, app: string, calls: Pick<CallStore, "get">, inputs: CallInput[]): void {
  const caller = callerApp(req);
  if (caller === null) return;
  if (caller !== app && inputs.some((i) => i.pickle !== undefined)) {
    throw new ApiError(403, "forbidden", `a function of app ${caller} may send pickled arguments only to its own app's functions; send JSON to app ${app}`);
  }
  const parent = req.headers[PARENT_CALL_HEADER];
  if (typeof parent !== "string" || calls.get(parent)?.app !== caller) return;
  for (const input of inputs) input.parentId = parent;
}

/** A call's input as its answer shows it: JSON arguments as they are; pickled ones by their size only (never unpickled here). */
export function inputView(input: CallInput | null): CallView["input"] | null {
  if (!input) return null;
  const method = {
    ...(input.method !== undefined ? { method: input.method } : {}),
    ...(input.variant !== undefined ? { params: input.variant.params, options: input.variant.options } : {}),
    ...(input.scheduled ? { scheduled: true } : {}),
  };
  if (input.pickle === undefined) return { args: input.args, kwargs: input.kwargs, ...method };
  return { args: [], kwargs: null, pickled_bytes: Math.floor((input.pickle.length * 3) / 4), ...method };
}

/** A read of a generator call's items: each as `value` (JSON) or `pickled` (base64), and whether the stream is done. */
export function itemsView(r: CallRecord, items: ReadonlyArray<{ index: number; data: string }>, from: number, nowMs: number): CallItemsView {
  const out = items.map(({ index, data }) => {
    const pickled = pickledValue(data);
    return pickled !== null ? { index, pickled } : { index, value: JSON.parse(data) as unknown };
  });
  const next = out.length ? out.at(-1)!.index + 1 : from;
  const finished = TERMINAL.has(r.status);
  const expired = finished && isExpired(r, nowMs);
  // Done once the call ended and this read reached its last item (a full page may have more).
  const done = finished && out.length < ITEMS_PER_READ;
  const v: CallItemsView = { call_id: r.id, status: r.status, items: out, next, done, expired };
  if (done && r.error && r.status !== CallStatus.succeeded) v.error = r.error;
  return v;
}

/** The header code in a container sends with the call it runs for: the calls it spawns become that call's children. */
export const PARENT_CALL_HEADER = "x-gantry-parent-call";
const MAX_GRAPH_NODES = 1000;

/** A call and the calls it spawned, breadth first, at most MAX_GRAPH_NODES in all. */
export function callGraph(root: CallRecord, calls: Pick<CallStore, "get" | "children">): CallGraphNode {
  const node = (r: CallRecord): CallGraphNode => ({ call_id: r.id, app: r.app, function: r.function, status: r.status, children: [] });
  const top = node(root);
  const queue: CallGraphNode[] = [top];
  let count = 1;
  while (queue.length && count < MAX_GRAPH_NODES) {
    const parent = queue.shift()!;
    for (const id of calls.children(parent.call_id, MAX_GRAPH_NODES - count)) {
      const rec = calls.get(id);
      if (!rec) continue;
      const child = node(rec);
      parent.children.push(child);
      queue.push(child);
      count++;
    }
  }
  return top;
}
