/**
 * Sandboxes (issue 24): containers a program starts on demand, with commands exec'd into them.
 * Each is recorded (state, exit code, tags) in SQLite; its image is built as a function's; it
 * runs with the function containers' hardening (daemon/docker/sandbox-spec.ts); its processes'
 * output is kept in bounded files (sandbox-output.ts). The daemon enforces its timeout and idle
 * timeout. A sandbox does not outlive the daemon: at a restart those the last run left are
 * recorded as terminated (137), their containers having been removed with the other leftovers.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  ENDED_STATES,
  SANDBOX_LIMITS,
  TERMINATED_EXIT_CODE,
  TIMEOUT_EXIT_CODE,
  type SandboxCreateParsed,
  type SandboxExec,
  type SandboxState,
  type SandboxView,
} from "../../protocol/sandboxes.js";
import type { DeployEvent } from "../../protocol/api.js";
import type { Asset, ImageSpec } from "../../protocol/function-spec.js";
import type { VolumeMount } from "../../protocol/volumes.js";
import { makeId, type RandomSource } from "../core/ids.js";
import type { SandboxEngine } from "../docker/sandbox-engine.js";
import type { GpuAccess } from "../docker/types.js";
import type { Logger } from "../logger.js";
import type { SandboxStore, StoredSandbox } from "../store/sandbox-store.js";
import { invalid, notFound, ServiceError, ServiceErrorCode } from "./errors.js";
import { pooledRandom } from "./random-pool.js";
import { SandboxFiles } from "./sandbox-files.js";
import { SandboxProcess } from "./sandbox-process.js";
import { LiveSandbox } from "./sandbox-live.js";

/** Ended sandboxes (rows and output files) are forgotten this long after they end, or sooner with a shorter history window. */
export const SANDBOX_KEEP_MS = 24 * 3600_000;
const SWEEP_MS = 1000;
/** How long an ended process's output may take to reach its files before its end is recorded anyway. */
const OUTPUT_DRAIN_MS = 2000;

export interface SandboxDeps {
  store: SandboxStore;
  /** null: this backend cannot run sandboxes (why, in `unsupported`). */
  engine: SandboxEngine | null;
  unsupported?: string;
  /** Folder of the output files ($GANTRY_HOME/sandboxes). */
  dir: string;
  daemonId: string;
  user: { uid: number; gid: number };
  forceNetwork: "none" | null;
  /** Builds (or finds) the image; progress lines go to `log`. */
  buildImage(runtime: "node" | "python", image: ImageSpec, assets: Record<string, Asset>, emit: (e: DeployEvent) => void): Promise<string>;
  /** A deployed function's image, volumes, secrets and env (`gantry shell`); throws not found. */
  functionImage(app: string, fn: string): { image: string; volumes: VolumeMount[]; secrets: string[]; env: Record<string, string> };
  /** Checks volumes exist (making those asked to be) and gives their binds. */
  volumeBinds(app: string, mounts: VolumeMount[]): Promise<Array<{ hostPath: string; path: string; readOnly: boolean }>>;
  secretEnv(names: readonly string[]): Record<string, string>;
  secretExists(name: string): boolean;
  gpus: {
    check(what: string, gpu: readonly string[]): Promise<void>;
    /** Takes GPUs for the sandbox (waits while none are free); null when `signal` aborts first. */
    take(owner: string, app: string, gpu: string, signal: AbortSignal): Promise<{ access: GpuAccess; env: Record<string, string> } | null>;
    release(owner: string): void;
  };
  /** Kills and removes containers (the shared runtime). */
  runtime: { kill(dockerId: string): Promise<void>; remove(dockerId: string): Promise<void> };
  maxRunning?: number;
  /** Bytes kept of each stream of a process (SANDBOX_LIMITS.outputBytes). */
  outputBytes?: number;
  historyMs?: number;
  log: Logger;
  clock?: () => number;
  random?: RandomSource;
}

interface Ending {
  state: SandboxState;
  returncode: number | null;
  error: string | null;
  timeoutKind: "timeout" | "idle" | null;
}

