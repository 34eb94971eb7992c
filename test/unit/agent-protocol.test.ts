/**
 * The agent protocol conformance suite: the same cases for each runtime agent (Node and Python),
 * each run as a host process connected to a real SocketAgentEndpoint in a temp folder, with the
 * environment the daemon gives a container. No Docker. The fixture apps are
 * test/fixtures/agent-protocol/protocol-app.ts and protocol_app.py (twins: same functions).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleApp } from "../../cli/bundle-app.js";
import { SocketAgentEndpoint } from "../../daemon/api/agent-hub.js";
import { silentLogger } from "../../daemon/logger.js";
import type { AgentConnection } from "../../daemon/service/ports.js";
import { AGENT_PROTOCOL_VERSION, AgentEnv, agentToDaemonSchema, type AgentToDaemon, type DaemonToAgent } from "../../protocol/agent-messages.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = join(ROOT, "test/fixtures/agent-protocol");
const NODE_AGENT = join(ROOT, "runtime-images/node/dist/agent.cjs");
const PYTHON_AGENT = join(ROOT, "runtime-images/python/agent.py");
const PYTHON = "/usr/bin/python3";
const TOKEN = "agent-protocol-test-token";
/** How long any wait may take before the case fails (nothing here sleeps a fixed time). */
const DEADLINE_MS = 10_000;

type Output = Extract<AgentToDaemon, { type: "output" }>;
type Log = Extract<AgentToDaemon, { type: "log" }>;
type Exit = { code: number | null; signal: NodeJS.Signals | null };

// --- the agents under test -------------------------------------------------------------------

interface AgentUnderTest {
  name: string;
  /** What its `ready` message says as `runtime`. */
  runtime: RegExp;
  /** Whether its functions take keyword arguments (JavaScript functions answer a TypeError). */
  takesKwargs: boolean;
  /** The app file's name as its tracebacks show it. */
  appFile: string;
  /** Once per suite: checks the agent is there and prepares the fixture app. */
  prepare(): Promise<void>;
  /** Puts the app into `dir`; the command that runs the agent and the env that points it there. */
  launch(dir: string): { command: string; args: string[]; env: Record<string, string> };
}

