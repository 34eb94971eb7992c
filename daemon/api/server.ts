import { chmodSync, existsSync, unlinkSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../logger.js";
import { ApiError, toResponse } from "./errors.js";
import { pathOf, refuseUpgrade, type Router } from "./http-kit.js";
import { WEB_PREFIX } from "../../protocol/api.js";
import { LOOPBACK_HOSTS } from "../config.js";
import type { Access } from "./access.js";
import type { Listener, RequestGuard } from "./request-guard.js";
import type { DashboardFiles } from "./dashboard.js";
import type { WebGateway } from "./web-gateway.js";

export interface ApiServerOptions {
  router: Router;
  log: Logger;
  socketPath: string;
  httpHost: string;
  httpPort: number | null;
  /** The port web endpoints are served on (their own origin); null: next to httpPort; unused without httpPort. */
  webPort: number | null;
  /** PEM certificate and key: the TCP listeners speak HTTPS and WSS. */
  tls: { cert: Buffer; key: Buffer } | null;
  /** Who may use the API over TCP (the token, or the dashboard's session). */
  access: Access;
  /** Host, Origin and Content-Type rules on TCP. */
  guard: RequestGuard;
  /** Serves /web/… (web endpoints). */
  web?: WebGateway;
  /** Serves / and /assets/… (the dashboard). */
  dashboard?: DashboardFiles;
}

/** A WebSocket upgrade handler: takes the request and returns true, or leaves it and returns false. */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer, remote: boolean) => boolean;

/** Requests that need no token: signing in to the dashboard, and asking whether one is needed. */
const OPEN_ROUTES = new Set(["GET /v1/session", "POST /v1/session", "DELETE /v1/session"]);

const LOOPBACK = new Set(LOOPBACK_HOSTS);

/** Which listener a request came in on: the unix socket, the API's TCP port, or the web endpoints' port. */
type Where = { kind: "socket" } | ({ kind: "api" | "web" } & Listener);

/**
 * Serves one HTTP API on the daemon's unix socket (mode 0600) and, when asked, on TCP; web
 * endpoints get a TCP listener of their own, so that they are another origin than the dashboard.
 */
export class ApiServer {
  private readonly servers: Array<{ server: http.Server; where: Where }> = [];
  private readonly upgrades: UpgradeHandler[] = [];
  tcpPort: number | null = null;
  webPort: number | null = null;

  constructor(private readonly o: ApiServerOptions) {
    if (o.httpPort !== null && !LOOPBACK.has(o.httpHost) && !o.access.guarded) {
      throw new Error(
        `listening on ${o.httpHost} (beyond loopback) needs a token, or anyone who reaches that address can run code here: ` +
          `put one (16 characters or more) in a file readable only by you and pass --token-file FILE, or set GANTRY_TOKEN`,
      );
    }
  }

  get scheme(): "http" | "https" {
    return this.o.tls ? "https" : "http";
  }

  /** The API's base URL on TCP (null without one). */
  get httpUrl(): string | null {
    return this.tcpPort === null ? null : `${this.scheme}://${urlHost(this.o.httpHost)}:${this.tcpPort}`;
  }

  /** Web endpoints' base URL (null without TCP). */
  get webUrl(): string | null {
    return this.webPort === null ? null : `${this.scheme}://${urlHost(this.o.httpHost)}:${this.webPort}`;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, where: Where): Promise<void> {
    await answer(req, res, this.o.log, async () => {
      const pathname = pathOf(req.url);
      if (where.kind !== "socket") this.o.guard.checkHost(req, where);
      if (where.kind === "web") return this.serveWeb(req, res, pathname);
      const remote = where.kind === "api";
      if (this.o.web && pathname.startsWith(WEB_PREFIX)) {
        // Web endpoints check the token themselves (a public one needs none); on TCP they live on their own port.
        if (!remote) return this.o.web.handle(req, res, false);
        return this.redirectToWeb(req, res);
      }
      if (remote) this.o.guard.checkOrigin(req, where);
      // The dashboard's files hold no data: the page asks for the token when the API answers 401.
      if (this.o.dashboard?.serves(req.method, pathname)) return this.o.dashboard.send(req, res, pathname);
      // A missing or wrong token is a 401, and an address that sent many wrong ones a 429 (Access).
      if (remote && !OPEN_ROUTES.has(`${req.method} ${pathname}`)) this.o.access.authorize(req);
      await route(this.o.router, req, res, remote);
    });
  }

  /** The web endpoints' listener serves /web/… and nothing else: no API, no dashboard, no cookie worth taking. */
  private serveWeb(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): void {
    if (!this.o.web || !pathname.startsWith(WEB_PREFIX)) {
      throw new ApiError(404, "not_found", `this port serves web endpoints only, at ${WEB_PREFIX}APP/FUNCTION/; the API and the dashboard are at ${this.httpUrl}`);
    }
    this.o.web.handle(req, res, true);
  }

