import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { AgentEnv, type AgentToDaemon } from "../../protocol/agent-messages.js";
import type { RemoteError } from "../../protocol/remote-error.js";
import type { FunctionSpec } from "../../protocol/function-spec.js";
import { makeId, type RandomSource } from "../core/ids.js";
import { CODE_DIR_IN_CONTAINER } from "../docker/image-plan.js";
import type { Gpu } from "../core/gpu.js";
import { EngineUnreachableError, type ContainerExit, type ContainerRuntime, type GpuAccess } from "../docker/types.js";
import { isDiskFull } from "../store/group-commit.js";
import { classifyEnd, type ContainerEnd } from "./container-end.js";
import type { ContainerIdentity } from "../host/container-user.js";
import type { Logger } from "../logger.js";
import type { EventBus } from "./event-bus.js";
import type { AgentEndpointFactory } from "./ports.js";
import { pooledRandom } from "./random-pool.js";
import type { ContainerEntry, FunctionPool } from "./pool.js";

/** How long a class's container has for its @exit hooks when it is stopped (Modal's grace). */
const CLASS_EXIT_GRACE_S = 30;

export interface LaunchHandlers {
  onReady(): void;
  onOutput(msg: Extract<AgentToDaemon, { type: "output" }>): void;
  /** An item a generator call yielded. */
  onItem(msg: Extract<AgentToDaemon, { type: "item" }>): void;
  /** A prefetched input has begun (issue 25). */
  onStarted(msg: { callId: string; attempt: number }): void;
  /** A prefetched input was given back unbegun, as asked (its container drains). */
  onWithdrawn(msg: { callId: string; attempt: number }): void;
  /** The agent's answer to a web request (head, body chunk, or error). */
  onHttp(msg: Extract<AgentToDaemon, { type: "http_response" | "http_body" | "http_error" }>): void;
  /** Called once, when the container is gone (how, and whose doing); duringStart: it never became ready. */
  onGone(end: ContainerEnd, duringStart: boolean): void;
}

/** One container to start: its id, and the GPUs it holds with how they reach it. */
export interface ContainerToLaunch {
  id: string;
  gpus: Gpu[];
  gpuAccess: { gpu: GpuAccess; env: Record<string, string> } | null;
}

export interface LauncherDeps {
  runtime: ContainerRuntime;
  /** Opens each container's private agent endpoint (daemon/api/agent-hub.ts). */
  agents: AgentEndpointFactory;
  bus: EventBus;
  log: Logger;
  daemonId: string;
  agentSocketsDir: string;
  /** Who functions run as (a uid no host account has, checked at start: daemon/host/container-user.ts). */
  containerUser: ContainerIdentity;
  forceNetwork: "none" | null;
  /** The volumes a function's containers mount (their host folders). */
  volumeBinds?: (spec: FunctionSpec) => Array<{ name: string; hostPath: string; path: string; readOnly: boolean }>;
  /** The environment a function's secrets give its containers (throws, naming one that is gone). */
  secretEnv?: (names: readonly string[]) => Record<string, string>;
  clock?: () => number;
  random?: RandomSource;
}

/**
 * Starts one container for a pool and follows it to its end: private agent socket and token,
 * `docker create/start`, the startup deadline, the agent's messages, exit and clean-up.
 */
export class ContainerLauncher {
  private readonly now: () => number;
  private readonly random: RandomSource;

  constructor(private readonly d: LauncherDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? pooledRandom();
  }

  /** Whether the engine answers: while it does not, no container is started. */
  get engineUp(): boolean {
    return this.d.runtime.engine.down === null;
  }

  /** Hears the engine go down and come back. */
  onEngineChange(listener: (up: boolean) => void): void {
    this.d.runtime.engine.onChange(listener);
  }

  /** A new container id (`ct-…`), known before launch so that GPUs can be taken in its name. */
  newContainerId(): string {
    return makeId("ct", this.now(), this.random, 8);
  }

  launch(pool: FunctionPool, l: ContainerToLaunch, h: LaunchHandlers): ContainerEntry {
    const now = this.now();
    const c: ContainerEntry = {
      id: l.id,
      dockerId: null,
      state: "starting",
      revision: pool.revision,
      leases: new Map(),
      stopping: new Map(),
      requests: new Map(),
      idleSinceMs: null,
      lastUsedMs: now,
      startedAtMs: now,
      endpoint: null,
      conn: null,
      startupTimer: null,
      exitReason: null,
      initError: null,
      created: Promise.resolve(null),
      gpus: l.gpus,
    };
    let created!: (dockerId: string | null) => void;
    c.created = new Promise((resolve) => (created = resolve));
    this.event(pool, c, "starting", l.gpus.length ? `GPUs ${l.gpus.map((g) => g.index).join(", ")}` : undefined);
    void this.follow(pool, c, l.gpuAccess, h, created);
    return c;
  }

