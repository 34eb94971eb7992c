/**
 * /v1/sandboxes (protocol/sandboxes.ts lists the routes): sandboxes, their processes' stdio and
 * the files inside them. Output is read from the daemon's files at the client's pace (never held
 * in memory); stdin and file bodies are bounded.
 */
import type http from "node:http";
import { pipeline } from "node:stream/promises";
import { formatZodError } from "../../protocol/function-spec.js";
import { EXEC_ID_PATTERN, MAX_WAIT_S, SANDBOX_ID_PATTERN, SANDBOX_LIMITS, sandboxCreateSchema, sandboxExecSchema, sandboxTagsSchema, type SandboxCreateParsed } from "../../protocol/sandboxes.js";
import type { Sandboxes } from "../service/sandboxes.js";
import type { StreamFile } from "../service/sandbox-output.js";
import { callerContainer, type CallerContainer } from "./caller.js";
import { ApiError, invalid } from "./errors.js";
import { readBody, readJson, secondsParam, type Router } from "./http-kit.js";

const JSON_BODY_BYTES = 64 * 1024 * 1024; // a create carries its image's local files

const flag = (query: URLSearchParams, name: string): boolean => {
  const v = query.get(name);
  if (v !== null && v !== "0" && v !== "1") throw invalid(`${name} must be 0 or 1, got ${JSON.stringify(v.slice(0, 20))}`);
  return v === "1";
};

export const sandboxId = (id: string): string => {
  if (!SANDBOX_ID_PATTERN.test(id)) throw invalid(`${JSON.stringify(id.slice(0, 40))} is not a sandbox ID (sb- and 18 letters or digits)`);
  return id;
};

export const procId = (proc: string): string => {
  if (proc !== "main" && !EXEC_ID_PATTERN.test(proc)) throw invalid(`${JSON.stringify(proc.slice(0, 40))} is not a process of a sandbox ("main" or ex- and 18 letters or digits)`);
  return proc;
};

function tagFilter(query: URLSearchParams): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const t of query.getAll("tag")) {
    const at = t.indexOf("=");
    if (at <= 0) throw invalid(`tag filters look like tag=NAME=VALUE, got ${JSON.stringify(t.slice(0, 80))}`);
    tags[t.slice(0, at)] = t.slice(at + 1);
  }
  return tags;
}

function binaryBody(req: http.IncomingMessage): void {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/octet-stream") {
    throw new ApiError(415, "unsupported_media_type", `this route takes bytes: send Content-Type: application/octet-stream${type ? ` (got ${JSON.stringify(type)})` : ""}`, { rule: "content-type" });
  }
}

/**
 * The routes a function's container reaches (routes.ts CONTAINER_ROUTES): its own app's sandboxes
 * only (another app's answer 404), made without secrets or another function's image, mounting
 * only volumes its function mounts (no wider than it does). The terminal WebSocket is not among them.
 */
export const SANDBOX_CONTAINER_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ["POST", "/v1/sandboxes"],
  ["GET", "/v1/sandboxes"],
  ["GET", "/v1/sandboxes/:id"],
  ["POST", "/v1/sandboxes/:id/terminate"],
  ["PUT", "/v1/sandboxes/:id/tags"],
  ["POST", "/v1/sandboxes/:id/exec"],
  ["GET", "/v1/sandboxes/:id/procs/:proc"],
  ["GET", "/v1/sandboxes/:id/procs/:proc/stdout"],
  ["GET", "/v1/sandboxes/:id/procs/:proc/stderr"],
  ["POST", "/v1/sandboxes/:id/procs/:proc/stdin"],
  ["GET", "/v1/sandboxes/:id/files"],
  ["PUT", "/v1/sandboxes/:id/files"],
  ["DELETE", "/v1/sandboxes/:id/files"],
  ["GET", "/v1/sandboxes/:id/entries"],
  ["POST", "/v1/sandboxes/:id/mkdir"],
];

const forbidden = (message: string) => new ApiError(403, "forbidden", message);

