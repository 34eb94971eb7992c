/**
 * Web endpoints in the agent protocol: the same HTTP cases for each runtime agent (Node and Python),
 * each run as a host process connected to a real SocketAgentEndpoint in a temp folder, as in
 * agent-protocol.test.ts. No Docker, no daemon: the test plays the daemon's side of http_request,
 * http_body and http_cancel. The fixture apps are test/fixtures/agent-protocol/web-app.ts and
 * web_app.py (twins for the shared cases); the Python agent's WSGI, lifespan and FastAPI cases
 * use web_app.py alone. GANTRY_TEST_PYTHON picks another Python for the Python agent.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleApp } from "../../cli/bundle-app.js";
import { AgentEnv, MAX_HTTP_CHUNK_BYTES, type AgentToDaemon } from "../../protocol/agent-messages.js";
import { AgentSession, DEADLINE_MS, stopAgentSessions, type AgentUnderTest } from "../helpers/agent-session.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = join(ROOT, "test/fixtures/agent-protocol");
const NODE_AGENT = join(ROOT, "runtime-images/node/dist/agent.cjs");
const PYTHON_AGENT = join(ROOT, "runtime-images/python/agent.py");
const PYTHON = process.env.GANTRY_TEST_PYTHON ?? "/usr/bin/python3";
const PYTHON_ENV = { PYTHONPATH: join(ROOT, "python"), PYTHONDONTWRITEBYTECODE: "1" };
const ROOT_PATH = "/web/agent-web/echo";
const FASTAPI_MISSING = 'fastapi_endpoint needs FastAPI in the function\'s image, e.g. Image.debian_slim().apt_install("python3-fastapi")';

type HttpResponse = Extract<AgentToDaemon, { type: "http_response" }>;
type HttpBody = Extract<AgentToDaemon, { type: "http_body" }>;
type HttpError = Extract<AgentToDaemon, { type: "http_error" }>;
type HttpFromAgent = HttpResponse | HttpBody | HttpError;

// --- the agents under test -------------------------------------------------------------------

let nodeBundle = "";
const nodeAgent: AgentUnderTest = {
  name: "node",
  appFile: "web-app.ts", // the bundle's source map names the app file, not app.mjs
  async prepare() {
    const sources = ["agent.ts", "web.ts"].map((f) => join(ROOT, "runtime-images/node", f)).filter((f) => existsSync(f));
    if (!existsSync(NODE_AGENT) || sources.some((f) => statSync(NODE_AGENT).mtimeMs < statSync(f).mtimeMs)) {
      throw new Error(`${NODE_AGENT} is missing or older than its sources: run npm run build`);
    }
    if (!readFileSync(NODE_AGENT, "utf8").includes("http_request")) throw new Error(`${NODE_AGENT} has no web endpoints yet: run npm run build`);
    nodeBundle = (await bundleApp(join(FIXTURES, "web-app.ts"))).bundle;
  },
  launch(dir) {
    const module = join(dir, "app.mjs");
    writeFileSync(module, nodeBundle);
    return { command: process.execPath, args: [NODE_AGENT], env: { [AgentEnv.module]: module } };
  },
};

const pythonAgent: AgentUnderTest = {
  name: "python",
  appFile: "web_app.py",
  async prepare() {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: the Python agent's cases need Debian's python3`);
  },
  launch(dir) {
    copyFileSync(join(FIXTURES, "web_app.py"), join(dir, "web_app.py"));
    return { command: PYTHON, args: [PYTHON_AGENT], env: { [AgentEnv.module]: "web_app", ...PYTHON_ENV } };
  },
};

// --- one agent process and its endpoint ------------------------------------------------------

interface RequestHead {
  method?: string;
  path?: string;
  query?: string;
  headers?: [string, string][];
  rootPath?: string;
  client?: [string, number] | null;
}

/** A request's answer as the agent sent it. */
interface Answer {
  response: HttpResponse | undefined;
  chunks: HttpBody[];
  body: Buffer;
  error: HttpError | undefined;
}

/** An agent session that also plays the daemon's side of web requests. */
class WebSession extends AgentSession {
  /** Sends an http_request (its body follows with body()). */
  request(requestId: string, head: RequestHead = {}): void {
    this.send({
      type: "http_request",
      requestId,
      method: head.method ?? "GET",
      path: head.path ?? "/",
      rootPath: head.rootPath ?? ROOT_PATH,
      query: head.query ?? "",
      headers: head.headers ?? [["host", "localhost:8080"]],
      client: head.client === undefined ? ["127.0.0.1", 50000] : head.client,
    });
  }

