/**
 * The agent protocol conformance suite: the same cases for each runtime agent (Node and Python),
 * each run as a host process connected to a real SocketAgentEndpoint in a temp folder, with the
 * environment the daemon gives a container. No Docker. The fixture apps are
 * test/fixtures/agent-protocol/protocol-app.ts and protocol_app.py (twins: same functions).
 */
import { copyFileSync, existsSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TcpAgentHub } from "../../daemon/api/agent-hub.js";
import { silentLogger } from "../../daemon/logger.js";
import { bundleApp } from "../../cli/bundle-app.js";
import { AGENT_PROTOCOL_VERSION, AgentEnv, type AgentToDaemon } from "../../protocol/agent-messages.js";
import { AgentSession, DEADLINE_MS, stopAgentSessions, type AgentUnderTest, type Output } from "../helpers/agent-session.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = join(ROOT, "test/fixtures/agent-protocol");
const NODE_AGENT = join(ROOT, "runtime-images/node/dist/agent.cjs");
const PYTHON_AGENT = join(ROOT, "runtime-images/python/agent.py");
const PYTHON = "/usr/bin/python3";

// --- the agents under test -------------------------------------------------------------------

interface CallAgent extends AgentUnderTest {
  /** What its `ready` message says as `runtime`. */
  runtime: RegExp;
  /** Whether its functions take keyword arguments (JavaScript functions answer a TypeError). */
  takesKwargs: boolean;
}

let nodeBundle = "";
const nodeAgent: CallAgent = {
  name: "node",
  runtime: /^node v\d+\.\d+\.\d+$/,
  takesKwargs: false,
  appFile: "protocol-app.ts", // the bundle's source map names the app file, not app.mjs
  async prepare() {
    const source = join(ROOT, "runtime-images/node/agent.ts");
    if (!existsSync(NODE_AGENT) || statSync(NODE_AGENT).mtimeMs < statSync(source).mtimeMs) {
      throw new Error(`${NODE_AGENT} is missing or older than agent.ts: run npm run build`);
    }
    nodeBundle = (await bundleApp(join(FIXTURES, "protocol-app.ts"))).bundle;
  },
  launch(dir) {
    const module = join(dir, "app.mjs");
    writeFileSync(module, nodeBundle);
    return { command: process.execPath, args: [NODE_AGENT], env: { [AgentEnv.module]: module } };
  },
};

