/**
 * Agent endpoints: each container's agent holds one WebSocket to the daemon, opened with that
 * container's token. On one machine it is a unix socket in a folder mounted into that container
 * alone (`SocketAgentEndpoint`); across a Swarm cluster agents dial one TCP listener the daemon
 * advertises and name their container (`TcpAgentHub`). Plain HTTP requests with the same
 * credentials are the container's own calls to the daemon (calls only).
 */
import { markCaller, type CallerContainer } from "./caller.js";
import { EventEmitter } from "node:events";
import { chmodSync, chownSync, mkdirSync, rmSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import { join } from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import {
  AGENT_CONTAINER_HEADER,
  AGENT_SOCKET_DIR_IN_CONTAINER,
  AGENT_SOCKET_NAME,
  AGENT_WS_PATH,
  AgentEnv,
  agentToDaemonSchema,
} from "../../protocol/agent-messages.js";
import { formatZodError } from "../../protocol/function-spec.js";
import { jsonDepthProblem, MAX_AGENT_MESSAGE_DEPTH } from "../../protocol/json-limits.js";
import type { Logger } from "../logger.js";
import type { AgentConnection, AgentEndpoint, AgentEndpointEvents, AgentEndpointFactory } from "../service/ports.js";
import { addressKey, AttemptLimiter } from "../core/attempt-limit.js";
import { tooManyAttempts } from "./access.js";
import { ApiError, toResponse } from "./errors.js";
import { refuseUpgrade } from "./http-kit.js";
import { RequestGuard } from "./request-guard.js";
import { hasBearer, tokenMatches } from "./token.js";

/** The largest message an agent may send (an output); larger closes the connection. */
export const MAX_AGENT_MESSAGE_BYTES = 64 * 1024 * 1024;
/**
 * Over TCP, the daemon pings each agent this often; one that answers nothing (no pong, no message)
 * for three pings in a row is taken for gone: its node died, or the network between. (A unix
 * socket needs none: a container that dies closes it.)
 */
export const AGENT_PING_MS = 10_000;
const MISSED_PINGS = 3;
const UNIX_PATH_MAX = 107;

/** What both kinds share: one WebSocket at a time, each message checked against the protocol, pings. */
abstract class EndpointBase extends EventEmitter<AgentEndpointEvents> {
  protected socket: WebSocket | null = null;

  constructor(
    /** How logs name it (its folder, or its container id). */
    protected readonly label: string,
    protected readonly token: string,
    protected readonly log: Logger,
    /** How often to ping the agent; null: never. */
    private readonly pingMs: number | null = null,
  ) {
    super();
  }

  /** Whether `given` is this container's token. */
  opensWith(given: string): boolean {
    return tokenMatches(given, this.token);
  }

  get busy(): boolean {
    return this.socket !== null;
  }

  /** Takes an agent's WebSocket, already authenticated. */
  accept(ws: WebSocket): void {
    this.socket = ws;
    const conn: AgentConnection = {
      send: (msg) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
      },
      close: () => ws.close(1000, "closed by daemon"),
    };
    let missed = 0;
    const heartbeat =
      this.pingMs === null
        ? null
        : setInterval(() => {
            if (++missed > MISSED_PINGS) {
              this.log.warn("agent stopped answering pings", { agent: this.label });
              ws.close(4000, "agent stopped answering pings");
              ws.terminate();
              return;
            }
            ws.ping();
          }, this.pingMs);
    heartbeat?.unref();
    ws.on("pong", () => (missed = 0));
    ws.on("message", (data, isBinary) => {
      missed = 0;
      if (isBinary) return this.reject(ws, "binary messages are not part of the agent protocol");
      let json: unknown;
      const text = data.toString();
      const deep = jsonDepthProblem(text, MAX_AGENT_MESSAGE_DEPTH);
      if (deep) return this.reject(ws, `agent message is ${deep}`); // what handles it would run out of stack
      try {
        json = JSON.parse(text);
      } catch {
        return this.reject(ws, "malformed JSON from agent");
      }
      const parsed = agentToDaemonSchema.safeParse(json);
      if (!parsed.success) return this.reject(ws, `invalid agent message: ${formatZodError(parsed.error)}`);
      try {
        this.emit("message", parsed.data);
      } catch (err) {
        this.log.error("handling an agent message failed", { agent: this.label, err: (err as Error).stack ?? String(err) });
        this.reject(ws, "internal error handling the message");
      }
    });
    ws.on("close", (code, reason) => {
      if (heartbeat) clearInterval(heartbeat);
      this.emit("disconnected", `agent connection closed (${code}${reason.length ? ` ${reason}` : ""})`);
    });
    ws.on("error", (err) => this.log.warn("agent socket error", { agent: this.label, err: err.message }));
    this.emit("connected", conn);
  }

  private reject(ws: WebSocket, why: string): void {
    this.log.warn("closing agent connection", { agent: this.label, why });
    ws.close(1008, why.slice(0, 120));
  }
}

