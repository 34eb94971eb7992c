/**
 * Web endpoints (DESIGN 1.8): HTTP requests to /web/APP/FUNCTION/… wait in their function's pool
 * like calls, take a container slot (so maxInputs × maxContainers bound them and they cold-start
 * and scale down like calls), and travel over the agent's connection: the head, then the body in
 * chunks as the client sends it; the answer streams back the same way. A request the function does
 * not answer gets a JSON 502 (it failed, or its container went away) or 504 (past its timeout);
 * a client that goes away cancels the request in the container. Nothing here is stored: a web
 * request lives as long as its HTTP exchange.
 */
import { MAX_HTTP_CHUNK_BYTES, type AgentToDaemon } from "../../protocol/agent-messages.js";
import { makeId, type RandomSource } from "../core/ids.js";
import type { Logger } from "../logger.js";
import { ServiceError, ServiceErrorCode } from "./errors.js";
import { pooledRandom } from "./random-pool.js";
import { busySlots, type ContainerEntry, type FunctionPool, type WebExchange, type WebRequest } from "./pool.js";

type HttpFromAgent = Extract<AgentToDaemon, { type: "http_response" | "http_body" | "http_error" }>;

export interface WebRequestsDeps {
  /** Where a request to /web/APP/NAME/ goes (throws why nowhere). */
  route(app: string, name: string, query: string): WebRoute;
  /** Plans the pool (a request queued, a slot freed). */
  pump(pool: FunctionPool): void;
  /** The largest request body, as for calls. */
  maxBodyBytes: number;
  log: Logger;
  clock?: () => number;
  random?: RandomSource;
}

/** A web endpoint: whether it is public, the class method answering it (if any), and its pool (made when the request may go). */
export interface WebRoute {
  public: boolean;
  target: string | null;
  pool: () => FunctionPool;
}

export class WebRequests {
  private readonly now: () => number;
  private readonly random: RandomSource;
  private closing = false;

  constructor(private readonly d: WebRequestsDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? pooledRandom();
  }

  /**
   * The endpoint at /web/APP/NAME/, or why there is none: not deployed, not a web endpoint, or a
   * class's query naming a parameter badly. NAME is a function's, or CLASS.METHOD.
   */
  endpoint(app: string, name: string, query: string): WebRoute {
    return this.d.route(app, name, query);
  }

  /** Queues a request for a container slot; the exchange is answered when the function answers. */
  handle(at: WebRoute, exchange: WebExchange): void {
    if (this.closing) throw new ServiceError(ServiceErrorCode.shuttingDown, "the daemon is shutting down");
    const pool = at.pool();
    const req: WebRequest = { id: makeId("wr", this.now(), this.random, 8), exchange, target: at.target, containerId: null, timer: null, responded: false, done: false };
    pool.web.push(req);
    exchange.onClose(() => this.clientGone(pool, req));
    this.d.pump(pool);
  }

  /** Runs a queued request in a free slot of a ready container (the scaler chose it). */
  dispatch(pool: FunctionPool, c: ContainerEntry, req: WebRequest): void {
    if (req.done) return;
    const now = this.now();
    req.containerId = c.id;
    c.requests.set(req.id, req);
    c.idleSinceMs = null;
    c.lastUsedMs = now;
    req.timer = setTimeout(() => {
      this.cancelInContainer(c, req, "it ran past its timeout");
      this.finish(pool, c, req, () =>
        req.exchange.fail(504, "timeout", `${pool.app}.${pool.spec.name} did not answer within its timeout of ${pool.spec.timeoutMs / 1000} s`),
      );
    }, pool.spec.timeoutMs);
    const x = req.exchange;
    const target = req.target !== null ? { target: req.target } : {};
    c.conn?.send({ type: "http_request", requestId: req.id, method: x.method, path: x.path, rootPath: x.rootPath, query: x.query, ...target, headers: x.headers, client: x.client });
    void this.sendBody(pool, c, req);
  }