  private async follow(
    pool: FunctionPool,
    c: ContainerEntry,
    gpu: ContainerToLaunch["gpuAccess"],
    h: LaunchHandlers,
    created: (dockerId: string | null) => void,
  ): Promise<void> {
    const spec = pool.spec;
    const token = randomBytes(24).toString("hex");
    /** Why the container failed (startup deadline, init error, agent gone), when it did. */
    let failure: string | null = null;
    let gone = false;
    const finish = async (end: ContainerEnd) => {
      if (gone) return;
      gone = true;
      const duringStart = c.state === "starting";
      if (c.startupTimer) clearTimeout(c.startupTimer);
      if (duringStart && c.dockerId && !c.initError && end.kind === "failed_to_start") {
        const tail = (await this.d.runtime.logsTail(c.dockerId, 20).catch(() => "")).trim();
        if (tail) end = { ...end, reason: `${end.reason}; last output:\n${tail}` };
      }
      if (c.dockerId) await this.removeWhenUp(c.dockerId);
      await c.endpoint?.close().catch(() => undefined);
      const failed = end.kind === "failed_to_start" || end.kind === "unavailable" || (duringStart && end.kind === "out_of_memory");
      this.event(pool, c, failed ? "failed" : "stopped", end.reason);
      h.onGone(end, duringStart);
    };
    try {
      const volumes = this.d.volumeBinds?.(spec) ?? [];
      const mounts = volumes.map((v) => ({ name: v.name, readOnly: v.readOnly }));
      const endpoint = this.d.agents({ id: c.id, socketDir: join(this.d.agentSocketsDir, c.id), app: pool.app, volumes: mounts }, token);
      c.endpoint = endpoint;
      endpoint.on("connected", (conn) => (c.conn = conn));
      endpoint.on("message", (msg) => {
        // Ready too late: the startup deadline passed and the container is being killed; it takes no call.
        if (msg.type === "ready" && failure !== null) return;
        this.onMessage(pool, c, msg, h);
      });
      endpoint.on("disconnected", (why) => {
        if (!gone && c.dockerId) this.killQuietly(c.dockerId);
        if (c.initError) failure = `${c.initError.type}: ${c.initError.message}`;
        else if (c.state !== "stopping") failure ??= why;
      });
      await endpoint.listen(this.d.containerUser.socketOwner);
      c.startupTimer = setTimeout(() => {
        if (c.state !== "starting") return; // ready in the same turn: the timer lost the race
        failure = `the container did not become ready within its startupTimeout of ${spec.startupTimeoutMs / 1000} s`;
        if (c.dockerId) this.killQuietly(c.dockerId);
      }, spec.startupTimeoutMs);
      c.startupTimer.unref();
      c.dockerId = await this.d.runtime.start({
        containerId: c.id,
        daemonId: this.d.daemonId,
        app: pool.app,
        function: spec.name,
        image: pool.image,
        env: {
          ...spec.env,
          // Read as the container is created: a secret changed later rolls the containers.
          ...this.d.secretEnv?.(spec.secrets ?? []),
          // Which GPUs it has; "void" keeps an image's NVIDIA_VISIBLE_DEVICES=all from exposing every GPU.
          ...(gpu?.env ?? { NVIDIA_VISIBLE_DEVICES: "void" }),
          [AgentEnv.token]: token,
          // How it reaches the daemon: the mounted socket, or the daemon's advertised address.
          ...endpoint.agentEnv,
          [AgentEnv.module]: pool.runtime === "node" ? `${CODE_DIR_IN_CONTAINER}/${pool.module}` : pool.module,
          [AgentEnv.appDir]: CODE_DIR_IN_CONTAINER,
          [AgentEnv.app]: pool.app,
          [AgentEnv.function]: spec.name,
          [AgentEnv.maxInputs]: String(spec.maxInputs),
          [AgentEnv.containerId]: c.id,
          ...(pool.params() ? { [AgentEnv.clsParams]: JSON.stringify(pool.params()) } : {}),
          ...(volumes.length ? { [AgentEnv.volumes]: JSON.stringify(Object.fromEntries(volumes.map((v) => [v.name, v.path]))) } : {}),
        },
        volumes,
        socketDir: endpoint.socketDir,
        codeDir: pool.bundleDir,
        network: this.d.forceNetwork ?? spec.network,
        user: this.d.containerUser.user,
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        gpu: gpu?.gpu ?? null,
      });
      created(c.dockerId);
      if (c.state === "stopping") this.killQuietly(c.dockerId); // stopped before its agent came: nothing to finish
      else if (failure) this.killQuietly(c.dockerId); // the startup deadline passed during create
      const { exit, engineRestarted } = await this.waitExit(c.dockerId);
      const duringStart = c.state === "starting";
      await finish(
        classifyEnd({ containerId: c.id, stoppedBy: c.exitReason, failure, exit, engineRestarted, duringStart, memoryMiB: spec.memoryMiB }),
      );
    } catch (err) {
      created(c.dockerId);
      const reason = `could not start a container: ${(err as Error).message}`;
      // Not the function's fault: no Docker engine answering, or no disk left for its socket folder.
      const unavailable = err instanceof EngineUnreachableError || isDiskFull(err);
      await finish(c.exitReason ? { kind: "stopped", reason: c.exitReason } : { kind: unavailable ? "unavailable" : "failed_to_start", reason });
    }
  }