export class Sandboxes {
  private readonly live = new Map<string, LiveSandbox>();
  private readonly now: () => number;
  private readonly random: RandomSource;
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly d: SandboxDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? pooledRandom();
    mkdirSync(d.dir, { recursive: true, mode: 0o700 });
  }

  /** Records sandboxes the last run left as terminated (their containers are gone), then sweeps timeouts and history. */
  start(): void {
    for (const s of this.d.store.open()) {
      this.d.store.markEnded(s.id, { state: "terminated", returncode: TERMINATED_EXIT_CODE, error: "the daemon restarted: sandboxes do not outlive it", timeoutKind: null }, this.now());
    }
    this.sweep = setInterval(() => this.tick(), SWEEP_MS);
    this.sweep.unref();
  }

  /** Ends every running sandbox (terminated, 137): the daemon is stopping. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    await Promise.all([...this.live.values()].filter((s) => !s.ended).map((s) => this.end(s, { state: "terminated", returncode: TERMINATED_EXIT_CODE, error: "the daemon stopped", timeoutKind: null })));
  }

  /** Throws not found unless sandbox `id` belongs to `app` (a function's container reaches its own app's only). */
  ofApp(id: string, app: string): void {
    const sb = this.liveOrRow(id);
    if ((sb instanceof LiveSandbox ? sb.row.app : sb.app) !== app) throw notFound(`no sandbox ${id}`);
  }

  create(def: SandboxCreateParsed & { app: string }): SandboxView {
    if (this.closed) throw new ServiceError(ServiceErrorCode.shuttingDown, "the daemon is stopping: no new sandboxes");
    if (!this.d.engine) throw invalid(this.d.unsupported ?? "this daemon cannot run sandboxes");
    const running = [...this.live.values()].filter((s) => !s.ended).length;
    const max = this.d.maxRunning ?? SANDBOX_LIMITS.runningSandboxes;
    if (running >= max) throw new ServiceError(ServiceErrorCode.limitExceeded, `${running} sandboxes are running, the most this daemon runs at once (GANTRY_MAX_SANDBOXES=${max}): terminate some first`);
    if (def.name && [...this.live.values()].some((s) => !s.ended && s.row.app === def.app && s.row.name === def.name)) {
      throw new ServiceError(ServiceErrorCode.conflict, `app ${def.app} already has a running sandbox named ${def.name}`);
    }
    this.secretEnv(def.secrets ?? []); // refuses a secret that does not exist, naming it
    const now = this.now();
    const row: StoredSandbox = {
      id: makeId("sb", now, this.random, 8),
      app: def.app,
      name: def.name ?? null,
      definition: { ...def, assets: undefined },
      image: null,
      state: "pending",
      returncode: null,
      error: null,
      timeoutKind: null,
      tags: def.tags ?? {},
      dockerId: null,
      createdAt: now,
      startedAt: null,
      endedAt: null,
    };
    this.d.store.insert(row);
    const dir = join(this.d.dir, row.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const sb = new LiveSandbox(row, dir, now);
    this.live.set(row.id, sb);
    void this.launch(sb, def).catch((err: Error) => this.end(sb, { state: "failed", returncode: null, error: err.message, timeoutKind: null }));
    this.d.log.info("sandbox created", { sandbox: row.id, app: row.app });
    return sb.view();
  }

  private async launch(sb: LiveSandbox, def: SandboxCreateParsed & { app: string }): Promise<void> {
    const engine = this.d.engine!;
    const from = def.from_function ? this.d.functionImage(def.from_function.app, def.from_function.function) : null;
    const image = from
      ? from.image
      : await this.d.buildImage(def.runtime, def.image ?? { base: { kind: def.runtime }, steps: [] }, def.assets ?? ({} as Record<string, Asset>), (e) => {
          if (e.type === "log") sb.buildLog.push(e.line);
        });
    const volumes = await this.d.volumeBinds(def.app, [...(from?.volumes ?? []), ...(def.volumes ?? [])]);
    const env = { ...(from?.env ?? {}), ...this.secretEnv([...(from?.secrets ?? []), ...(def.secrets ?? [])]), ...(def.env ?? {}) };
    if (def.gpu) await this.d.gpus.check(`sandbox ${sb.row.id}`, [def.gpu]);
    const gpu = def.gpu ? await this.d.gpus.take(sb.row.id, def.app, def.gpu, sb.abort.signal) : null;
    if (sb.ended) return;
    const main = this.newProcess(sb, "main", def.command ?? [], def.pty);
    const started = await engine.start({
      id: sb.row.id,
      daemonId: this.d.daemonId,
      app: def.app,
      image,
      command: def.command ?? [],
      env: { ...env, ...(gpu?.env ?? {}) },
      workdir: def.workdir ?? null,
      user: this.d.user,
      network: def.block_network || this.d.forceNetwork === "none" ? "none" : "bridge",
      cpu: def.cpu ?? null,
      memoryMiB: def.memory ?? null,
      pty: def.pty,
      volumes,
      gpu: gpu?.access ?? null,
    });
    sb.dockerId = started.dockerId;
    if (sb.ended) return void this.d.runtime.remove(started.dockerId).catch(() => undefined); // terminated while it started
    main.attach(started.main);
    sb.main = main;
    this.d.store.markStarted(sb.row.id, image, started.dockerId, this.now());
    sb.started(image, started.dockerId, this.now());
    // Its timeout counts from here: building its image (or waiting for a GPU) is not its lifetime.
    sb.deadline = setTimeout(() => void this.end(sb, timedOut("timeout", def.timeout)), def.timeout * 1000);
    sb.deadline.unref();
    void started.main.exited.then(async (code) => {
      await main.drained(OUTPUT_DRAIN_MS); // "finished" means its output is all readable
      const oom = code === 137 && (await started.oomKilled());
      void this.end(sb, { state: "finished", returncode: code, error: oom ? `the sandbox passed its memory limit of ${def.memory ?? "the default"} MiB and was killed` : null, timeoutKind: null });
    });
  }

  /** The secrets' environment; one that does not exist is refused, naming it. */
  private secretEnv(names: readonly string[]): Record<string, string> {
    const missing = names.find((n) => !this.d.secretExists(n));
    if (missing) throw invalid(`secret ${missing} does not exist: create it with gantry secret create ${missing} KEY=VALUE (or --from-dotenv FILE)`);
    return this.d.secretEnv(names);
  }

  private newProcess(sb: LiveSandbox, id: string, command: string[], pty: boolean): SandboxProcess {
    return new SandboxProcess(id, sb.row.id, command, pty, this.now(), { stdout: join(sb.dir, `${id}.stdout`), stderr: join(sb.dir, `${id}.stderr`) }, this.d.outputBytes ?? SANDBOX_LIMITS.outputBytes);
  }

  /** Ends a sandbox once: records how, kills its container and its execs, gives its GPUs back. */
  private async end(sb: LiveSandbox, how: Ending): Promise<void> {
    if (sb.ended) return;
    const at = this.now();
    sb.finish(how, at);
    sb.abort.abort();
    this.d.store.markEnded(sb.row.id, how, at);
    const code = how.returncode ?? -1;
    sb.main?.finish(code, at);
    for (const p of sb.execs.values()) p.finish(how.state === "finished" ? TERMINATED_EXIT_CODE : code, at);
    if (sb.dockerId) {
      await this.d.runtime.kill(sb.dockerId).catch(() => undefined);
      await this.d.runtime.remove(sb.dockerId).catch((err: Error) => this.d.log.warn("removing a sandbox's container failed", { sandbox: sb.row.id, err: err.message }));
    }
    this.d.gpus.release(sb.row.id);
    this.d.log.info("sandbox ended", { sandbox: sb.row.id, state: how.state, returncode: how.returncode, ...(how.error ? { why: how.error } : {}) });
  }

  terminate(id: string): SandboxView {
    const sb = this.liveOrRow(id);
    if (sb instanceof LiveSandbox && !sb.ended) void this.end(sb, { state: "terminated", returncode: TERMINATED_EXIT_CODE, error: "terminated", timeoutKind: null });
    return this.get(id);
  }

  /** Ends an app's running sandboxes (the app was stopped). */
  stopApp(app: string): void {
    for (const sb of this.live.values()) {
      if (sb.row.app === app && !sb.ended) void this.end(sb, { state: "terminated", returncode: TERMINATED_EXIT_CODE, error: `app ${app} was stopped`, timeoutKind: null });
    }
  }

  get(id: string): SandboxView {
    const sb = this.liveOrRow(id);
    return sb instanceof LiveSandbox ? sb.view() : LiveSandbox.viewOf(sb, 0);
  }

  list(q: { app?: string; tags?: Record<string, string>; running?: boolean; limit: number }): SandboxView[] {
    return this.d.store.list(q).map((row) => this.live.get(row.id)?.view() ?? LiveSandbox.viewOf(row, 0));
  }

  setTags(id: string, tags: Record<string, string>): SandboxView {
    const sb = this.liveOrRow(id);
    this.d.store.setTags(id, tags);
    if (sb instanceof LiveSandbox) sb.row.tags = tags;
    return this.get(id);
  }

  /** Waits up to `seconds` for the sandbox to end (or, with `until: "running"`, to leave pending). */
  async wait(id: string, seconds: number, until: "ended" | "running"): Promise<SandboxView> {
    const sb = this.live.get(id);
    if (sb) await sb.waitFor(until, seconds * 1000);
    return this.get(id);
  }

  // ── processes ───────────────────────────────────────────────────────────────────────────

  async exec(id: string, req: SandboxExec): Promise<SandboxProcess> {
    const sb = this.running(id);
    const runningExecs = [...sb.execs.values()].filter((p) => p.running).length;
    if (runningExecs >= SANDBOX_LIMITS.runningExecs) throw new ServiceError(ServiceErrorCode.limitExceeded, `sandbox ${id} runs ${runningExecs} execs, the most it may run at once: wait for some to end`);
    const env = { ...this.secretEnv(req.secrets ?? []), ...(req.env ?? {}) };
    const p = this.newProcess(sb, makeId("ex", this.now(), this.random, 8), req.command, req.pty ?? false);
    sb.addExec(p, SANDBOX_LIMITS.keptExecs);
    let running;
    try {
      running = await this.d.engine!.exec(sb.dockerId!, { command: req.command, workdir: req.workdir ?? null, env, user: `${this.d.user.uid}:${this.d.user.gid}`, pty: req.pty ?? false });
    } catch (err) {
      p.finish(-1, this.now());
      throw new ServiceError(ServiceErrorCode.conflict, `exec in sandbox ${id} failed: ${(err as Error).message}`);
    }
    p.attach(running.proc);
    p.kill = running.kill;
    sb.touch(this.now());
    const timer = req.timeout ? setTimeout(() => void running.kill().then(() => p.finish(TIMEOUT_EXIT_CODE, this.now())), req.timeout * 1000) : null;
    timer?.unref();
    void running.proc.exited.then(async (code) => {
      if (timer) clearTimeout(timer);
      await p.drained(OUTPUT_DRAIN_MS);
      p.finish(code, this.now());
      sb.touch(this.now());
    });
    return p;
  }

  process(id: string, proc: string): SandboxProcess {
    const sb = this.liveOrRow(id);
    if (!(sb instanceof LiveSandbox)) {
      if (proc !== "main") throw notFound(`sandbox ${id} has ended and its execs are no longer kept (the daemon restarted since)`);
      return this.keptMain(sb);
    }
    const p = proc === "main" ? (sb.main ?? sb.keptMain(() => this.keptMain(sb.row))) : sb.execs.get(proc);
    if (!p) throw notFound(proc === "main" ? `sandbox ${id} has not started yet (state ${sb.row.state})` : `sandbox ${id} has no exec ${proc}`);
    return p;
  }

  /** The main process of a sandbox known only from its row (its output files, closed). */
  private keptMain(row: StoredSandbox): SandboxProcess {
    const dir = join(this.d.dir, row.id);
    const p = new SandboxProcess("main", row.id, row.definition.command ?? [], row.definition.pty ?? false, row.startedAt ?? row.createdAt, { stdout: join(dir, "main.stdout"), stderr: join(dir, "main.stderr") }, SANDBOX_LIMITS.outputBytes, true);
    p.finish(row.returncode ?? -1, row.endedAt ?? row.createdAt);
    return p;
  }

  async processWait(id: string, proc: string, seconds: number): Promise<SandboxProcess> {
    const p = this.process(id, proc);
    await p.waitEnd(seconds * 1000);
    return p;
  }

  async writeStdin(id: string, proc: string, bytes: Buffer, eof: boolean): Promise<number> {
    const p = this.process(id, proc);
    this.live.get(id)?.touch(this.now());
    return p.writeStdin(bytes, eof);
  }

  /** Files inside the running sandbox, through helper execs as its user. */
  files(id: string): SandboxFiles {
    const sb = this.running(id);
    sb.touch(this.now());
    return new SandboxFiles((command) => {
      sb.touch(this.now());
      return this.d.engine!.exec(sb.dockerId!, { command, workdir: null, env: {}, user: `${this.d.user.uid}:${this.d.user.gid}`, pty: false });
    });
  }

  /** An attached terminal counts as activity while it is open. */
  attached(id: string, open: boolean): void {
    const sb = this.live.get(id);
    if (!sb) return;
    sb.attachments += open ? 1 : -1;
    sb.touch(this.now());
  }

  /** Containers of running sandboxes (the leftover sweep keeps them). */
  containerIds(): string[] {
    return [...this.live.values()].filter((s) => !s.ended).map((s) => s.row.id);
  }

  private running(id: string): LiveSandbox {
    const sb = this.liveOrRow(id);
    if (!(sb instanceof LiveSandbox) || sb.ended) throw new ServiceError(ServiceErrorCode.conflict, `sandbox ${id} has ended (${sb instanceof LiveSandbox ? sb.row.state : sb.state})`);
    if (!sb.main || !sb.dockerId) throw new ServiceError(ServiceErrorCode.conflict, `sandbox ${id} is still starting: wait until it runs`);
    return sb;
  }

  private liveOrRow(id: string): LiveSandbox | StoredSandbox {
    const sb = this.live.get(id) ?? this.d.store.get(id);
    if (!sb) throw notFound(`no sandbox ${id}`);
    return sb;
  }

  /** Idle timeouts, and forgetting ended sandboxes past the keep window. */
  private tick(): void {
    const now = this.now();
    for (const sb of this.live.values()) {
      const idle = sb.row.definition.idle_timeout;
      if (sb.row.state === "running" && idle && sb.idleSince(now) >= idle * 1000) void this.end(sb, timedOut("idle", idle));
    }
    const keep = Math.min(SANDBOX_KEEP_MS, this.d.historyMs ?? SANDBOX_KEEP_MS);
    for (const id of this.d.store.endedBefore(now - keep, 100)) {
      this.d.store.remove(id);
      this.live.delete(id);
      rmSync(join(this.d.dir, id), { recursive: true, force: true });
    }
    // Ended sandboxes stay in memory a while (their execs' output); the store answers after that.
    for (const sb of this.live.values()) if (sb.ended && now - (sb.row.endedAt ?? now) > 3600_000) this.live.delete(sb.row.id);
  }
}

function timedOut(kind: "timeout" | "idle", seconds: number): Ending {
  const error = kind === "idle" ? `idle for ${seconds} s (its idle_timeout)` : `ran past its timeout of ${seconds} s`;
  return { state: "timed_out", returncode: TIMEOUT_EXIT_CODE, error, timeoutKind: kind };
}

export const isEnded = (state: SandboxState) => ENDED_STATES.has(state);