  body(requestId: string, data: string | Buffer, end: boolean): void {
    this.send({ type: "http_body", requestId, data: Buffer.from(data).toString("base64"), end });
  }

  cancel(requestId: string, reason = "the client went away"): void {
    this.send({ type: "http_cancel", requestId, reason });
  }

  /** The agent's HTTP messages about one request, in order. */
  httpOf(requestId: string, from = 0): HttpFromAgent[] {
    return this.messages
      .slice(from)
      .filter((m): m is HttpFromAgent => (m.type === "http_response" || m.type === "http_body" || m.type === "http_error") && m.requestId === requestId);
  }

  /** What the agent answered so far. */
  answerOf(requestId: string): Answer {
    const sent = this.httpOf(requestId);
    const chunks = sent.filter((m): m is HttpBody => m.type === "http_body");
    return {
      response: sent.find((m): m is HttpResponse => m.type === "http_response"),
      chunks,
      body: Buffer.concat(chunks.map((c) => Buffer.from(c.data, "base64"))),
      error: sent.find((m): m is HttpError => m.type === "http_error"),
    };
  }

  /** Waits until the request is over: its last body chunk (end) or an http_error. */
  answered(requestId: string): Promise<Answer> {
    return this.waitFor(`the answer to ${requestId}`, () =>
      this.httpOf(requestId).some((m) => m.type === "http_error" || (m.type === "http_body" && m.end)) ? this.answerOf(requestId) : undefined,
    );
  }

  /** Waits until the response body holds `text` (the chunks decoded and joined). */
  bodyHas(requestId: string, text: string): Promise<Answer> {
    return this.waitFor(`${JSON.stringify(text)} in the body of ${requestId}`, () => {
      const answer = this.answerOf(requestId);
      return answer.body.toString().includes(text) ? answer : undefined;
    });
  }

  /** Sends a whole request (the body in the chunks given, then the end) and waits for its answer. */
  async fetch(requestId: string, head: RequestHead = {}, chunks: (string | Buffer)[] = []): Promise<Answer> {
    this.request(requestId, head);
    for (const chunk of chunks) this.body(requestId, chunk, false);
    this.body(requestId, "", true);
    return this.answered(requestId);
  }
}

afterEach(stopAgentSessions);

const json = (answer: Answer): unknown => JSON.parse(answer.body.toString());
const texts = (answer: Answer): string[] => answer.chunks.map((c) => Buffer.from(c.data, "base64").toString()).filter((t) => t !== "");
const header = (answer: Answer, name: string): string | undefined => answer.response?.headers.find(([k]) => k.toLowerCase() === name)?.[1];

// --- the cases both agents pass --------------------------------------------------------------

