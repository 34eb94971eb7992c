import { describeVariant } from "../../protocol/cls-variant.js";
import type http from "node:http";
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  idempotencyKeyProblem,
  pickledResultMessage,
  webUrl,
  type CallView,
  type ContainerView,
  type DeployEvent,
  type GpuWaitView,
} from "../../protocol/api.js";
import { deployRequestSchema, formatZodError } from "../../protocol/function-spec.js";
import { SystemErrorType } from "../../protocol/remote-error.js";
import { CallStatus, TERMINAL } from "../core/call-state.js";
import { callIdAt, isCallId } from "../core/ids.js";
import type { ContainerRuntime } from "../docker/types.js";
import type { AppStore } from "../store/app-store.js";
import { pickledValue, type CallInput, type CallRecord, type CallStore } from "../store/call-store.js";
import type { Deployer } from "../service/deployer.js";
import { functionView } from "../service/deployer.js";
import type { Dispatcher } from "../service/dispatcher.js";
import type { GpuBroker } from "../service/gpu-broker.js";
import type { Waiters } from "../service/waiters.js";
import type { AppLogs } from "../service/app-logs.js";
import type { Secrets } from "../service/secrets.js";
import type { EventBus, GantryEvent } from "../service/event-bus.js";
import { ApiError, invalid, notFound, toResponse } from "./errors.js";
import { readJson, Router, secondsParam, type Answer, type RequestContext } from "./http-kit.js";
import type { Access } from "./access.js";
import { registerBatchRoutes } from "./batch-routes.js";
import { registerLogRoutes } from "./log-routes.js";
import { registerNodeRoutes } from "./node-routes.js";
import { registerSecretRoutes } from "./secret-routes.js";
import { registerVolumeRoutes, VOLUME_CONTAINER_ROUTES } from "./volume-routes.js";
import { registerSandboxRoutes, SANDBOX_CONTAINER_ROUTES } from "./sandbox-routes.js";
import type { Sandboxes } from "../service/sandboxes.js";
import { registerVersionRoutes } from "./version-routes.js";
import { DQ_CONTAINER_ROUTES, registerDictRoutes, registerQueueRoutes } from "./dq-routes.js";
import type { Dicts } from "../service/dicts.js";
import type { Schedules } from "../service/schedules.js";
import { describeSchedule } from "../../protocol/schedule.js";
import type { Queues } from "../service/queues.js";
import type { Volumes } from "../service/volumes.js";
import type { AppLifecycle } from "../service/app-lifecycle.js";
import { registerSessionRoutes } from "./session-routes.js";
import { BoundedStream } from "./bounded-stream.js";
import { registerPruneRoutes } from "./prune-routes.js";
import type { History } from "../service/history.js";
import type { Metrics } from "../service/metrics.js";
import { registerMetricsRoutes } from "./metrics-routes.js";
import { attemptViews, callGraph, callInput, callView, fromCaller, inputView, isExpired, iso, itemsView } from "./call-views.js";

export interface RouteDeps {
  access: Access;
  runtime: Pick<ContainerRuntime, "nodes" | "nodeOf">;
  calls: CallStore;
  apps: AppStore;
  dispatcher: Dispatcher;
  deployer: Deployer;
  /** Stops apps; keeps ephemeral ones while their client heartbeats. */
  lifecycle: AppLifecycle;
  gpus: GpuBroker;
  waiters: Waiters;
  logs: AppLogs;
  bus: EventBus;
  secrets: Secrets;
  volumes: Volumes;
  /** Sandboxes (issue 24); left out by tests that build a router without them. */
  sandboxes?: Sandboxes;
  dicts: Dicts;
  queues: Queues;
  schedules: Pick<Schedules, "nextRunAt">;
  /** Finished calls past the history window (gantry calls prune). */
  history: Pick<History, "prune">;
  /** GET /metrics and the metrics history (issue 23). */
  metrics: Metrics;
  maxBodyBytes: number;
  deployBodyBytes: number;
  maxWaitSeconds: number;
  /** The largest batch request body (many calls, or many call IDs). */
  maxBatchBodyBytes: number;
  health: () => Record<string, unknown>;
  /** The daemon's HTTP address, for web endpoints' URLs; null without TCP. */
  webBase: () => string | null;
  requestStop: (graceMs: number | undefined) => void;
}