/**
 * One container's private endpoint: a unix socket in a folder of its own (mounted into that
 * container alone), serving one WebSocket that must present the container's token.
 */
export class SocketAgentEndpoint extends EndpointBase implements AgentEndpoint {
  private server: http.Server | null = null;
  private wss: WebSocketServer | null = null;
  readonly agentEnv = {
    [AgentEnv.socket]: `${AGENT_SOCKET_DIR_IN_CONTAINER}/${AGENT_SOCKET_NAME}`,
    // Code in the container calls other functions through the same socket (calls only).
    [AgentEnv.apiSocket]: `${AGENT_SOCKET_DIR_IN_CONTAINER}/${AGENT_SOCKET_NAME}`,
  };

  constructor(
    readonly socketDir: string,
    token: string,
    log: Logger,
    /** Serves the container's own requests to the daemon (calls only); none: 426. */
    private readonly api: http.RequestListener | null = null,
    /** The container's app and mounts: its requests to the API are marked with them (caller.ts). */
    private readonly caller: CallerContainer | null = null,
  ) {
    super(socketDir, token, log);
  }

  /**
   * Listens on `<socketDir>/agent.sock`. The folder stays the daemon's (root's), 0755: the
   * container's user can reach the socket in it but create nothing there (it is mounted read-only
   * too), so a function cannot fill the disk that holds gantry.db through it. (0711 would hide
   * only the name `agent.sock`, which the container's environment gives anyway; listing it lets a
   * function, and test/integration/web.test.ts, see that nothing else is there.) The socket goes
   * to `owner` (the container's uid:gid), 0600; a daemon that cannot chown (not root) leaves it
   * 0666, which nothing else reaches: the folder is inside the daemon's 0700 home (and its 0711
   * run/) and is mounted into that one container.
   */
  async listen(owner: { uid: number; gid: number } | null): Promise<void> {
    const socketPath = join(this.socketDir, AGENT_SOCKET_NAME);
    if (socketPath.length > UNIX_PATH_MAX) {
      throw new Error(`agent socket path ${socketPath} is ${socketPath.length} bytes, over the unix limit of ${UNIX_PATH_MAX}; use a shorter GANTRY_HOME`);
    }
    mkdirSync(this.socketDir, { recursive: true, mode: 0o755 });
    chmodSync(this.socketDir, 0o755); // whatever the umask made of it
    rmSync(socketPath, { force: true });
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_AGENT_MESSAGE_BYTES });
    const server = http.createServer((req, res) => {
      if (!this.api) return void res.writeHead(426).end();
      if (this.caller !== null) markCaller(req, this.caller);
      this.api(req, res);
    });
    server.on("upgrade", (req, sock, head) => {
      if (req.url !== AGENT_WS_PATH || !hasBearer(req, this.token) || this.busy) {
        sock.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, sock, head, (ws) => this.accept(ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
    if (owner) chownSync(socketPath, owner.uid, owner.gid);
    chmodSync(socketPath, owner ? 0o600 : 0o666);
    this.server = server;
    this.wss = wss;
  }

  async close(): Promise<void> {
    this.socket?.terminate();
    this.wss?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}

/**
 * The factory the container launcher is given on one machine: one endpoint per container. Plain
 * HTTP requests on the same socket (code in the container calling other functions) go to `api`.
 */
export const socketAgentEndpoints =
  (log: Logger, api: http.RequestListener | null = null): AgentEndpointFactory =>
  (container, token) =>
    new SocketAgentEndpoint(container.socketDir, token, log, api, { app: container.app, volumes: container.volumes ?? [] });

/** One container's endpoint on the TCP hub: registered while it listens. */
class TcpAgentEndpoint extends EndpointBase implements AgentEndpoint {
  readonly socketDir = null;
  readonly agentEnv: Record<string, string>;

  constructor(
    private readonly hub: TcpAgentHub,
    readonly containerId: string,
    token: string,
    log: Logger,
    readonly caller: CallerContainer,
  ) {
    super(containerId, token, log, hub.pingMs);
    this.agentEnv = { [AgentEnv.url]: hub.wsUrl, [AgentEnv.apiUrl]: hub.httpUrl, [AgentEnv.apiToken]: token };
  }

  async listen(): Promise<void> {
    this.hub.register(this, this.token);
  }

  async close(): Promise<void> {
    this.hub.unregister(this, this.token);
    this.socket?.terminate();
  }
}

export interface TcpAgentHubOptions {
  /** Where agents dial: the address the daemon advertises to its containers (HOST:PORT; port 0 picks one). */
  advertise: { host: string; port: number };
  log: Logger;
  /** Serves the containers' own requests to the daemon (calls only). */
  api: http.RequestListener | null;
  /** How often agents are pinged (default AGENT_PING_MS; tests make it short). */
  pingMs?: number;
  /** Wrong container tokens per address (default: 10 a minute). */
  limiter?: AttemptLimiter;
  clock?: () => number;
}

/**
 * One TCP listener for every container's agent (a Swarm cluster: agents run on other nodes and
 * cannot share a unix socket). An agent names its container (`X-Gantry-Container`) and presents
 * that container's token; code in a container presents its token alone. Wrong tokens are limited
 * per address as the API's are (10 a minute, then 429 with Retry-After for any token from there).
 */
export class TcpAgentHub {
  private readonly endpoints = new Map<string, TcpAgentEndpoint>();
  private readonly byToken = new Map<string, TcpAgentEndpoint>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_AGENT_MESSAGE_BYTES });
  private server: http.Server | null = null;
  private port: number;
  private readonly limiter: AttemptLimiter;

  readonly pingMs: number;

  constructor(private readonly o: TcpAgentHubOptions) {
    this.port = o.advertise.port;
    this.pingMs = o.pingMs ?? AGENT_PING_MS;
    this.limiter = o.limiter ?? new AttemptLimiter();
  }

  /**
   * Null when the request's token `opens` what it asks for; otherwise its refusal: 429 while its
   * address is held back for wrong tokens, else 401 (a wrong token counting against the address).
   */
  private refusal(req: http.IncomingMessage, opens: (token: string) => boolean): ApiError | null {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    const unauthorized = new ApiError(401, "unauthorized", "a container's token is needed here");
    if (!token) return unauthorized;
    const key = addressKey(req.socket.remoteAddress);
    const now = (this.o.clock ?? Date.now)();
    const limited = tooManyAttempts(this.limiter, key, now);
    if (limited) return limited;
    if (opens(token)) return null;
    this.limiter.fail(key, now);
    return unauthorized;
  }

  get wsUrl(): string {
    return `ws://${hostPart(this.o.advertise.host)}:${this.port}`;
  }

  get httpUrl(): string {
    return `http://${hostPart(this.o.advertise.host)}:${this.port}`;
  }

  /** The factory the container launcher is given across a cluster. */
  get factory(): AgentEndpointFactory {
    return (container, token) => new TcpAgentEndpoint(this, container.id, token, this.o.log, { app: container.app, volumes: container.volumes ?? [] });
  }

  register(e: TcpAgentEndpoint, token: string): void {
    this.endpoints.set(e.containerId, e);
    this.byToken.set(token, e);
  }

  unregister(e: TcpAgentEndpoint, token: string): void {
    if (this.endpoints.get(e.containerId) === e) this.endpoints.delete(e.containerId);
    if (this.byToken.get(token) === e) this.byToken.delete(token);
  }

  async listen(): Promise<void> {
    const guard = new RequestGuard({ allowedHosts: [hostPart(this.o.advertise.host)], allowedOrigins: [] });
    /** No page has business here: the advertised name (or an address) only, and nothing that says it comes from a page. */
    const check = (req: http.IncomingMessage) => {
      const l = { scheme: "http" as const, port: this.port };
      guard.checkHost(req, l);
      guard.checkOrigin(req, l, true);
    };
    const server = http.createServer((req, res) => {
      try {
        check(req);
      } catch (err) {
        const { status, body } = toResponse(err);
        res.writeHead(status, { "content-type": "application/json", connection: "close" }).end(JSON.stringify(body));
        return;
      }
      const refused = this.refusal(req, (token) => this.byToken.has(token));
      if (!this.o.api || refused) {
        const { status, body, headers } = toResponse(refused ?? new ApiError(401, "unauthorized", "a container's token is needed here"));
        res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
        return;
      }
      const caller = this.byToken.get((req.headers.authorization ?? "").replace(/^Bearer /, ""));
      if (caller) markCaller(req, caller.caller);
      this.o.api(req, res);
    });
    server.on("upgrade", (req, sock, head) => {
      try {
        check(req);
      } catch (err) {
        return refuseUpgrade(sock, err);
      }
      const id = req.headers[AGENT_CONTAINER_HEADER];
      const e = typeof id === "string" ? this.endpoints.get(id) : undefined;
      if (req.url !== AGENT_WS_PATH) return void sock.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      const refused = this.refusal(req, (token) => e !== undefined && e.opensWith(token));
      if (refused) return refuseUpgrade(sock, refused);
      if (!e || e.busy) return void sock.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      this.wss.handleUpgrade(req, sock, head, (ws) => e.accept(ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(err.code === "EADDRNOTAVAIL" ? new Error(`cannot listen for agents on ${this.o.advertise.host}: it is not an address of this machine (--advertise-addr)`) : err),
      );
      server.listen(this.o.advertise.port, this.o.advertise.host, () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

const hostPart = (host: string) => (host.includes(":") ? `[${host}]` : host);