describe.each([nodeAgent, pythonAgent])("the $name agent's web endpoints", { timeout: 2 * DEADLINE_MS }, (agent) => {
  beforeAll(() => agent.prepare());
  const start = (fn: string, opts?: { maxInputs?: number; env?: Record<string, string> }) => WebSession.start(agent, fn, { app: "agent-web", ...opts });

  it("echoes the method, path, query, a header and a body sent in several chunks, tagging the handler's logs with the request", async () => {
    const s = await start("echo");
    expect(await s.ready()).toMatchObject({ type: "ready", functionName: "echo" });
    const head: RequestHead = { method: "POST", path: "/echo/here", query: "a=1&b=two%20words", headers: [["host", "localhost:8080"], ["x-test", "yes"], ["content-type", "text/plain"]] };
    const answer = await s.fetch("wr-echo", head, ["hel", "lo ", "wörld"]);
    expect(answer.error).toBeUndefined();
    expect(answer.response).toMatchObject({ type: "http_response", requestId: "wr-echo", status: 201 });
    expect(header(answer, "content-type")).toBe("application/json");
    expect(json(answer)).toEqual({ method: "POST", path: "/echo/here", query: "a=1&b=two%20words", header: "yes", body: "hello wörld" });
    expect(answer.chunks.at(-1)!.end).toBe(true);
    expect(answer.chunks.slice(0, -1).every((c) => !c.end)).toBe(true);
    const end = answer.chunks.at(-1)!;
    expect(s.logsOf("wr-echo", end).map((m) => m.line)).toEqual(["echo POST /echo/here"]);
  });

  it("sends a large body both ways in chunks of at most MAX_HTTP_CHUNK_BYTES", async () => {
    const s = await start("echo");
    await s.ready();
    const piece = "0123456789abcdef".repeat(12_500); // 200 kB
    const answer = await s.fetch("wr-large", { method: "POST", path: "/echo/large" }, [piece, piece, piece]);
    expect((json(answer) as { body: string }).body).toBe(piece.repeat(3));
    expect(answer.chunks.length).toBeGreaterThan(2);
    for (const c of answer.chunks) expect(Buffer.from(c.data, "base64").length).toBeLessThanOrEqual(MAX_HTTP_CHUNK_BYTES);
  });

  it("streams a response chunk by chunk, each sent as the handler makes it", async () => {
    const s = await start("echo");
    await s.ready();
    s.request("wr-stream", { method: "POST", path: "/stream" });
    // The head and the first tick come before any of the request's body was sent.
    await s.bodyHas("wr-stream", "tick 0\n");
    expect(s.answerOf("wr-stream").response).toMatchObject({ status: 200 });
    s.body("wr-stream", "a", false);
    await s.bodyHas("wr-stream", "tick 1\n");
    s.body("wr-stream", "b", false);
    await s.bodyHas("wr-stream", "tick 2\n");
    expect(s.answerOf("wr-stream").chunks.some((c) => c.end)).toBe(false);
    s.body("wr-stream", "", true);
    const answer = await s.answered("wr-stream");
    expect(texts(answer)).toEqual(["tick 0\n", "tick 1\n", "tick 2\n", "done\n"]);
    expect(answer.chunks.at(-1)!.end).toBe(true);
    expect(answer.error).toBeUndefined();
  });

  it("answers an exception with http_error: its type, message and a traceback naming the user's function", async () => {
    const s = await start("echo");
    await s.ready();
    const answer = await s.fetch("wr-boom", { path: "/boom" });
    expect(answer.response).toBeUndefined();
    expect(answer.chunks).toEqual([]);
    expect(answer.error).toMatchObject({ type: "http_error", requestId: "wr-boom", error: { type: "ValueError", message: "it broke" } });
    expect(answer.error!.error.traceback).toContain("boom");
    expect(answer.error!.error.traceback).toContain(agent.appFile);
    expect(answer.error!.error.traceback).not.toMatch(/agent\.py|gantry_web\.py/);
  });

  it("stops a streaming response on http_cancel, ignores the request's late messages and keeps serving", async () => {
    const s = await start("echo");
    await s.ready();
    s.request("wr-cancel", { method: "POST", path: "/stream" });
    await s.bodyHas("wr-cancel", "tick 0\n");
    const from = s.messages.length;
    s.cancel("wr-cancel");
    // The handler's own cancellation code says so (Node runs an abort listener outside the request's context: untagged).
    await s.waitFor("the handler to see the cancel", () => s.messages.find((m) => m.type === "log" && m.line === "stream cancelled"));
    // A chunk that crossed the cancel on its way: the handler must not see it (it would answer a tick).
    s.body("wr-cancel", "late", false);
    s.body("wr-cancel", "", true);
    const next = await s.fetch("wr-after", { method: "POST", path: "/echo/after" }, ["still here"]);
    expect(json(next)).toMatchObject({ path: "/echo/after", body: "still here" });
    expect(s.httpOf("wr-cancel", from)).toEqual([]);
    expect(texts(s.answerOf("wr-cancel"))).toEqual(["tick 0\n"]);
  });

  it("runs two requests at once with max_inputs=2", async () => {
    const s = await start("echo", { maxInputs: 2 });
    await s.ready();
    const timeout = String(DEADLINE_MS / 2000);
    const [a, b] = await Promise.all([
      s.fetch("wr-a", { path: "/meet", query: `label=a&timeout=${timeout}` }),
      s.fetch("wr-b", { path: "/meet", query: `label=b&timeout=${timeout}` }),
    ]);
    expect(a.error).toBeUndefined();
    expect(b.error).toBeUndefined();
    expect(a.body.toString()).toBe("a");
    expect(b.body.toString()).toBe("b");
    expect(s.logsOf("wr-a").map((m) => m.line)).toEqual(["a arrived", "a met"]);
    expect(s.logsOf("wr-b").map((m) => m.line)).toEqual(["b arrived", "b met"]);
  });

  it("answers an input to a web endpoint with a TypeError output", async () => {
    const s = await start("echo");
    await s.ready();
    s.input("fc-web", ["x"]);
    expect(await s.output("fc-web")).toMatchObject({ ok: false, error: { type: "TypeError", message: expect.stringContaining("echo is a web endpoint: send it HTTP requests") } });
  });

  it("answers an HTTP request to a plain function with http_error, and still takes its inputs", async () => {
    const s = await start("plain");
    await s.ready();
    const answer = await s.fetch("wr-plain", { path: "/" });
    expect(answer.response).toBeUndefined();
    expect(answer.error).toMatchObject({ error: { type: "TypeError", message: expect.stringContaining("plain is not a web endpoint") } });
    s.input("fc-plain", ["x"]);
    expect(await s.output("fc-plain")).toMatchObject({ ok: true, value: "x" });
  });
});

