/**
 * Web endpoints in the Node agent: an `http_request` and its `http_body` chunks become a standard
 * `Request` (its body a stream), the handler's `Response` goes back as `http_response` and
 * `http_body` chunks as its body yields them, and `http_cancel` aborts the request's signal and
 * stops reading the response.
 */
import { MAX_HTTP_CHUNK_BYTES, type AgentToDaemon, type DaemonToAgent } from "../../protocol/agent-messages.js";
import { functionError } from "./remote-error.js";

type Send = (msg: AgentToDaemon) => void;
type HttpRequest = Extract<DaemonToAgent, { type: "http_request" }>;

interface Open {
  body: ReadableStreamDefaultController<Uint8Array> | null;
  abort: AbortController;
  reader: ReadableStreamDefaultReader<Uint8Array> | null;
  cancelled: boolean;
}

/** Headers that belong to one hop (the daemon's connection), not to the request. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);

export class WebRequests {
  private readonly open = new Map<string, Open>();

  constructor(
    private readonly send: Send,
    /** Runs the handler with the request's id as the current call (log lines are tagged with it). */
    private readonly run: <T>(requestId: string, fn: () => T) => T,
  ) {}

  get size(): number {
    return this.open.size;
  }

  start(msg: HttpRequest, handler: (req: Request) => unknown): void {
    const state: Open = { body: null, abort: new AbortController(), reader: null, cancelled: false };
    this.open.set(msg.requestId, state);
    const hasBody = msg.method !== "GET" && msg.method !== "HEAD";
    const body = hasBody
      ? new ReadableStream<Uint8Array>({ start: (c) => void (state.body = c) })
      : null;
    const headers = new Headers();
    for (const [k, v] of msg.headers) if (!HOP_BY_HOP.has(k.toLowerCase())) headers.append(k, v);
    const host = headers.get("host") ?? "localhost";
    const url = `http://${host}${msg.path}${msg.query ? `?${msg.query}` : ""}`;
    void this.respond(msg.requestId, state, () =>
      handler(new Request(url, { method: msg.method, headers, body, signal: state.abort.signal, ...(body ? { duplex: "half" } : {}) } as RequestInit)),
    );
  }

  body(msg: Extract<DaemonToAgent, { type: "http_body" }>): void {
    const state = this.open.get(msg.requestId);
    if (!state?.body) return; // a GET's (empty) body, or a request already over
    if (msg.data) state.body.enqueue(Buffer.from(msg.data, "base64"));
    if (msg.end) {
      state.body.close();
      state.body = null;
    }
  }

  cancel(requestId: string, reason: string): void {
    const state = this.open.get(requestId);
    if (!state) return;
    state.cancelled = true;
    // In the request's context, so that what its abort listeners log is tagged with it.
    this.run(requestId, () => state.abort.abort(new Error(`the request was cancelled: ${reason}`)));
    try {
      state.body?.error(new Error(`the request was cancelled: ${reason}`));
    } catch {
      /* already closed */
    }
    void state.reader?.cancel(reason).catch(() => undefined);
    this.open.delete(requestId);
  }

  private async respond(requestId: string, state: Open, call: () => unknown): Promise<void> {
    try {
      const res = await this.run(requestId, async () => call());
      if (!(res instanceof Response)) throw new TypeError(`a web endpoint's handler must return a Response, not ${res === null ? "null" : typeof res}`);
      if (state.cancelled) return;
      this.send({ type: "http_response", requestId, status: res.status, headers: [...res.headers] });
      if (res.body) {
        state.reader = res.body.getReader();
        for (;;) {
          const { done, value } = await state.reader.read();
          if (done || state.cancelled) break;
          for (let i = 0; i < value.length; i += MAX_HTTP_CHUNK_BYTES) {
            this.send({ type: "http_body", requestId, data: Buffer.from(value.subarray(i, i + MAX_HTTP_CHUNK_BYTES)).toString("base64"), end: false });
          }
        }
      }
      if (!state.cancelled) this.send({ type: "http_body", requestId, data: "", end: true });
    } catch (err) {
      if (!state.cancelled) this.send({ type: "http_error", requestId, error: functionError(err) });
    } finally {
      this.open.delete(requestId);
    }
  }
}
