/**
 * The HTTP side of web endpoints: `ANY /web/{app}/{function}/{path…}` on the daemon's listeners
 * becomes a `WebExchange` for the service, whose answer streams back as the container sends it.
 * On TCP with a token, a request needs the token (`Authorization: Bearer` or `X-Gantry-Token`)
 * unless the function is public; the daemon's token never reaches the function.
 */
import type http from "node:http";
import type { RemoteError } from "../../protocol/remote-error.js";
export { WEB_PREFIX } from "../../protocol/api.js";
import type { WebExchange } from "../service/pool.js";
import type { WebRequests } from "../service/web-requests.js";
import { ApiError } from "./errors.js";
import { SESSION_COOKIE, type Access } from "./access.js";
import { tokenMatches } from "./token.js";
import { MAX_UNSENT_BYTES } from "./bounded-stream.js";

/** What a web endpoint's answer may hold unsent for its client: more than a log stream's, for downloads. */
const MAX_UNSENT_WEB_BYTES = 4 * MAX_UNSENT_BYTES;

const TOKEN_HEADER = "x-gantry-token";
/** Headers of one hop (the client's connection to the daemon), not of the request. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

export class WebGateway {
  constructor(
    private readonly d: { web: WebRequests; token: string | null; maxBodyBytes: number; access: Pick<Access, "authorizeToken"> },
  ) {}

  /** Handles a request under /web/; throws an ApiError (or a service error) before answering. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, remote: boolean): void {
    const raw = req.url ?? "/";
    const q = raw.indexOf("?");
    const pathname = q < 0 ? raw : raw.slice(0, q);
    const m = /^\/web\/([^/]+)\/([^/]+)(\/.*)?$/.exec(pathname);
    if (!m) throw new ApiError(404, "not_found", `web endpoints are at /web/APP/FUNCTION/…, not ${pathname}`);
    let app: string;
    let fn: string;
    try {
      app = decodeURIComponent(m[1]!);
      fn = decodeURIComponent(m[2]!);
    } catch {
      throw new ApiError(400, "invalid_argument", `${pathname} is not a valid path`);
    }
    const query = q < 0 ? "" : raw.slice(q + 1);
    const endpoint = this.d.web.endpoint(app, fn, query);
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > this.d.maxBodyBytes) {
      throw new ApiError(413, "payload_too_large", `request body of ${declared} bytes exceeds the limit of ${this.d.maxBodyBytes} bytes`);
    }
    const headers = this.forwardedHeaders(req, remote && this.d.token !== null && !endpoint.public);
    this.d.web.handle(endpoint, exchange(req, res, { path: m[3] ?? "/", rootPath: `/web/${m[1]}/${m[2]}`, query, headers }));
  }

  /** The request's headers for the function: hop-by-hop ones and the daemon's token left out. */
  private forwardedHeaders(req: http.IncomingMessage, needsToken: boolean): Array<[string, string]> {
    const token = this.d.token;
    const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    const viaAuthorization = token !== null && tokenMatches(bearer, token);
    // A missing or wrong token is a 401, and an address that sent many wrong ones a 429 (Access).
    if (needsToken) this.d.access.authorizeToken(req);
    const out: Array<[string, string]> = [];
    const h = req.rawHeaders;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!.toLowerCase();
      if (HOP_BY_HOP.has(name) || name === TOKEN_HEADER || (name === "authorization" && viaAuthorization)) continue;
      if (name === "cookie") {
        // The dashboard's session is the daemon's, not the function's: its other cookies pass.
        const kept = withoutCookie(h[i + 1]!, SESSION_COOKIE);
        if (kept) out.push([name, kept]);
        continue;
      }
      out.push([name, h[i + 1]!]);
    }
    return out;
  }
}

/** A Cookie header without the named cookie ("" when nothing is left). */
export function withoutCookie(header: string, name: string): string {
  return header
    .split(";")
    .map((p) => p.trim())
    .filter((p) => p !== "" && p.slice(0, p.indexOf("=") < 0 ? p.length : p.indexOf("=")).trim() !== name)
    .join("; ");
}

function exchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  at: { path: string; rootPath: string; query: string; headers: Array<[string, string]> },
): WebExchange {
  let closed = false;
  const listeners: Array<() => void> = [];
  res.on("close", () => {
    if (res.writableFinished || closed) return;
    closed = true;
    listeners.forEach((l) => l());
  });
  const addr = req.socket.remoteAddress;
  return {
    method: req.method ?? "GET",
    ...at,
    client: addr ? [addr, req.socket.remotePort ?? 0] : null,
    // The service may stop reading early (a body over the limit): the socket stays for the answer.
    body: req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>,
    respond(status, headers) {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of headers) {
        if (HOP_BY_HOP.has(k.toLowerCase())) continue;
        const prev = out[k];
        out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      res.writeHead(status, out);
      res.flushHeaders();
    },
    write(chunk) {
      // The agent sends without flow control: a client that does not read is cut off rather than
      // held in memory (its close cancels the request in the container).
      if (res.writableLength > MAX_UNSENT_WEB_BYTES) return void res.destroy();
      res.write(chunk);
    },
    end() {
      res.end();
    },
    fail(status, code, message, error?: RemoteError) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ error: { code, message, ...(error ? { type: error.type, traceback: error.traceback } : {}) } });
      // A body left unread would be taken for the next request on this connection: close it after the answer.
      const close = req.complete ? {} : { connection: "close" };
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...close });
      res.end(body);
    },
    onClose(listener) {
      listeners.push(listener);
    },
  };
}
