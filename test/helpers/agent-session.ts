/**
 * One runtime agent (Node or Python) as a host process connected to a real SocketAgentEndpoint in
 * a temp folder, with the environment the daemon gives a container: the test plays the daemon's
 * side. Shared by the agent protocol suites (calls, web endpoints). No Docker.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { SocketAgentEndpoint, type TcpAgentHub } from "../../daemon/api/agent-hub.js";
import { silentLogger } from "../../daemon/logger.js";
import type { AgentConnection, AgentEndpoint } from "../../daemon/service/ports.js";
import { AgentEnv, agentToDaemonSchema, type AgentToDaemon, type DaemonToAgent } from "../../protocol/agent-messages.js";

/** How long any wait may take before the case fails (nothing here sleeps a fixed time). */
export const DEADLINE_MS = 10_000;
const TOKEN = "agent-protocol-test-token";

export type Output = Extract<AgentToDaemon, { type: "output" }>;
export type Log = Extract<AgentToDaemon, { type: "log" }>;
export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** An agent under test: how to prepare its fixture app and run it. */
export interface AgentUnderTest {
  name: string;
  /** The app file's name as its tracebacks show it. */
  appFile: string;
  /** Once per suite: checks the agent is there and prepares the fixture app. */
  prepare(): Promise<void>;
  /** Puts the app into `dir`; the command that runs the agent and the env that points it there. */
  launch(dir: string): { command: string; args: string[]; env: Record<string, string> };
}

export interface StartOptions {
  maxInputs?: number;
  env?: Record<string, string>;
  /** The app name the agent is told (GANTRY_APP). */
  app?: string;
  /** Dial this TCP hub (as across a Swarm cluster) instead of a unix socket of its own. */
  tcp?: TcpAgentHub;
}

let live: AgentSession[] = [];
let started = 0;

/** An agent process connected to its own endpoint; records everything it sends. */
export class AgentSession {
  /** What the agent sent, an `outputs` message as its `started` inputs, its `withdrawn` ones, then its outputs, one by one. */
  readonly messages: Array<AgentToDaemon | { type: "started" | "withdrawn"; callId: string; attempt: number }> = [];
  readonly invalid: unknown[] = [];
  stderr = "";
  exit: Exit | null = null;
  disconnected: string | null = null;
  private conn: AgentConnection | null = null;
  private readonly changed = new EventEmitter();

  /** Use start(). */
  constructor(
    private readonly dir: string,
    private readonly endpoint: AgentEndpoint,
    readonly child: ChildProcess,
  ) {
    endpoint.on("connected", (conn) => (this.conn = conn));
    endpoint.on("message", (msg) => {
      if (!agentToDaemonSchema.safeParse(msg).success) this.invalid.push(msg); // the endpoint checked it too
      // Outputs sent together count one by one, as the daemon takes them.
      // As the daemon reads one: its `started` first, then its outputs.
      if (msg.type === "outputs") {
        this.messages.push(...(msg.started ?? []).map((r) => ({ type: "started" as const, ...r })));
        this.messages.push(...(msg.withdrawn ?? []).map((r) => ({ type: "withdrawn" as const, ...r })));
        this.messages.push(...msg.outputs.map((o) => ({ type: "output" as const, ...o })));
      }
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

  /** Starts the agent for function `fn` (a session of this class, or of a subclass when called on one). */
  static async start<S extends AgentSession>(
    this: new (dir: string, endpoint: AgentEndpoint, child: ChildProcess) => S,
    agent: AgentUnderTest,
    fn: string,
    opts: StartOptions = {},
  ): Promise<S> {
    const dir = mkdtempSync(join(tmpdir(), "gantry-agent-test-"));
    const containerId = `ct-protocol-test-${++started}`;
    const endpoint = opts.tcp ? opts.tcp.factory({ id: containerId, socketDir: join(dir, "ct"), app: "conformance" }, TOKEN) : new SocketAgentEndpoint(join(dir, "ct"), TOKEN, silentLogger);
    await endpoint.listen(null);
    const { command, args, env } = agent.launch(dir);
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        ...(opts.tcp ? endpoint.agentEnv : { [AgentEnv.socket]: join(dir, "ct", "agent.sock") }),
        [AgentEnv.token]: TOKEN,
        [AgentEnv.appDir]: dir,
        [AgentEnv.app]: opts.app ?? "agent-protocol",
        [AgentEnv.function]: fn,
        [AgentEnv.maxInputs]: String(opts.maxInputs ?? 1),
        [AgentEnv.containerId]: containerId,
        ...env,
        ...opts.env,
      },
    });
    const session = new this(dir, endpoint, child);
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

  logLine(callId: string | undefined, line: string | RegExp): Promise<Log> {
    return this.waitFor(`the log line ${String(line)}`, () => this.logsOf(callId).find((m) => (typeof line === "string" ? m.line === line : line.test(m.line))));
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

/**
 * For afterEach: stops every session started since the last call, then checks each sent only
 * valid messages and was never cut off by the endpoint for a bad one.
 */
export async function stopAgentSessions(): Promise<void> {
  const sessions = live;
  live = [];
  await Promise.all(sessions.map((s) => s.stop()));
  for (const s of sessions) {
    expect(s.invalid).toEqual([]);
    expect(s.disconnected ?? "", "the endpoint refused a message from the agent").not.toMatch(/\(1008/);
  }
}