/** A create from a function's container: its own app, and nothing its function could not reach itself. */
function scopeCreate(def: SandboxCreateParsed, caller: CallerContainer): SandboxCreateParsed {
  if (def.app !== undefined && def.app !== caller.app) throw forbidden(`a function of app ${caller.app} makes sandboxes of its own app only, not of ${def.app}`);
  if (def.secrets?.length) throw forbidden("a sandbox made from a function's container cannot be given secrets: pass what it needs in env");
  if (def.from_function) throw forbidden("a sandbox made from a function's container cannot take a function's image (from_function)");
  for (const m of def.volumes ?? []) {
    const own = caller.volumes.find((v) => v.name === m.name);
    if (!own) throw forbidden(`volume ${m.name}: a sandbox made from a function's container mounts only volumes its function mounts (${caller.volumes.map((v) => v.name).join(", ") || "none"})`);
    if (own.readOnly && !m.readOnly) throw forbidden(`volume ${m.name}: the function mounts it read-only, so its sandboxes may too, not read-write`);
  }
  return { ...def, app: caller.app };
}

export function registerSandboxRoutes(r: Router, d: { sandboxes: Sandboxes }): void {
  const sb = d.sandboxes;
  /** A sandbox's ID, checked; a container reaches its own app's sandboxes only. */
  const own = (req: http.IncomingMessage, raw: string): string => {
    const id = sandboxId(raw);
    const caller = callerContainer(req);
    if (caller) sb.ofApp(id, caller.app);
    return id;
  };

  r.on("POST", "/v1/sandboxes", async ({ req }) => {
    const parsed = sandboxCreateSchema.safeParse(await readJson(req, JSON_BODY_BYTES));
    if (!parsed.success) throw invalid(`sandbox: ${formatZodError(parsed.error)}`);
    const caller = callerContainer(req);
    const def = caller ? scopeCreate(parsed.data, caller) : parsed.data;
    if (def.app === undefined) throw invalid("sandbox: app is required (an app name, e.g. from App.lookup(NAME, create_if_missing=True))");
    return { status: 201, body: sb.create({ ...def, app: def.app }) };
  });

  r.on("GET", "/v1/sandboxes", async ({ req, query }) => {
    const state = query.get("state");
    if (state !== null && state !== "running" && state !== "finished") throw invalid(`state must be running or finished, got ${JSON.stringify(state.slice(0, 20))}`);
    const limit = Number(query.get("limit") ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalid(`limit must be a whole number from 1 to 1000`);
    const app = callerContainer(req)?.app ?? query.get("app") ?? undefined;
    return { status: 200, body: { sandboxes: sb.list({ app, tags: tagFilter(query), running: state === null ? undefined : state === "running", limit }) } };
  });

  r.on("GET", "/v1/sandboxes/:id", async ({ req, params, query }) => {
    const until = query.get("until") ?? "ended";
    if (until !== "ended" && until !== "running") throw invalid(`until must be ended or running, got ${JSON.stringify(until.slice(0, 20))}`);
    return { status: 200, body: await sb.wait(own(req, params.id!), secondsParam(query, "wait", MAX_WAIT_S), until) };
  });

  r.on("POST", "/v1/sandboxes/:id/terminate", async ({ req, params }) => ({ status: 200, body: sb.terminate(own(req, params.id!)) }));

  r.on("PUT", "/v1/sandboxes/:id/tags", async ({ req, params }) => {
    const parsed = sandboxTagsSchema.safeParse(await readJson(req, 1024 * 1024));
    if (!parsed.success) throw invalid(`tags: ${formatZodError(parsed.error)}`);
    return { status: 200, body: sb.setTags(own(req, params.id!), parsed.data.tags) };
  });

  r.on("POST", "/v1/sandboxes/:id/exec", async ({ req, params }) => {
    const parsed = sandboxExecSchema.safeParse(await readJson(req, 1024 * 1024));
    if (!parsed.success) throw invalid(`exec: ${formatZodError(parsed.error)}`);
    if (callerContainer(req) && parsed.data.secrets?.length) throw forbidden("an exec from a function's container cannot be given secrets: pass what it needs in env");
    return { status: 201, body: (await sb.exec(own(req, params.id!), parsed.data)).view() };
  });

  r.on("GET", "/v1/sandboxes/:id/procs/:proc", async ({ req, params, query }) => ({
    status: 200,
    body: (await sb.processWait(own(req, params.id!), procId(params.proc!), secondsParam(query, "wait", MAX_WAIT_S))).view(),
  }));

  for (const stream of ["stdout", "stderr"] as const) {
    r.on("GET", `/v1/sandboxes/:id/procs/:proc/${stream}`, async ({ req, res, params, query }) => {
      const p = sb.process(own(req, params.id!), procId(params.proc!));
      const offset = Number(query.get("offset") ?? 0);
      if (!Number.isSafeInteger(offset) || offset < 0) throw invalid(`offset must be a whole number of bytes >= 0`);
      await sendStream(req, res, p[stream], offset, flag(query, "follow"));
      return undefined;
    });
  }

  r.on("POST", "/v1/sandboxes/:id/procs/:proc/stdin", async ({ req, params, query }) => {
    binaryBody(req);
    const id = own(req, params.id!);
    const proc = procId(params.proc!);
    const bytes = await readBody(req, SANDBOX_LIMITS.stdinBytes);
    return { status: 200, body: { written: await sb.writeStdin(id, proc, bytes, flag(query, "eof")) } };
  });

  registerFileRoutes(r, sb, own);
}

/** Sends a stream's bytes from `offset`, following it until it closes when asked. */
async function sendStream(req: http.IncomingMessage, res: http.ServerResponse, file: StreamFile, offset: number, follow: boolean): Promise<void> {
  res.writeHead(200, { "content-type": "application/octet-stream", "x-gantry-closed": file.closed ? "1" : "0", "cache-control": "no-store" });
  const gone = new AbortController();
  res.once("close", () => gone.abort());
  let at = offset;
  for (;;) {
    const end = file.bytes;
    if (end > at) {
      await pipeline(file.read(at, end), res, { end: false }).catch(() => gone.abort());
      at = end;
    }
    if (!follow || gone.signal.aborted || (file.closed && file.bytes <= at)) break;
    await file.waitPast(at, gone.signal);
  }
  if (!gone.signal.aborted) res.end();
  void req;
}

function registerFileRoutes(r: Router, sb: Sandboxes, own: (req: http.IncomingMessage, raw: string) => string): void {
  const pathParam = (query: URLSearchParams): string => query.get("path") ?? "";

  r.on("GET", "/v1/sandboxes/:id/files", async ({ req, res, params, query }) => {
    const { stream } = await sb.files(own(req, params.id!)).read(pathParam(query));
    res.writeHead(200, { "content-type": "application/octet-stream" });
    await pipeline(stream, res).catch(() => res.destroy());
    void req;
    return undefined;
  });

  r.on("PUT", "/v1/sandboxes/:id/files", async ({ req, params, query }) => {
    binaryBody(req);
    const files = sb.files(own(req, params.id!));
    return { status: 201, body: await files.write(pathParam(query), req as AsyncIterable<Buffer>, flag(query, "append")) };
  });

  r.on("DELETE", "/v1/sandboxes/:id/files", async ({ req, params, query }) => ({
    status: 200,
    body: await sb.files(own(req, params.id!)).remove(pathParam(query), flag(query, "recursive")),
  }));

  r.on("GET", "/v1/sandboxes/:id/entries", async ({ req, params, query }) => ({
    status: 200,
    body: { entries: await sb.files(own(req, params.id!)).entries(pathParam(query)) },
  }));

  r.on("POST", "/v1/sandboxes/:id/mkdir", async ({ req, params }) => {
    const body = (await readJson(req, 64 * 1024)) as { path?: unknown; parents?: unknown } | undefined;
    if (!body || typeof body.path !== "string") throw invalid(`the body must be {"path": "/abs/path", "parents": false}`);
    if (body.parents !== undefined && typeof body.parents !== "boolean") throw invalid("parents must be true or false");
    return { status: 201, body: await sb.files(own(req, params.id!)).mkdir(body.path, body.parents === true) };
  });
}