  /** Kills a container whose end follow() handles: a kill that fails (the engine away) changes nothing it would not find. */
  private killQuietly(dockerId: string): void {
    this.d.runtime.kill(dockerId).catch((err) => this.d.log.warn("kill failed", { docker_id: dockerId, err: (err as Error).message }));
  }

  /** Runs an engine call; when the engine does not answer, waits for it to come back and runs it again. */
  private async whenEngineAnswers<T>(step: () => Promise<T>, onAway: () => void = () => undefined): Promise<T> {
    for (;;) {
      try {
        return await step();
      } catch (err) {
        if (!(err instanceof EngineUnreachableError)) throw err;
        onAway();
        await this.d.runtime.engine.whenUp();
      }
    }
  }

  /** Waits for the container's end; when the engine goes away meanwhile, waits for it and asks again. */
  private async waitExit(dockerId: string): Promise<{ exit: ContainerExit; engineRestarted: boolean }> {
    let engineRestarted = false;
    const exit = await this.whenEngineAnswers(() => this.d.runtime.waitExit(dockerId), () => (engineRestarted = true));
    return { exit, engineRestarted };
  }

  /** Removes an ended container, once the engine answers (it may be restarting). */
  private async removeWhenUp(dockerId: string): Promise<void> {
    await this.whenEngineAnswers(() => this.d.runtime.remove(dockerId)).catch((err) => this.d.log.warn("remove failed", { container: dockerId, err }));
  }

  private onMessage(pool: FunctionPool, c: ContainerEntry, msg: AgentToDaemon, h: LaunchHandlers): void {
    switch (msg.type) {
      case "ready":
        if (c.state !== "starting") return;
        if (c.startupTimer) clearTimeout(c.startupTimer);
        c.startupTimer = null;
        this.event(pool, c, "ready", msg.runtime);
        h.onReady();
        return;
      case "init_error":
        c.initError = msg.error as RemoteError;
        return;
      case "output":
        h.onOutput(msg);
        return;
      case "outputs":
        for (const ref of msg.started ?? []) h.onStarted(ref);
        for (const ref of msg.withdrawn ?? []) h.onWithdrawn(ref);
        for (const out of msg.outputs) h.onOutput({ type: "output", ...out });
        return;
      case "item":
        h.onItem(msg);
        return;
      case "http_response":
      case "http_body":
      case "http_error":
        h.onHttp(msg);
        return;
      case "log":
        this.d.bus.publish({
          type: "log",
          app: pool.app,
          function: pool.spec.name,
          container_id: c.id,
          ...(msg.callId ? { call_id: msg.callId } : {}),
          stream: msg.stream,
          line: msg.line,
          ts: new Date(this.now()).toISOString(),
        });
        return;
    }
  }

  /** Asks the agent to finish and the container to stop; the exit is handled by follow(). */
  stop(pool: FunctionPool, c: ContainerEntry, why: string): void {
    if (!c.conn) return this.kill(pool, c, why); // no agent yet: nothing to finish gracefully
    c.conn.send({ type: "shutdown" });
    // A class's @exit hooks get 30 s (Modal's grace); a function's agent has nothing to finish.
    const grace = pool.spec.cls ? CLASS_EXIT_GRACE_S : 5;
    if (c.dockerId) void this.d.runtime.stop(c.dockerId, grace).catch((e) => this.d.log.warn("stop failed", { container: c.id, err: e }));
  }

  kill(_pool: FunctionPool, c: ContainerEntry, _why: string): void {
    if (c.dockerId) this.killQuietly(c.dockerId);
  }

  /**
   * At shutdown: remove the container (waiting for Docker to create it, if it is) and close its
   * socket. A class's container first gets its @exit hooks run, within the 30 s grace; others go at once.
   */
  async stopNow(pool: FunctionPool, c: ContainerEntry): Promise<void> {
    const dockerId = c.dockerId ?? (await c.created);
    if (dockerId && pool.spec.cls && c.conn) {
      c.conn.send({ type: "shutdown" });
      await this.d.runtime.stop(dockerId, CLASS_EXIT_GRACE_S).catch((e) => this.d.log.warn("stop failed", { container: c.id, err: e }));
    }
    if (dockerId) await this.d.runtime.remove(dockerId).catch(() => undefined);
    await c.endpoint?.close().catch(() => undefined);
  }

  private event(pool: FunctionPool, c: ContainerEntry, status: "starting" | "ready" | "stopping" | "stopped" | "failed", detail?: string): void {
    this.d.bus.publish({
      type: "container.status",
      container_id: c.id,
      app: pool.app,
      function: pool.spec.name,
      status,
      ...(detail ? { detail } : {}),
      ts: new Date(this.now()).toISOString(),
    });
  }
}