/** A time as ISO 8601 or milliseconds since the epoch (calls' `since` and `until`). */
function timeParam(query: URLSearchParams, name: string): number | null {
  const raw = query.get(name);
  if (raw === null || raw === "") return null;
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(ms)) throw invalid(`${name} must be a time (ISO 8601, like 2026-11-28T09:00:00Z, or milliseconds since 1970); got ${JSON.stringify(raw.slice(0, 40))}`);
  return ms;
}

function checkedCallId(raw: string): string {
  if (!isCallId(raw)) throw invalid(`${JSON.stringify(raw.slice(0, 80))} is not a call ID (expected fc- followed by 26 letters or digits)`);
  return raw;
}

/** The request's idempotency key, checked (1–255 printable ASCII characters, one header); null without one. */
function idempotencyKeyOf(req: http.IncomingMessage): string | null {
  const values = req.headersDistinct[IDEMPOTENCY_KEY_HEADER.toLowerCase()];
  if (!values) return null;
  if (values.length > 1) throw invalid(`send one ${IDEMPOTENCY_KEY_HEADER} header; this request has ${values.length}`);
  const problem = idempotencyKeyProblem(values[0]!);
  if (problem) throw invalid(problem);
  return values[0]!;
}

/** What code in a container may do with the daemon: call functions, use Dicts and Queues, reach its own volumes and its app's sandboxes. */
const CONTAINER_ROUTES = [
  ["GET", "/v1/apps/:app/functions/:fn"],
  ["POST", "/v1/apps/:app/functions/:fn/calls"],
  ["POST", "/v1/apps/:app/functions/:fn/calls/batch"],
  ["POST", "/v1/calls/results"],
  ["GET", "/v1/calls/:id"],
  ["GET", "/v1/calls/:id/items"],
  ["GET", "/v1/calls/:id/graph"],
  ["POST", "/v1/calls/:id/cancel"],
  ["POST", "/submit/:app/:fn"],
  ["GET", "/result/:id"],
  ...DQ_CONTAINER_ROUTES,
  // The volumes its function mounts only (volume-routes.ts checks each request's volume).
  ...VOLUME_CONTAINER_ROUTES,
  // Its own app's sandboxes only (sandbox-routes.ts checks each request's sandbox).
  ...SANDBOX_CONTAINER_ROUTES,
] as const;

/** The routes a container's credentials allow (its socket), the rest refused with 403. */
export function containerRouter(full: Router): Router {
  return full.only(CONTAINER_ROUTES, (method, path) =>
    new ApiError(403, "forbidden", `a container's credentials allow calls, Dicts, Queues, the volumes it mounts and its app's sandboxes only: ${method} ${path} is refused`),
  );
}