  /** Streams the client's body to the agent, within the size limit. */
  private async sendBody(pool: FunctionPool, c: ContainerEntry, req: WebRequest): Promise<void> {
    let size = 0;
    try {
      for await (const chunk of req.exchange.body) {
        if (req.done) return;
        size += chunk.length;
        if (size > this.d.maxBodyBytes) {
          this.cancelInContainer(c, req, "its body is too large");
          this.finish(pool, c, req, () => req.exchange.fail(413, "payload_too_large", `request body exceeds the limit of ${this.d.maxBodyBytes} bytes`));
          return;
        }
        for (let i = 0; i < chunk.length; i += MAX_HTTP_CHUNK_BYTES) {
          c.conn?.send({ type: "http_body", requestId: req.id, data: chunk.subarray(i, i + MAX_HTTP_CHUNK_BYTES).toString("base64"), end: false });
        }
      }
      if (!req.done) c.conn?.send({ type: "http_body", requestId: req.id, data: "", end: true });
    } catch {
      // The client broke off while sending: its close handler cancels the request.
    }
  }

  /** A message of the agent about one of its requests. */
  onAgent(pool: FunctionPool, c: ContainerEntry, msg: HttpFromAgent): void {
    const req = c.requests.get(msg.requestId);
    if (!req || req.done) return; // cancelled or timed out meanwhile
    switch (msg.type) {
      case "http_response":
        req.responded = true;
        req.exchange.respond(msg.status, msg.headers);
        return;
      case "http_body":
        if (msg.data) req.exchange.write(Buffer.from(msg.data, "base64"));
        if (msg.end) this.finish(pool, c, req, () => req.exchange.end());
        return;
      case "http_error": {
        const e = msg.error;
        this.finish(pool, c, req, () => req.exchange.fail(502, "function_failed", `${pool.app}.${pool.spec.name} failed: ${e.type}: ${e.message}`, e));
        return;
      }
    }
  }

  /** The container went away: its requests get a 502. */
  lose(pool: FunctionPool, c: ContainerEntry, reason: string): void {
    for (const req of [...c.requests.values()]) {
      this.finish(pool, c, req, () => req.exchange.fail(502, "container_lost", `the container answering ${pool.app}.${pool.spec.name} went away: ${reason}`));
    }
  }

  /** Queued requests that will not run (the app stopped, or the function went away). */
  refuseQueued(pool: FunctionPool, why: string): void {
    for (const req of pool.web.splice(0)) {
      req.done = true;
      req.exchange.fail(503, "unavailable", `${pool.app}.${pool.spec.name} takes no requests: ${why}`);
    }
  }

  private clientGone(pool: FunctionPool, req: WebRequest): void {
    if (req.done) return;
    const i = pool.web.indexOf(req);
    if (i >= 0) {
      pool.web.splice(i, 1);
      req.done = true;
      return;
    }
    const c = req.containerId ? pool.containers.get(req.containerId) : undefined;
    if (!c) return;
    this.cancelInContainer(c, req, "the client went away");
    this.finish(pool, c, req, () => undefined);
  }

  private cancelInContainer(c: ContainerEntry, req: WebRequest, reason: string): void {
    c.conn?.send({ type: "http_cancel", requestId: req.id, reason });
  }

  /** Ends a request once: answers the client, frees its slot, plans the pool. */
  private finish(pool: FunctionPool, c: ContainerEntry, req: WebRequest, answer: () => void): void {
    if (req.done) return;
    req.done = true;
    if (req.timer) clearTimeout(req.timer);
    c.requests.delete(req.id);
    if (busySlots(c) === 0) c.idleSinceMs = this.now();
    try {
      answer();
    } catch (err) {
      this.d.log.warn("answering a web request failed", { request: req.id, err: (err as Error).message });
    }
    this.d.pump(pool);
  }

  /** Requests still being answered. */
  running(pools: Iterable<FunctionPool>): number {
    let n = 0;
    for (const p of pools) for (const c of p.containers.values()) n += c.requests.size;
    return n;
  }

  close(): void {
    this.closing = true;
  }
}
