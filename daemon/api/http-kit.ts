/** A small router and request helpers for node:http: path params, JSON bodies with a size limit. */
import type { Duplex } from "node:stream";
import http from "node:http";
import { invalidUtf8Offset, jsonDepthProblem, MAX_JSON_DEPTH } from "../../protocol/json-limits.js";
import { ApiError, toResponse } from "./errors.js";

export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** True when the request came over TCP (not the daemon's unix socket). */
  remote: boolean;
}

/** A handler's answer: a value to send as JSON, or JSON text to send as is. */
export type Answer = { status: number; body: unknown } | { status: number; json: string };

/** A handler answers, or writes the response itself and returns undefined. */
export type Handler = (ctx: RequestContext) => Promise<Answer | undefined>;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

/** The path's parameters if `parts` (a route's pattern) matches `segs`; null if not. Literals are compared first. */
function matchParts(parts: readonly string[], segs: readonly string[]): Record<string, string> | null {
  for (let i = 0; i < parts.length; i++) if (parts[i]![0] !== ":" && parts[i] !== segs[i]) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i]![0] !== ":") continue;
    try {
      params[parts[i]!.slice(1)] = decodeURIComponent(segs[i]!);
    } catch {
      return null;
    }
  }
  return params;
}

export class Router {
  private readonly routes: Route[] = [];
  /** The routes by their number of segments, in the order registered (a request only tries those of its length). */
  private readonly byLength = new Map<number, Route[]>();
  /** What a request no route takes gets (default: 404 or 405). */
  private refusal: ((method: string, pathname: string) => Error) | null = null;

  on(method: string, pattern: string, handler: Handler): this {
    this.add({ method, parts: pattern.split("/").filter(Boolean), handler });
    return this;
  }

  private add(route: Route): void {
    this.routes.push(route);
    const same = this.byLength.get(route.parts.length) ?? [];
    same.push(route);
    this.byLength.set(route.parts.length, same);
  }

  /** A router with only these routes (method and pattern as registered); anything else gets `refusal`. */
  only(allowed: ReadonlyArray<readonly [string, string]>, refusal: (method: string, pathname: string) => Error): Router {
    const keep = new Set(allowed.map(([m, p]) => `${m} ${p.split("/").filter(Boolean).join("/")}`));
    const r = new Router();
    for (const x of this.routes) if (keep.has(`${x.method} ${x.parts.join("/")}`)) r.add(x);
    if (r.routes.length !== keep.size) throw new Error(`Router.only: some of the allowed routes do not exist`);
    r.refusal = refusal;
    return r;
  }

  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const segs = pathname.split("/").filter(Boolean);
    let pathMatched = false;
    for (const r of this.byLength.get(segs.length) ?? []) {
      const params = matchParts(r.parts, segs);
      if (!params) continue;
      pathMatched = true;
      if (r.method === method) return { handler: r.handler, params };
    }
    if (this.refusal) throw this.refusal(method, pathname);
    if (pathMatched) throw new ApiError(405, "method_not_allowed", `${method} is not allowed on ${pathname}`);
    throw new ApiError(404, "not_found", `no route ${method} ${pathname}`);
  }
}

/**
 * The request's body, up to `limit` bytes; a longer one is refused (413) and the request destroyed
 * (the rest is not read). Read with 'data' events: an async iterator costs more than a small body.
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) return Promise.reject(new ApiError(413, "payload_too_large", `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0)); // read already
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: Error | null) => {
      req.off("data", onData).off("end", onEnd).off("error", done).off("close", onClose);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      done(new ApiError(413, "payload_too_large", `request body exceeds the limit of ${limit} bytes`));
      req.destroy();
    };
    const onEnd = () => done(null);
    const onClose = () => done(new Error("the request was closed before its body was read"));
    req.on("data", onData).on("end", onEnd).on("error", done).on("close", onClose);
  });
}

/** The body as JSON (undefined when empty); a body that is not declared JSON is refused (415) unread. */
export async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  checkJsonBody(req);
  const buf = await readBody(req, limit);
  if (buf.length === 0) return undefined;
  const text = jsonBodyText(buf);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, "invalid_argument", `request body is not valid JSON: ${(err as Error).message}`);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON body's text, refused (400) before JSON.parse sees it when it is not UTF-8 (no byte is
 * silently replaced by U+FFFD) or nests deeper than MAX_JSON_DEPTH (what walks the value later
 * would run out of stack). Neither message quotes the body.
 */
export function jsonBodyText(buf: Buffer): string {
  let text: string;
  try {
    text = strictUtf8.decode(buf);
  } catch {
    const at = invalidUtf8Offset(buf);
    throw new ApiError(400, "invalid_argument", `request body is not valid UTF-8${at >= 0 ? ` (byte ${at} is 0x${buf[at]!.toString(16).padStart(2, "0")})` : ""}: JSON bodies are UTF-8`);
  }
  const deep = jsonDepthProblem(buf);
  if (deep) throw new ApiError(400, "invalid_argument", `request body is ${deep}`, { limit: MAX_JSON_DEPTH });
  return text;
}

/** Seconds from a query parameter, clamped to [0, max]; a bad value is a 400 naming the parameter. */
export function secondsParam(query: URLSearchParams, name: string, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === "") return 0;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new ApiError(400, "invalid_argument", `${name} must be a number of seconds >= 0, got ${JSON.stringify(raw)}`);
  return Math.min(n, max);
}

/** Answers a refused WebSocket upgrade with its JSON error, then closes the connection. */
export function refuseUpgrade(socket: Duplex, err: unknown): void {
  const { status, body, headers } = toResponse(err);
  const text = JSON.stringify(body);
  const reason = http.STATUS_CODES[status] ?? "Error";
  const extra = Object.entries(headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
}

/** JSON routes read only JSON: a text/plain or form body is how a page posts without asking. Throws 415. */
export function checkJsonBody(req: http.IncomingMessage): void {
  const length = req.headers["content-length"];
  const hasBody = req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
  if (!hasBody) return;
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || /^application\/[a-z0-9.+-]*\+json$/.test(type)) return;
  throw new ApiError(
    415,
    "unsupported_media_type",
    `${req.method} ${pathOf(req.url)} takes a JSON body: send Content-Type: application/json${type ? ` (got ${JSON.stringify(type)})` : " (none was sent)"}`,
    { rule: "content-type" },
  );
}

/** The path of a request's URL, without its query. */
export function pathOf(url: string | undefined): string {
  const q = (url ?? "/").indexOf("?");
  return q < 0 ? (url ?? "/") : url!.slice(0, q);
}
