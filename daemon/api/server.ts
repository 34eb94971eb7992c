import { chmodSync, existsSync, unlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import type { Logger } from "../logger.js";
import { ApiError, toResponse } from "./errors.js";
import type { Router } from "./http-kit.js";
import { WEB_PREFIX } from "../../protocol/api.js";
import type { Access } from "./access.js";
import type { DashboardFiles } from "./dashboard.js";
import type { WebGateway } from "./web-gateway.js";

export interface ApiServerOptions {
  router: Router;
  log: Logger;
  socketPath: string;
  httpHost: string;
  httpPort: number | null;
  /** Who may use the API over TCP (the token, or the dashboard's session). */
  access: Access;
  /** Serves /web/… (web endpoints). */
  web?: WebGateway;
  /** Serves / and /assets/… (the dashboard). */
  dashboard?: DashboardFiles;
}

/** Requests that need no token: signing in to the dashboard, and asking whether one is needed. */
const OPEN_ROUTES = new Set(["GET /v1/session", "POST /v1/session", "DELETE /v1/session"]);

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Serves one HTTP API on the daemon's unix socket (mode 0600) and, when asked, on TCP. */
export class ApiServer {
  private readonly servers: http.Server[] = [];
  tcpPort: number | null = null;

  constructor(private readonly o: ApiServerOptions) {
    if (o.httpPort !== null && !LOOPBACK.has(o.httpHost) && !o.access.guarded) {
      throw new Error(`listening on ${o.httpHost} (beyond loopback) needs a token: set GANTRY_TOKEN or pass --token`);
    }
  }

  private handler(remote: boolean): http.RequestListener {
    return (req, res) => {
      void this.handle(req, res, remote);
    };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, remote: boolean): Promise<void> {
    await answer(req, res, this.o.log, async () => {
      // Web endpoints check the token themselves: a public one needs none.
      if (this.o.web && req.url?.startsWith(WEB_PREFIX)) return this.o.web.handle(req, res, remote);
      const pathname = pathOf(req.url);
      // The dashboard's files hold no data: the page asks for the token when the API answers 401.
      if (this.o.dashboard?.serves(req.method, pathname)) return this.o.dashboard.send(req, res, pathname);
      if (remote && !this.o.access.allows(req) && !OPEN_ROUTES.has(`${req.method} ${pathname}`)) {
        throw new ApiError(401, "unauthorized", "missing or wrong token: send Authorization: Bearer <token>");
      }
      await route(this.o.router, req, res, remote);
    });
  }

  async listen(): Promise<void> {
    await removeStaleSocket(this.o.socketPath);
    const unix = http.createServer({ keepAliveTimeout: 65_000 }, this.handler(false));
    await listenOn(unix, this.o.socketPath);
    chmodSync(this.o.socketPath, 0o600);
    this.servers.push(unix);
    if (this.o.httpPort !== null) {
      const tcp = http.createServer({ keepAliveTimeout: 65_000 }, this.handler(true));
      await listenOn(tcp, this.o.httpPort, this.o.httpHost);
      this.tcpPort = (tcp.address() as net.AddressInfo).port;
      this.servers.push(tcp);
    }
  }

  /** Hands WebSocket upgrades on every listener to `attach` (remote: the TCP listener). */
  onUpgrade(attach: (server: http.Server, remote: boolean) => void): void {
    this.servers.forEach((s, i) => attach(s, i > 0));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
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
    const { status, body, unexpected } = toResponse(err);
    if (unexpected) log.error("request failed", { method: req.method, url: req.url, err: (err as Error)?.stack ?? String(err) });
    if (res.headersSent) res.end();
    else {
      if (status === 413) res.setHeader("connection", "close");
      send(res, status, body);
    }
  }
}

function pathOf(url: string | undefined): string {
  const q = (url ?? "/").indexOf("?");
  return q < 0 ? (url ?? "/") : url!.slice(0, q);
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