export function buildRouter(d: RouteDeps): Router {
  const r = new Router();

  /** Reads a call, waiting up to `seconds` for it to finish. */
  async function readCall(id: string, seconds: number, ctx: RequestContext): Promise<CallRecord> {
    let rec = d.calls.get(id);
    if (!rec) throw notFound(`no call with ID ${id}`);
    if (!TERMINAL.has(rec.status) && seconds > 0) {
      await d.waiters.wait(id, seconds * 1000, ctx.req); // a client that goes away stops the wait
      rec = d.calls.get(id)!;
    }
    return rec;
  }

  r.on("GET", "/v1/health", async () => ({ status: 200, body: d.health() }));
  r.on("POST", "/v1/daemon/stop", async ({ req }) => {
    const body = (await readJson(req, 1024)) as { grace_s?: unknown } | undefined;
    const grace = body?.grace_s;
    if (grace !== undefined && (typeof grace !== "number" || !(grace >= 0) || grace > 3600)) {
      throw invalid(`grace_s must be a number of seconds from 0 to 3600`);
    }
    setImmediate(() => d.requestStop(grace === undefined ? undefined : grace * 1000));
    return { status: 202, body: { stopping: true } };
  });

  r.on("POST", "/v1/apps/deploy", async (ctx) => {
    const raw = await readJson(ctx.req, d.deployBodyBytes);
    const parsed = deployRequestSchema.safeParse(raw);
    if (!parsed.success) throw invalid(`deploy request: ${formatZodError(parsed.error)}`);
    const res = ctx.res;
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    // Progress a client reads too slowly to take is skipped (bounded-stream.ts); the outcome line is always sent.
    const progress = new BoundedStream(res);
    const emit = (e: DeployEvent) => (e.type === "done" || e.type === "error" ? res.write(JSON.stringify(e) + "\n") : progress.offer(JSON.stringify(e) + "\n"));
    try {
      await d.deployer.deploy(parsed.data, emit);
    } catch (err) {
      // The 200 is sent: every failure, an unexpected one too, reaches the client as its error line.
      const { body, unexpected } = toResponse(err);
      emit({ type: "error", error: body.error as { code: string; message: string } });
      if (unexpected) throw err; // logged where every request's unexpected error is (server.ts), which ends the response
    }
    res.end();
    return undefined;
  });

  r.on("GET", "/v1/apps", async () => {
    const functions = d.apps.listFunctions();
    const apps = d.apps.listApps().map((a) => ({
      name: a.name,
      state: a.state,
      deployed_at: iso(a.deployedAt),
      source: a.source,
      ephemeral: a.expiresAt !== null,
      // A class shows as Name(method, …): one pool, its methods' calls.
      functions: functions.filter((f) => f.app === a.name).map((f) => (f.spec.cls ? `${f.name}(${f.spec.cls.methods.map((m) => m.name).join(", ")})` : f.name)),
      endpoints: functions
        .filter((f) => f.app === a.name)
        .flatMap((f) => [...(f.spec.web ? [f.name] : []), ...(f.spec.cls?.methods ?? []).filter((m) => m.web).map((m) => `${f.name}.${m.name}`)])
        .map((name) => ({ function: name, url: webUrl(d.webBase(), a.name, name) })),
      schedules: functions
        .filter((f) => f.app === a.name && f.spec.schedule)
        .map((f) => ({ function: f.name, schedule: describeSchedule(f.spec.schedule!), next_run_at: iso(d.schedules.nextRunAt(f.app, f.name)) })),
    }));
    return { status: 200, body: { apps } };
  });

  /** One app: its functions' settings and what each is doing now. */
  r.on("GET", "/v1/apps/:app", async ({ params }) => {
    const app = d.apps.listApps().find((a) => a.name === params.app);
    if (!app) throw notFound(`no deployed app named ${params.app}`);
    const functions = d.apps
      .listFunctions()
      .filter((f) => f.app === app.name)
      .map((f) => ({ ...functionView(f, d.webBase()), live: { ...d.dispatcher.functionLive(f.app, f.name), next_run_at: iso(d.schedules.nextRunAt(f.app, f.name)) } }));
    return { status: 200, body: { name: app.name, state: app.state, deployed_at: iso(app.deployedAt), source: app.source, ephemeral: app.expiresAt !== null, expires_at: iso(app.expiresAt), functions } };
  });

  r.on("POST", "/v1/apps/:app/stop", async ({ params }) => {
    const functions = d.lifecycle.stop(params.app!);
    return { status: 200, body: { app: params.app, stopped: true, functions } };
  });

  r.on("POST", "/v1/apps/:app/heartbeat", async ({ params }) => ({ status: 200, body: d.lifecycle.heartbeat(params.app!) }));

  r.on("GET", "/v1/apps/:app/functions/:fn", async ({ params }) => {
    d.dispatcher.requirePool(params.app!, params.fn!);
    const f = d.apps.listFunctions().find((x) => x.app === params.app && x.name === params.fn);
    if (!f) throw notFound(`app ${params.app} has no function named ${params.fn}`);
    return { status: 200, body: functionView(f, d.webBase()) };
  });

  /** Submits one call, under the request's idempotency key when it has one (a replay says so in a header). */
  async function submitCall(ctx: RequestContext, input: CallInput, key: string | null): Promise<Answer> {
    const { app, fn } = ctx.params;
    fromCaller(ctx.req, app!, d.calls, [input]);
    if (key === null) return { status: 202, body: { call_id: await d.dispatcher.submit(app!, fn!, input) } };
    const { callId, replayed } = await d.dispatcher.submitKeyed(app!, fn!, input, key);
    if (replayed) ctx.res.setHeader(IDEMPOTENT_REPLAYED_HEADER, "true");
    return { status: 202, body: { call_id: callId } };
  }

  r.on("POST", "/v1/apps/:app/functions/:fn/calls", async (ctx) => {
    d.dispatcher.requirePool(ctx.params.app!, ctx.params.fn!);
    const key = idempotencyKeyOf(ctx.req);
    const body = await readJson(ctx.req, d.maxBodyBytes);
    return submitCall(ctx, callInput(body), key);
  });

  registerBatchRoutes(r, d);
  registerPruneRoutes(r, d);
  registerSessionRoutes(r, d.access);
  registerNodeRoutes(r, d);
  registerLogRoutes(r, d);
  registerSecretRoutes(r, d);
  registerVolumeRoutes(r, d);
  if (d.sandboxes) registerSandboxRoutes(r, { sandboxes: d.sandboxes });
  registerVersionRoutes(r, d);
  registerDictRoutes(r, d);
  registerQueueRoutes(r, d);
  registerMetricsRoutes(r, d);

  r.on("GET", "/v1/calls", async ({ query }) => {
    const status = query.get("status") ?? undefined;
    if (status && !Object.hasOwn(CallStatus, status)) throw invalid(`status must be one of ${Object.keys(CallStatus).join(", ")}`);
    const limit = Number(query.get("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalid(`limit must be a whole number from 1 to 1000`);
    const before = query.get("before");
    const after = query.get("after");
    if (before !== null) checkedCallId(before);
    if (after !== null) checkedCallId(after);
    if (before !== null && after !== null) throw invalid(`page with before or after, not both`);
    const since = timeParam(query, "since");
    const until = timeParam(query, "until");
    const untilId = until === null ? null : callIdAt(until);
    const calls = d.calls.list({
      app: query.get("app") ?? undefined,
      function: query.get("function") ?? undefined,
      status: status as CallStatus | undefined,
      before: before !== null && (untilId === null || before < untilId) ? before : (untilId ?? undefined),
      after: after ?? undefined,
      since: since === null ? undefined : callIdAt(since),
      limit,
    });
    return { status: 200, body: { calls: calls.map(callView) } };
  });

  r.on("GET", "/v1/calls/:id", async (ctx) => {
    const id = checkedCallId(ctx.params.id!);
    const rec = await readCall(id, secondsParam(ctx.query, "wait", d.maxWaitSeconds), ctx);
    const input = inputView(d.calls.inputOf(id));
    return { status: 200, body: { ...callView(rec), ...(input ? { input } : {}), attempts: attemptViews(d.calls.attempts(id)) } };
  });

  /**
   * A generator call's items from `from` on (its index, from 0), waiting up to `wait` seconds for the
   * next one; `done` once the call ended and every item was read (then `error` when it failed).
   */
  r.on("GET", "/v1/calls/:id/items", async (ctx) => {
    const id = checkedCallId(ctx.params.id!);
    const from = Number(ctx.query.get("from") ?? "0");
    if (!Number.isInteger(from) || from < 0) throw invalid(`from must be a whole number >= 0 (the index of the first item wanted)`);
    const wait = secondsParam(ctx.query, "wait", d.maxWaitSeconds);
    const read = () => ({ rec: d.calls.get(id), items: d.calls.items.read(id, from) });
    let { rec, items } = read();
    if (!rec) throw notFound(`no call with ID ${id}`);
    if (!items.length && !TERMINAL.has(rec.status) && wait > 0) {
      await d.waiters.waitItem(id, wait * 1000, ctx.req);
      ({ rec, items } = read());
    }
    return { status: 200, body: itemsView(rec!, items, from, Date.now()) };
  });

  /** A call and the calls it spawned from inside its container, and theirs, with their status (at most 1,000). */
  r.on("GET", "/v1/calls/:id/graph", async ({ params }) => {
    const id = checkedCallId(params.id!);
    const root = d.calls.get(id);
    if (!root) throw notFound(`no call with ID ${id}`);
    return { status: 200, body: callGraph(root, d.calls) };
  });

  r.on("POST", "/v1/calls/:id/cancel", async ({ params }) => {
    const id = checkedCallId(params.id!);
    if (await d.dispatcher.cancel(id)) return { status: 200, body: callView(d.calls.get(id)!) };
    const rec = d.calls.get(id);
    if (!rec) throw notFound(`no call with ID ${id}`);
    throw new ApiError(409, "conflict", `call ${id} is already ${rec.status}`);
  });

  r.on("GET", "/v1/containers", async () => {
    const body: ContainerView[] = d.dispatcher.containers().map(({ pool, c }) => {
      const leases = [...c.leases.values()];
      const calls = leases.filter((l) => !l.waiting).map((l) => l.call.id);
      return {
        id: c.id,
        docker_id: c.dockerId,
        app: pool.app,
        function: pool.spec.name,
        state: c.state,
        active_calls: calls.length,
        max_inputs: pool.spec.maxInputs,
        started_at: iso(c.startedAtMs)!,
        gpus: c.gpus.map((g) => ({ index: g.index, uuid: g.uuid })),
        calls,
        prefetched: leases.filter((l) => l.waiting).map((l) => l.call.id),
        node: c.dockerId ? d.runtime.nodeOf(c.dockerId) : null,
        variant: pool.variant ? describeVariant(pool.variant.variant) : null,
      };
    });
    return { status: 200, body: { containers: body } };
  });

  r.on("GET", "/v1/gpus", async ({ query }) => {
    const refresh = query.get("refresh");
    if (refresh !== null && refresh !== "0" && refresh !== "1") throw invalid(`refresh must be 0 or 1`);
    if (refresh === "1") await d.gpus.refresh();
    const waiting: GpuWaitView[] = d.dispatcher.gpuWaiting().map((p) => ({
      app: p.app,
      function: p.spec.name,
      gpu: p.spec.gpu ?? [],
      queued: p.queue.length,
      since: iso(p.gpuWaitSinceMs)!,
    }));
    return { status: 200, body: { ...d.gpus.status(), gpus: d.gpus.view(), waiting } };
  });

  // ── the submit/poll pattern of Modal's job-queue guide (DESIGN 1.4) ──────────────────────────
  r.on("POST", "/submit/:app/:fn", async (ctx) => {
    d.dispatcher.requirePool(ctx.params.app!, ctx.params.fn!);
    const key = idempotencyKeyOf(ctx.req);
    const body = await readJson(ctx.req, d.maxBodyBytes);
    const data = body !== undefined ? body : ctx.query.get("data"); // a JSON body may be null itself
    if (body === undefined && data === null) throw invalid(`send the input as a JSON body or as ?data=VALUE`);
    return submitCall(ctx, { args: [data], kwargs: null }, key);
  });

  r.on("GET", "/result/:id", async (ctx) => {
    const id = checkedCallId(ctx.params.id!);
    const rec = await readCall(id, secondsParam(ctx.query, "timeout", d.maxWaitSeconds), ctx);
    switch (rec.status) {
      case CallStatus.queued:
      case CallStatus.running:
        return { status: 202, body: { call_id: id, status: rec.status, attempt: rec.attempt } };
      case CallStatus.succeeded:
        if (isExpired(rec, Date.now())) throw new ApiError(404, "output_expired", `the result of call ${id} expired at ${iso(rec.expiresAt)}`);
        if (pickledValue(rec.resultJson) !== null) throw new ApiError(406, "result_not_json", pickledResultMessage(id));
        return { status: 200, json: rec.resultJson ?? "null" };
      case CallStatus.failed:
        return { status: 500, body: { call_id: id, error: rec.error } };
      case CallStatus.cancelled:
        return {
          status: 409,
          body: { call_id: id, error: rec.error ?? { type: SystemErrorType.cancelled, message: "the call was cancelled", traceback: "" } },
        };
    }
  });

  return r;
}
