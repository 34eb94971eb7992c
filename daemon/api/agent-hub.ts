import { EventEmitter } from "node:events";
import { chmodSync, chownSync, mkdirSync, rmSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import { AGENT_SOCKET_NAME, AGENT_WS_PATH, agentToDaemonSchema, type AgentToDaemon, type DaemonToAgent } from "../../protocol/agent-messages.js";
import { formatZodError } from "../../protocol/function-spec.js";
import type { Logger } from "../logger.js";
import type { AgentConnection, AgentEndpoint, AgentEndpointEvents, AgentEndpointFactory } from "../service/ports.js";
import { hasBearer } from "./token.js";

/** The largest message an agent may send (an output); larger closes the connection. */
export const MAX_AGENT_MESSAGE_BYTES = 64 * 1024 * 1024;
const UNIX_PATH_MAX = 107;

/**
 * One container's private endpoint: a unix socket in a folder of its own (mounted into that
 * container alone), serving one WebSocket that must present the container's token.
 */
export class SocketAgentEndpoint extends EventEmitter<AgentEndpointEvents> implements AgentEndpoint {
  private server: http.Server | null = null;
  private wss: WebSocketServer | null = null;
  private socket: WebSocket | null = null;

  constructor(
    readonly socketDir: string,
    private readonly token: string,
    private readonly log: Logger,
    /** Serves the container's own requests to the daemon (calls only); none: 426. */
    private readonly api: http.RequestListener | null = null,
  ) {
    super();
  }

  async listen(owner: { uid: number; gid: number } | null): Promise<void> {
    const socketPath = join(this.socketDir, AGENT_SOCKET_NAME);
    if (socketPath.length > UNIX_PATH_MAX) {
      throw new Error(`agent socket path ${socketPath} is ${socketPath.length} bytes, over the unix limit of ${UNIX_PATH_MAX}; use a shorter GANTRY_HOME`);
    }
    mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    rmSync(socketPath, { force: true });
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_AGENT_MESSAGE_BYTES });
    const server = http.createServer((req, res) => (this.api ? this.api(req, res) : res.writeHead(426).end()));
    server.on("upgrade", (req, sock, head) => {
      if (req.url !== AGENT_WS_PATH || !hasBearer(req, this.token) || this.socket) {
        sock.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, sock, head, (ws) => this.accept(ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
    if (owner) {
      chownSync(this.socketDir, owner.uid, owner.gid);
      chownSync(socketPath, owner.uid, owner.gid);
    }
    chmodSync(socketPath, 0o600);
    this.server = server;
    this.wss = wss;
  }

  private accept(ws: WebSocket): void {
    this.socket = ws;
    const conn: AgentConnection = {
      send: (msg) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
      },
      close: () => ws.close(1000, "closed by daemon"),
    };
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.reject(ws, "binary messages are not part of the agent protocol");
      let json: unknown;
      try {
        json = JSON.parse(data.toString());
      } catch {
        return this.reject(ws, "malformed JSON from agent");
      }
      const parsed = agentToDaemonSchema.safeParse(json);
      if (!parsed.success) return this.reject(ws, `invalid agent message: ${formatZodError(parsed.error)}`);
      try {
        this.emit("message", parsed.data);
      } catch (err) {
        this.log.error("handling an agent message failed", { dir: this.socketDir, err: (err as Error).stack ?? String(err) });
        this.reject(ws, "internal error handling the message");
      }
    });
    ws.on("close", (code, reason) => this.emit("disconnected", `agent connection closed (${code}${reason.length ? ` ${reason}` : ""})`));
    ws.on("error", (err) => this.log.warn("agent socket error", { dir: this.socketDir, err: err.message }));
    this.emit("connected", conn);
  }

  private reject(ws: WebSocket, why: string): void {
    this.log.warn("closing agent connection", { dir: this.socketDir, why });
    ws.close(1008, why.slice(0, 120));
  }

  async close(): Promise<void> {
    this.socket?.terminate();
    this.wss?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}

/**
 * The factory the container launcher is given: one endpoint per container. Plain HTTP requests on
 * the same socket (code in the container calling other functions) go to `api`.
 */
export const socketAgentEndpoints =
  (log: Logger, api: http.RequestListener | null = null): AgentEndpointFactory =>
  (socketDir, token) =>
    new SocketAgentEndpoint(socketDir, token, log, api);