const pythonAgent: CallAgent = {
  name: "python",
  runtime: /^python 3\.\d+\.\d+$/,
  takesKwargs: true,
  appFile: "protocol_app.py",
  async prepare() {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: the Python agent's cases need Debian's python3`);
  },
  launch(dir) {
    copyFileSync(join(FIXTURES, "protocol_app.py"), join(dir, "protocol_app.py"));
    return {
      command: PYTHON,
      args: [PYTHON_AGENT],
      env: { [AgentEnv.module]: "protocol_app", PYTHONPATH: join(ROOT, "python"), PYTHONDONTWRITEBYTECODE: "1" },
    };
  },
};

// --- one agent process and its endpoint: test/helpers/agent-session.ts -----------------------

afterEach(stopAgentSessions);

// --- the cases -------------------------------------------------------------------------------

describe.each([nodeAgent, pythonAgent])("the $name agent", { timeout: 2 * DEADLINE_MS }, (agent) => {
  beforeAll(() => agent.prepare());
  const start = (fn: string, opts?: { maxInputs?: number; env?: Record<string, string> }) => AgentSession.start(agent, fn, opts);

  it("says ready with protocol 1 and a runtime string", async () => {
    const s = await start("echo");
    expect(await s.ready()).toEqual({ type: "ready", protocol: AGENT_PROTOCOL_VERSION, runtime: expect.stringMatching(agent.runtime), functionName: "echo" });
    expect(AGENT_PROTOCOL_VERSION).toBe(1);
  });

  it("returns an echo's argument, with the call's ID and attempt", async () => {
    const s = await start("echo");
    const value = { text: "héllo ✓", list: [1, 2.5, null, true, "two"], nested: { deep: [{}] } };
    await s.ready();
    s.input("fc-echo", [value], undefined, 3);
    expect(await s.output("fc-echo")).toEqual({ type: "output", callId: "fc-echo", attempt: 3, ok: true, value });
  });

  it("takes several inputs in one message and answers each (outputs may come together)", async () => {
    const s = await start("echo", { maxInputs: 5 });
    await s.ready();
    const inputs = [0, 1, 2, 3, 4].map((i) => ({ callId: `fc-many-${i}`, attempt: 1, args: [{ i }] }));
    s.send({ type: "inputs", inputs });
    for (const i of [0, 1, 2, 3, 4]) expect(await s.output(`fc-many-${i}`)).toEqual({ type: "output", callId: `fc-many-${i}`, attempt: 1, ok: true, value: { i } });
  });

  it("passes kwargs to a Python function; a JavaScript function refuses them with a TypeError naming them", async () => {
    const s = await start("greet");
    const out = await s.call("fc-greet", ["Ada"], { greeting: "hi" });
    if (agent.takesKwargs) {
      expect(out).toEqual({ type: "output", callId: "fc-greet", attempt: 1, ok: true, value: "hi, Ada" });
    } else {
      expect(out).toMatchObject({ ok: false, error: { type: "TypeError", message: expect.stringContaining("greeting") } });
    }
  });

  it("returns an exception with its type, message and a traceback naming the user's function", async () => {
    const s = await start("boom");
    const out = await s.call("fc-boom", ["it broke"]);
    expect(out).toMatchObject({ type: "output", callId: "fc-boom", attempt: 1, ok: false, error: { type: "ValueError", message: "it broke" } });
    const { traceback } = (out as Extract<Output, { ok: false }>).error;
    expect(traceback).toContain("boom");
    expect(traceback).toContain(agent.appFile);
    // The agent's own frames (and Node's or importlib's internals) are left out: it ends in the user's code.
    expect(traceback).not.toMatch(/agent\.(cjs|py)|node:internal|importlib/);
  });

  it("fails a call whose return value is not JSON with a TypeError", async () => {
    const s = await start("not_json");
    const out = await s.call("fc-not-json", []);
    expect(out).toMatchObject({ ok: false, error: { type: "TypeError", message: expect.stringMatching(/not JSON-serialisable/) } });
  });

  it.each(["chatty", "chatty_async"])("sends %s's stdout and stderr lines as log messages tagged with the call, before its output", async (fn) => {
    const s = await start(fn);
    const out = await s.call("fc-chatty", [3]);
    expect(out).toMatchObject({ ok: true, value: 3 });
    const line = (stream: "stdout" | "stderr", text: string) => ({ type: "log", stream, line: text, callId: "fc-chatty" });
    expect(s.logsOf("fc-chatty", out)).toEqual([line("stdout", "line 0"), line("stdout", "line 1"), line("stdout", "line 2"), line("stderr", "to stderr")]);
  });

  it.each(["rendezvous_sync", "rendezvous_async"])("runs two calls of %s at once with max_inputs=2", async (fn) => {
    const s = await start(fn, { maxInputs: 2 });
    await s.ready();
    s.input("fc-a", ["a", DEADLINE_MS / 2000]);
    s.input("fc-b", ["b", DEADLINE_MS / 2000]);
    const [a, b] = await Promise.all([s.output("fc-a"), s.output("fc-b")]);
    expect(a).toMatchObject({ ok: true, value: "a" });
    expect(b).toMatchObject({ ok: true, value: "b" });
    expect(s.logsOf("fc-a").map((m) => m.line)).toEqual(["a arrived", "a met"]);
    expect(s.logsOf("fc-b").map((m) => m.line)).toEqual(["b arrived", "b met"]);
  });

  it.each(["stoppable", "stoppable_async"])("stops one input of %s when the daemon asks, while its neighbour runs on; a late cancel changes nothing", async (fn) => {
    const s = await start(fn, { maxInputs: 2 });
    await s.ready();
    s.send({ type: "inputs", inputs: [{ callId: "fc-long", attempt: 1, args: ["long", 60] }, { callId: "fc-short", attempt: 1, args: ["short", 1] }] });
    await s.logLine("fc-long", "long started");
    s.send({ type: "cancel", callId: "fc-long", attempt: 1, reason: "the call was cancelled" });
    const stopped = await s.output("fc-long");
    // Node: the signal's reason; Python: InputCancellation in a plain def, the task cancelled for an async def.
    const expected = agent.name === "python" && fn === "stoppable_async" ? "CancelledError" : "InputCancellation";
    expect(stopped).toMatchObject({ callId: "fc-long", ok: false, error: { type: expected } });
    expect(await s.output("fc-short")).toMatchObject({ callId: "fc-short", ok: true, value: "short" });
    s.send({ type: "cancel", callId: "fc-short", attempt: 1, reason: "too late" });
    s.input("fc-next", ["next", 0]);
    expect(await s.output("fc-next")).toMatchObject({ ok: true, value: "next" });
  });

  it("holds a prefetched input until a slot frees, says started as it begins, and ends one cancelled before it began at once", async () => {
    const s = await start("stoppable", { maxInputs: 1 });
    await s.ready();
    s.input("fc-first", ["first", 60]);
    await s.logLine("fc-first", "first started");
    s.send({ type: "inputs", inputs: ["second", "third"].map((label) => ({ callId: `fc-${label}`, attempt: 1, args: [label, 0], queued: true })) });
    s.send({ type: "cancel", callId: "fc-third", attempt: 1, reason: "the call was cancelled" });
    expect(await s.output("fc-third")).toMatchObject({ ok: false, error: { type: "InputCancellation", message: expect.stringMatching(/before it began/) } });
    const started = () => s.messages.filter((m) => m.type === "started").map((m) => (m as { callId: string }).callId);
    expect(started()).toEqual([]); // fc-second waits: the only slot is fc-first's
    expect(s.logsOf("fc-second")).toEqual([]);
    s.send({ type: "cancel", callId: "fc-first", attempt: 1, reason: "make room" });
    expect(await s.output("fc-second")).toMatchObject({ ok: true, value: "second" });
    expect(started()).toEqual(["fc-second"]);
    const order = s.messages.map((m) => `${m.type}:${(m as { callId?: string }).callId ?? ""}`);
    expect(order.indexOf("started:fc-second")).toBeLessThan(order.indexOf("output:fc-second"));
  });

  it("gives back prefetched inputs that have not begun when the daemon asks, and ignores one that began or that it does not know", async () => {
    const s = await start("stoppable", { maxInputs: 1 });
    await s.ready();
    s.input("fc-first", ["first", 60]);
    await s.logLine("fc-first", "first started");
    s.send({ type: "inputs", inputs: ["second", "third"].map((label) => ({ callId: `fc-${label}`, attempt: 1, args: [label, 0], queued: true })) });
    s.send({ type: "withdraw", inputs: [{ callId: "fc-second", attempt: 1 }, { callId: "fc-first", attempt: 1 }, { callId: "fc-unknown", attempt: 1 }] });
    const back = await s.waitFor("fc-second withdrawn", () => s.messages.find((m) => m.type === "withdrawn" && m.callId === "fc-second"));
    expect(back).toEqual({ type: "withdrawn", callId: "fc-second", attempt: 1 });
    s.send({ type: "cancel", callId: "fc-first", attempt: 1, reason: "make room" });
    expect(await s.output("fc-third")).toMatchObject({ ok: true, value: "third" });
    expect(await s.output("fc-first")).toMatchObject({ ok: false });
    const started = s.messages.filter((m) => m.type === "started").map((m) => (m as { callId: string }).callId);
    expect(started).toEqual(["fc-third"]); // fc-second never began
    expect(s.messages.filter((m) => m.type === "withdrawn")).toHaveLength(1); // the one that ran, and the unknown one, are not given back
    expect(s.logsOf("fc-second")).toEqual([]);
  });

  it("fails an input nested too deeply for its runtime with a clear error, and runs the next one", async () => {
    const s = await start("echo");
    await s.ready();
    let deep: unknown = [];
    for (let i = 0; i < 1500; i++) deep = [deep]; // past Python's ~1,000, within what the test can stringify
    s.input("fc-deep", [deep]);
    const out = await s.output("fc-deep");
    // Python's decoder recurses (RecursionError past ~1,000 levels); Node decodes it, but will not
    // send back a value deeper than the daemon takes. Either way that input fails, nothing else does.
    const why = agent.name === "python" ? /could not be decoded by the agent: it is nested too deeply/ : /return value of echo is JSON nested deeper than the limit of 512/;
    expect(out).toMatchObject({ ok: false, error: { message: expect.stringMatching(why) } });
    expect(await s.call("fc-after", ["fine"])).toMatchObject({ ok: true, value: "fine" });
  });

  it("sends init_error with the traceback when the module raises at import, and exits", async () => {
    const s = await start("echo", { env: { PROTOCOL_APP_BREAK: "1" } });
    const sent = await s.waitFor("init_error", () => s.messages.find((m) => m.type === "init_error"));
    expect(sent).toMatchObject({ error: { type: "RuntimeError", message: "this module refuses to load" } });
    expect(sent.error.traceback).toContain("explode_at_import");
    expect(sent.error.traceback).toContain(agent.appFile);
    await s.exited();
    expect(s.messages.filter((m) => m.type === "ready")).toEqual([]);
  });

  it("ignores a message outside the protocol, saying so on stderr", async () => {
    const s = await start("echo");
    await s.ready();
    s.send({ type: "no-such-message" });
    await s.waitFor("a stderr line about the message", () => s.logsOf(undefined).find((m) => m.stream === "stderr" && /ignoring a malformed message/.test(m.line)));
    expect(await s.call("fc-after", ["still here"])).toMatchObject({ ok: true, value: "still here" });
  });

  it("exits with code 0 on shutdown", async () => {
    const s = await start("echo");
    await s.ready();
    s.send({ type: "shutdown" });
    expect(await s.exited()).toEqual({ code: 0, signal: null });
    expect(await s.closed()).toMatch(/\(1000/);
  });

  it("closes with 1001 on SIGTERM and exits 143, as the signal would", async () => {
    const s = await start("echo");
    await s.ready();
    s.child.kill("SIGTERM");
    // 143 = 128 + SIGTERM: the daemon tells a container stopped from outside from one whose function exited.
    expect(await s.exited()).toEqual({ code: 143, signal: null });
    expect(await s.closed()).toMatch(/\(1001 SIGTERM\)/);
  });
});

describe("the node agent's input signal", { timeout: 2 * DEADLINE_MS }, () => {
  beforeAll(() => nodeAgent.prepare());

  it("is made when the function first reads it, and is aborted by a cancel that came before", async () => {
    const s = await AgentSession.start(nodeAgent, "late_signal", { maxInputs: 2 });
    await s.ready();
    s.input("fc-late", []);
    await s.logLine("fc-late", "parked");
    s.send({ type: "cancel", callId: "fc-late", attempt: 1, reason: "the call was cancelled" });
    // Messages are handled in order: the cancel has reached the parked input before the second one releases it.
    s.input("fc-release", []);
    expect(await s.output("fc-release")).toMatchObject({ ok: true, value: "released" });
    expect(await s.output("fc-late")).toMatchObject({
      ok: true,
      value: { aborted: true, reason: "InputCancellation", message: "the input was asked to stop: the call was cancelled" },
    });
  });

  it("is not aborted for an input nobody asked to stop", async () => {
    const s = await AgentSession.start(nodeAgent, "late_signal", { maxInputs: 2 });
    await s.ready();
    s.input("fc-late", []);
    await s.logLine("fc-late", "parked");
    s.input("fc-release", []);
    expect(await s.output("fc-late")).toMatchObject({ ok: true, value: { aborted: false, reason: null } });
  });
});

describe.each([nodeAgent, pythonAgent])("the $name agent across a cluster (TCP)", { timeout: 2 * DEADLINE_MS }, (agent) => {
  let hub: TcpAgentHub;
  beforeAll(async () => {
    await agent.prepare();
    // Pings every 500 ms: a call that waits sees several, and an agent busy loading its app under a loaded CI machine is not taken for gone.
    hub = new TcpAgentHub({ advertise: { host: "127.0.0.1", port: 0 }, log: silentLogger, api: null, pingMs: 500 });
    await hub.listen();
  });
  afterAll(() => hub.close());

  it("dials the daemon's advertised address with its container's name and token, and runs calls", async () => {
    const s = await AgentSession.start(agent, "echo", { tcp: hub });
    expect(await s.ready()).toMatchObject({ type: "ready", functionName: "echo" });
    expect(await s.call("fc-tcp", [{ over: "tcp" }])).toEqual({ type: "output", callId: "fc-tcp", attempt: 1, ok: true, value: { over: "tcp" } });
  });

  it("answers the daemon's pings while a call waits, so it is not taken for gone", async () => {
    const s = await AgentSession.start(agent, "rendezvous_sync", { tcp: hub });
    await s.ready();
    // A call that waits 3 s for a partner who never comes: six pings go by meanwhile, past the hub's
    // limit of three missed (1.5 s) had the agent not answered them.
    s.input("fc-alone", ["alone", 3]);
    expect(await s.output("fc-alone")).toMatchObject({ ok: false });
    expect(s.disconnected).toBeNull(); // the pings were answered while the call waited
  });
});

describe("the TCP hub", () => {
  it("refuses an agent with another container's token, or none", async () => {
    const hub = new TcpAgentHub({ advertise: { host: "127.0.0.1", port: 0 }, log: silentLogger, api: null });
    await hub.listen();
    try {
      const a = hub.factory({ id: "ct-a", socketDir: "/nonexistent", app: "a" }, "token-a");
      await a.listen(null);
      const tryDial = (headers: Record<string, string>) =>
        new Promise<number>((resolve) => {
          const ws = new WebSocket(`${hub.wsUrl}/agent`, { headers });
          ws.once("open", () => (ws.close(), resolve(101)));
          ws.once("unexpected-response", (_req, res) => resolve(res.statusCode!));
          ws.once("error", () => resolve(-1));
        });
      expect(await tryDial({ authorization: "Bearer token-b", "x-gantry-container": "ct-a" })).toBe(401);
      expect(await tryDial({ "x-gantry-container": "ct-a" })).toBe(401);
      expect(await tryDial({ authorization: "Bearer token-a", "x-gantry-container": "ct-b" })).toBe(401);
      expect(await tryDial({ authorization: "Bearer token-a", "x-gantry-container": "ct-a" })).toBe(101);
      const plain = await fetch(`${hub.httpUrl}/v1/health`, { headers: { authorization: "Bearer token-a" } });
      expect(plain.status).toBe(401); // no container API on this hub
      await a.close();
    } finally {
      await hub.close();
    }
  });
});