// --- the Python agent alone: the ASGI scope, WSGI, the lifespan, FastAPI -----------------------

describe("the python agent's web endpoints (Python only)", { timeout: 2 * DEADLINE_MS }, () => {
  beforeAll(() => pythonAgent.prepare());
  const start = (fn: string, opts?: { maxInputs?: number; env?: Record<string, string> }) => WebSession.start(pythonAgent, fn, { app: "agent-web", ...opts });

  it("gives the ASGI app an http scope: the path decoded below the prefix, root_path, raw bytes, lowercased headers", async () => {
    const s = await start("echo");
    await s.ready();
    const answer = await s.fetch("wr-scope", {
      method: "get",
      path: "/scope/some%20where/caf%C3%A9",
      query: "x=%20y&z",
      headers: [["Host", "localhost:8080"], ["X-Test", "Yes"], ["X-Test", "Again"]],
      client: ["10.1.2.3", 5555],
    });
    expect(json(answer)).toEqual({
      type: "http",
      asgi: { version: "3.0", spec_version: "2.3" },
      http_version: "1.1",
      method: "GET",
      scheme: "http",
      path: "/scope/some where/café",
      raw_path: "/scope/some%20where/caf%C3%A9",
      root_path: ROOT_PATH,
      query_string: "x=%20y&z",
      headers: [["host", "localhost:8080"], ["x-test", "Yes"], ["x-test", "Again"]],
      client: ["10.1.2.3", 5555],
      server: null,
    });
    const noClient = await s.fetch("wr-no-client", { path: "/scope", client: null });
    expect(json(noClient)).toMatchObject({ client: null });
  });

  it("serves a WSGI app: a PEP 3333 environ, wsgi.input over the chunks as they come, logs tagged with the request", async () => {
    const s = await start("wsgi_echo");
    await s.ready();
    const head: RequestHead = {
      method: "POST",
      path: "/items/a%20b",
      query: "q=1",
      headers: [["Host", "example.test:8443"], ["X-Test", "wsgi"], ["Content-Type", "text/plain"], ["Content-Length", "11"], ["X_Test", "spoofed"]],
      client: ["10.0.0.9", 4242],
    };
    const answer = await s.fetch("wr-wsgi", head, ["hello", " ", "world"]);
    expect(answer.error).toBeUndefined();
    expect(answer.response).toMatchObject({ status: 201, headers: [["Content-Type", "application/json"]] });
    expect(json(answer)).toEqual({
      method: "POST",
      scriptName: ROOT_PATH,
      path: "/items/a b",
      query: "q=1",
      header: "wsgi",
      contentType: "text/plain",
      contentLength: "11",
      server: ["example.test", "8443"],
      remote: "10.0.0.9",
      body: "hello world",
    });
    expect(answer.chunks.at(-1)!.end).toBe(true);
    expect(s.logsOf("wr-wsgi", answer.chunks.at(-1)).map((m) => [m.stream, m.line])).toEqual([["stderr", "wsgi POST /items/a b"]]);
  });

  it("streams a WSGI app's iterable item by item, and stops it on http_cancel", async () => {
    const s = await start("wsgi_echo", { maxInputs: 2 });
    await s.ready();
    s.request("wr-ws", { method: "POST", path: "/stream" });
    await s.bodyHas("wr-ws", "tick 0\n");
    s.body("wr-ws", "one\n", false);
    await s.bodyHas("wr-ws", "tick 1\n");
    s.body("wr-ws", "two\n", false);
    await s.bodyHas("wr-ws", "tick 2\n");
    s.body("wr-ws", "", true);
    expect(texts(await s.answered("wr-ws"))).toEqual(["tick 0\n", "tick 1\n", "tick 2\n", "done\n"]);

    s.request("wr-ws-cancel", { method: "POST", path: "/stream" });
    await s.bodyHas("wr-ws-cancel", "tick 0\n");
    const from = s.messages.length;
    s.cancel("wr-ws-cancel");
    await s.logLine("wr-ws-cancel", "wsgi stream cancelled");
    s.body("wr-ws-cancel", "late\n", false);
    const next = await s.fetch("wr-ws-after", { method: "POST", path: "/x" }, ["ok"]);
    expect(json(next)).toMatchObject({ body: "ok" });
    expect(s.httpOf("wr-ws-cancel", from)).toEqual([]);
  });

  it("answers a WSGI app's exception with http_error naming the user's function", async () => {
    const s = await start("wsgi_echo");
    await s.ready();
    const answer = await s.fetch("wr-wsgi-boom", { path: "/boom" });
    expect(answer.error).toMatchObject({ error: { type: "ValueError", message: "wsgi broke" } });
    expect(answer.error!.error.traceback).toContain("boom");
    expect(answer.error!.error.traceback).toContain("web_app.py");
    expect(answer.error!.error.traceback).not.toMatch(/agent\.py|gantry_web\.py/);
  });

  it("runs the ASGI lifespan: startup before ready (its state reaches requests), shutdown before exit", async () => {
    const s = await start("with_lifespan");
    const ready = await s.ready();
    expect(s.logsOf(undefined, ready).map((m) => m.line)).toEqual(["lifespan startup"]);
    const answer = await s.fetch("wr-life", { path: "/" });
    expect(answer.body.toString()).toBe("hello from startup");
    s.send({ type: "shutdown" });
    expect(await s.exited()).toEqual({ code: 0, signal: null });
    expect(await s.closed()).toMatch(/\(1000/);
    expect(s.logsOf(undefined).map((m) => m.line)).toEqual(["lifespan startup", "lifespan shutdown"]);
  });

  it("runs the lifespan shutdown on SIGTERM too", async () => {
    const s = await start("with_lifespan");
    await s.ready();
    s.child.kill("SIGTERM");
    expect(await s.exited()).toEqual({ code: 143, signal: null });
    expect(await s.closed()).toMatch(/\(1001 SIGTERM\)/);
    expect(s.logsOf(undefined).map((m) => m.line)).toContain("lifespan shutdown");
  });

  it("goes on without the lifespan when the app raises on its scope", async () => {
    const s = await start("lifespan_raises");
    await s.ready();
    expect(s.logsOf(undefined).some((m) => m.stream === "stderr" && /does not take the lifespan protocol/.test(m.line))).toBe(true);
    const answer = await s.fetch("wr-raises", { path: "/" });
    expect(answer.body.toString()).toBe("still serving");
    s.send({ type: "shutdown" });
    expect(await s.exited()).toEqual({ code: 0, signal: null });
  });

  it("sends init_error when the app says its lifespan startup failed", async () => {
    const s = await start("startup_fails");
    const sent = await s.waitFor("init_error", () => s.messages.find((m) => m.type === "init_error"));
    expect(sent.error.message).toContain("no database");
    await s.exited();
    expect(s.messages.filter((m) => m.type === "ready")).toEqual([]);
  });

  it("serves a fastapi_endpoint where FastAPI is installed, and says it is missing where it is not", async () => {
    const hasFastapi = spawnSync(PYTHON, ["-c", "import fastapi"], { env: { ...process.env, ...PYTHON_ENV } }).status === 0;
    const s = await start("fastapi_hello");
    if (!hasFastapi) {
      const sent = await s.waitFor("init_error", () => s.messages.find((m) => m.type === "init_error"));
      expect(sent.error).toMatchObject({ type: "ImportError", message: FASTAPI_MISSING });
      await s.exited();
      return;
    }
    await s.ready();
    const answer = await s.fetch("wr-fastapi", { method: "POST", path: "/", query: "name=Ada" });
    expect(answer.response).toMatchObject({ status: 200 });
    expect(json(answer)).toEqual({ hello: "Ada", thread: true });
    expect(s.logsOf("wr-fastapi").map((m) => m.line)).toEqual(["hello Ada"]);
    const wrongMethod = await s.fetch("wr-fastapi-get", { method: "GET", path: "/" });
    expect(wrongMethod.response).toMatchObject({ status: 405 });
    const noDocs = await s.fetch("wr-fastapi-docs", { path: "/docs" });
    expect(noDocs.response).toMatchObject({ status: 404 });
  });
});