let nodeBundle = "";
const nodeAgent: AgentUnderTest = {
  name: "node",
  runtime: /^node v\d+\.\d+\.\d+$/,
  takesKwargs: false,
  appFile: "app.mjs",
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

const pythonAgent: AgentUnderTest = {
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

// --- one agent process and its endpoint ------------------------------------------------------

/** An agent process connected to its own endpoint; records everything it sends. */
class AgentSession {
  readonly messages: AgentToDaemon[] = [];
  readonly invalid: unknown[] = [];
  stderr = "";
  exit: Exit | null = null;
  disconnected: string | null = null;
  private conn: AgentConnection | null = null;
  private readonly changed = new EventEmitter();

  private constructor(
    private readonly dir: string,
    private readonly endpoint: SocketAgentEndpoint,
    readonly child: ChildProcess,
  ) {
    endpoint.on("connected", (conn) => (this.conn = conn));
    endpoint.on("message", (msg) => {
      if (!agentToDaemonSchema.safeParse(msg).success) this.invalid.push(msg); // the endpoint checked it too
      // Outputs sent together count one by one, as the daemon takes them.
      if (msg.type === "outputs") this.messages.push(...msg.outputs.map((o) => ({ type: "output" as const, ...o })));
      else this.messages.push(msg);
      this.changed.emit("change");
    });
    endpoint.on("disconnected", (why) => {
      this.disconnected = why;
      this.changed.emit("change");
    });
    child.stderr!.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    child.stdout!.resume();
    child.on("exit", (code, signal) => {
      this.exit = { code, signal };
      this.changed.emit("change");
    });
  }

  static async start(agent: AgentUnderTest, fn: string, opts: { maxInputs?: number; env?: Record<string, string> } = {}): Promise<AgentSession> {
    const dir = mkdtempSync(join(tmpdir(), "gantry-agent-protocol-"));
    const endpoint = new SocketAgentEndpoint(join(dir, "ct"), TOKEN, silentLogger);
    await endpoint.listen(null);
    const { command, args, env } = agent.launch(dir);
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        [AgentEnv.socket]: join(dir, "ct", "agent.sock"),
        [AgentEnv.token]: TOKEN,
        [AgentEnv.appDir]: dir,
        [AgentEnv.app]: "agent-protocol",
        [AgentEnv.function]: fn,
        [AgentEnv.maxInputs]: String(opts.maxInputs ?? 1),
        [AgentEnv.containerId]: "ct-protocol-test",
        ...env,
        ...opts.env,
      },
    });
    const session = new AgentSession(dir, endpoint, child);
    live.push(session);
    return session;
  }

  /** Resolves with check()'s first defined answer, re-checked after each message, exit or disconnect. */
  waitFor<T>(what: string, check: () => T | undefined): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.changed.off("change", recheck);
        reject(new Error(`waited ${DEADLINE_MS} ms for ${what}\n${this.describe()}`));
      }, DEADLINE_MS);
      const recheck = () => {
        const value = check();
        if (value === undefined) return;
        clearTimeout(timer);
        this.changed.off("change", recheck);
        resolve(value);
      };
      this.changed.on("change", recheck);
      recheck();
    });
  }

  ready(): Promise<Extract<AgentToDaemon, { type: "ready" }>> {
    return this.waitFor("ready", () => this.messages.find((m) => m.type === "ready"));
  }

  send(msg: DaemonToAgent | { type: string }): void {
    if (!this.conn) throw new Error("the agent is not connected yet");
    this.conn.send(msg as DaemonToAgent);
  }

  input(callId: string, args: unknown[], kwargs?: Record<string, unknown>, attempt = 1): void {
    this.send({ type: "input", callId, attempt, args, ...(kwargs ? { kwargs } : {}) });
  }

  output(callId: string): Promise<Output> {
    return this.waitFor(`the output of ${callId}`, () => this.messages.find((m): m is Output => m.type === "output" && m.callId === callId));
  }

  /** Waits for ready, runs one input and waits for its output. */
  async call(callId: string, args: unknown[], kwargs?: Record<string, unknown>): Promise<Output> {
    await this.ready();
    this.input(callId, args, kwargs);
    return this.output(callId);
  }

  /** The log messages before `until` (all, if absent) tagged with callId. */
  logsOf(callId: string | undefined, until?: AgentToDaemon): Log[] {
    const end = until ? this.messages.indexOf(until) : this.messages.length;
    return this.messages.slice(0, end).filter((m): m is Log => m.type === "log" && m.callId === callId);
  }

  /** Waits for the endpoint to see the connection end; its reason, e.g. "agent connection closed (1000 shutdown)". */
  closed(): Promise<string> {
    return this.waitFor("the connection to close", () => this.disconnected ?? undefined);
  }

  exited(): Promise<Exit> {
    return this.waitFor("the agent process to exit", () => this.exit ?? undefined);
  }

  async stop(): Promise<void> {
    if (!this.exit) {
      this.child.kill("SIGKILL");
      await this.exited();
    }
    await this.endpoint.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private describe(): string {
    const sent = this.messages.slice(-20).map((m) => `  ${JSON.stringify(m).slice(0, 300)}`);
    return [
      `messages (last 20):`,
      ...sent,
      `disconnected: ${this.disconnected ?? "no"}; exit: ${this.exit ? JSON.stringify(this.exit) : "running"}`,
      `stderr: ${this.stderr.slice(-2000)}`,
    ].join("\n");
  }
}

let live: AgentSession[] = [];
afterEach(async () => {
  const sessions = live;
  live = [];
  await Promise.all(sessions.map((s) => s.stop()));
  for (const s of sessions) {
    expect(s.invalid).toEqual([]);
    expect(s.disconnected ?? "", "the endpoint refused a message from the agent").not.toMatch(/\(1008/);
  }
});

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

  it("closes with 1001 on SIGTERM", async () => {
    const s = await start("echo");
    await s.ready();
    s.child.kill("SIGTERM");
    expect(await s.exited()).toEqual({ code: 0, signal: null });
    expect(await s.closed()).toMatch(/\(1001 SIGTERM\)/);
  });
});
