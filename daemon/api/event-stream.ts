import type http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { EventBus, GantryEvent } from "../service/event-bus.js";
import type { Access } from "./access.js";
import { refuseUpgrade } from "./http-kit.js";

/** A client that reads this much slower than events arrive is closed rather than buffered forever. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/**
 * `ws://…/v1/events[?call_id=&app=&function=]` (DESIGN 1.5): every committed change as one JSON
 * message per event (`call.status`, `container.status`, `log`), filtered by the query.
 */
export class EventStream {
  private readonly wss = new WebSocketServer({ noServer: true });

  constructor(
    private readonly bus: EventBus,
    private readonly access: Access,
  ) {}

  /** Takes an upgrade to /v1/events (ApiServer ran the TCP rules); `remote` (TCP) checks the token or the dashboard's session. */
  readonly upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer, remote: boolean): boolean => {
    const url = new URL(req.url ?? "/", "http://gantry");
    if (url.pathname !== "/v1/events") return false;
    if (remote) {
      try {
        this.access.authorize(req); // 401, or 429 with Retry-After for an address that sent many wrong tokens
      } catch (err) {
        refuseUpgrade(socket, err);
        return true;
      }
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.follow(ws, url.searchParams));
    return true;
  };

  private follow(ws: WebSocket, q: URLSearchParams): void {
    const callId = q.get("call_id");
    const app = q.get("app");
    const fn = q.get("function");
    const matches = (e: GantryEvent) =>
      (!callId || (e.type !== "container.status" && "call_id" in e && e.call_id === callId)) &&
      (!app || e.app === app) &&
      (!fn || e.function === fn);
    const onEvent = (e: GantryEvent) => {
      if (!matches(e)) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(1013, "client too slow: events were dropped");
        return;
      }
      ws.send(JSON.stringify(e));
    };
    this.bus.on("event", onEvent);
    ws.on("close", () => this.bus.off("event", onEvent));
    ws.on("error", () => this.bus.off("event", onEvent));
    ws.on("message", () => undefined); // the stream is one-way; client messages are ignored
  }

  close(): void {
    for (const ws of this.wss.clients) ws.close(1001, "daemon stopping");
    this.wss.close();
  }
}