  /** /web/… on the API's port: a permanent redirect (method and body kept) to the web endpoints' own port. */
  private redirectToWeb(req: http.IncomingMessage, res: http.ServerResponse): void {
    const location = `${this.webUrl}${req.url}`;
    const body = JSON.stringify({ error: { code: "moved", message: `web endpoints are served on their own origin: ${location}`, location } });
    // The request's body (if any) is not read: the connection closes after the answer.
    res.writeHead(308, { location, "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
    res.end(body);
  }

  /** Runs the TCP rules on a WebSocket upgrade, then offers it to each handler in turn. */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, where: Where): void {
    try {
      if (where.kind !== "socket") {
        this.o.guard.checkHost(req, where);
        if (where.kind === "web") throw new ApiError(404, "not_found", "web endpoints take no WebSocket upgrades");
        this.o.guard.checkOrigin(req, where, true);
      }
    } catch (err) {
      return refuseUpgrade(socket, err);
    }
    for (const h of this.upgrades) if (h(req, socket, head, where.kind === "api")) return;
    refuseUpgrade(socket, new ApiError(404, "not_found", `no WebSocket at ${pathOf(req.url)}`));
  }

  async listen(): Promise<void> {
    await removeStaleSocket(this.o.socketPath);
    await this.serve({ kind: "socket" }, this.o.socketPath);
    chmodSync(this.o.socketPath, 0o600);
    if (this.o.httpPort === null) return;
    const scheme = this.scheme;
    this.tcpPort = await this.serve({ kind: "api", scheme, port: this.o.httpPort }, this.o.httpPort);
    const webPort = this.o.webPort ?? (this.o.httpPort === 0 ? 0 : this.tcpPort + 1);
    try {
      this.webPort = await this.serve({ kind: "web", scheme, port: webPort }, webPort);
    } catch (err) {
      throw new Error(`web endpoints' port: ${(err as Error).message} (choose another with --web-port)`);
    }
  }

  /** Starts one listener; resolves with its port (TCP). */
  private async serve(where: Where, at: number | string): Promise<number> {
    const listener: http.RequestListener = (req, res) => void this.handle(req, res, this.servers[index]!.where);
    const options = { keepAliveTimeout: 65_000 };
    const server = where.kind !== "socket" && this.o.tls ? https.createServer({ ...options, ...this.o.tls }, listener) : http.createServer(options, listener);
    const index = this.servers.push({ server, where }) - 1;
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head, this.servers[index]!.where));
    await listenOn(server, at, typeof at === "number" ? this.o.httpHost : undefined);
    if (typeof at === "string") return 0;
    const port = (server.address() as net.AddressInfo).port;
    // Port 0 picked one: the rules compare Host with the real port.
    if (where.kind !== "socket") this.servers[index]!.where = { ...where, port };
    return port;
  }

  /** Hands WebSocket upgrades (after the TCP rules) to `handler`; remote: they came over TCP. */
  onUpgrade(handler: UpgradeHandler): void {
    this.upgrades.push(handler);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.map(
        ({ server: s }) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    try {
      unlinkSync(this.o.socketPath);
    } catch {
      /* gone */
    }
  }
}

/** An address as it goes in a URL (IPv6 in brackets; 0.0.0.0 and :: as loopback, which reaches them). */
function urlHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/** Routes a request to its handler and sends the handler's answer. */
export async function route(router: Router, req: http.IncomingMessage, res: http.ServerResponse, remote: boolean): Promise<void> {
  const url = new URL(req.url ?? "/", "http://gantry");
  const { handler, params } = router.match(req.method ?? "GET", url.pathname);
  const out = await handler({ req, res, params, query: url.searchParams, remote });
  if (out) sendText(res, out.status, "json" in out ? out.json : JSON.stringify(out.body));
}

/** Runs `serve`, answering any error it throws in one place: its JSON answer, or a logged 500. */
export async function answer(req: http.IncomingMessage, res: http.ServerResponse, log: Logger, serve: () => Promise<void> | void): Promise<void> {
  try {
    await serve();
  } catch (err) {
    const { status, body, unexpected, headers } = toResponse(err);
    if (unexpected) log.error("request failed", { method: req.method, url: req.url, err: (err as Error)?.stack ?? String(err) });
    if (res.headersSent) res.end();
    else {
      // A body left unread (refused for its size or type) would be taken for the next request: close after the answer.
      if (status === 413 || status === 415 || !req.complete) res.setHeader("connection", "close");
      for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
      send(res, status, body);
    }
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body));
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function listenOn(server: http.Server, port: number | string, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new Error(`${host ? `${host}:` : ""}${port} is already in use`) : err);
    });
    if (typeof port === "string") server.listen(port, () => resolve());
    else server.listen(port, host, () => resolve());
  });
}

/** A socket file whose daemon is gone is removed; one that answers means another daemon runs. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`another gantry daemon already answers on ${path}`);
  unlinkSync(path);
}
