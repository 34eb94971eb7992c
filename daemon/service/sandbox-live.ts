/**
 * A sandbox the daemon runs (or ran, a while ago): its row, container, processes, activity and
 * the callers waiting for it to start or end.
 */
import { EventEmitter } from "node:events";
import { rmSync } from "node:fs";
import type { SandboxState, SandboxView } from "../../protocol/sandboxes.js";
import type { StoredSandbox } from "../store/sandbox-store.js";
import type { SandboxProcess } from "./sandbox-process.js";

export class LiveSandbox {
  dockerId: string | null = null;
  main: SandboxProcess | null = null;
  readonly execs = new Map<string, SandboxProcess>();
  readonly abort = new AbortController();
  readonly buildLog: string[] = [];
  deadline: NodeJS.Timeout | null = null;
  /** Open terminals attached to its processes: it is not idle while one is. */
  attachments = 0;
  private lastActivity: number;
  private readonly changes = new EventEmitter();
  private kept: SandboxProcess | null = null;

  constructor(
    readonly row: StoredSandbox,
    readonly dir: string,
    now: number,
  ) {
    this.lastActivity = now;
    this.changes.setMaxListeners(0);
  }

  get ended(): boolean {
    return this.row.state !== "pending" && this.row.state !== "running";
  }

  started(image: string, dockerId: string, at: number): void {
    Object.assign(this.row, { state: "running" as SandboxState, image, dockerId, startedAt: at });
    this.lastActivity = at; // idle from its start, not from its creation
    this.changes.emit("change");
  }

  finish(how: { state: SandboxState; returncode: number | null; error: string | null; timeoutKind: "timeout" | "idle" | null }, at: number): void {
    Object.assign(this.row, { ...how, endedAt: at });
    if (this.deadline) clearTimeout(this.deadline);
    this.changes.emit("change");
  }

  touch(now: number): void {
    this.lastActivity = now;
  }

  /** How long it has been idle: no exec running, no terminal attached, nothing written or touched. */
  idleSince(now: number): number {
    if (this.attachments > 0 || [...this.execs.values()].some((p) => p.running)) return 0;
    return now - this.lastActivity;
  }

  /** Keeps at most `max` execs: the oldest ended ones (and their output files) go first. */
  addExec(p: SandboxProcess, max: number): void {
    this.execs.set(p.id, p);
    for (const [id, old] of this.execs) {
      if (this.execs.size <= max) break;
      if (old.running) continue;
      this.execs.delete(id);
      rmSync(old.stdout.path, { force: true });
      rmSync(old.stderr.path, { force: true });
    }
  }

  /** The main process of a sandbox that never started (its files empty), made once. */
  keptMain(make: () => SandboxProcess): SandboxProcess | null {
    if (!this.ended) return null;
    return (this.kept ??= make());
  }

  waitFor(until: "ended" | "running", ms: number): Promise<void> {
    const done = () => this.ended || (until === "running" && this.row.state !== "pending");
    if (done() || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.changes.off("change", check);
        resolve();
      };
      const check = () => done() && finish();
      const timer = setTimeout(finish, ms);
      this.changes.on("change", check);
    });
  }

  view(): SandboxView {
    return LiveSandbox.viewOf(this.row, [...this.execs.values()].filter((p) => p.running).length);
  }

  static viewOf(r: StoredSandbox, runningExecs: number): SandboxView {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      id: r.id,
      app: r.app,
      name: r.name,
      state: r.state,
      returncode: r.returncode,
      error: r.error,
      timeout_kind: r.timeoutKind,
      command: r.definition.command ?? [],
      image: r.image,
      tags: r.tags,
      created_at: new Date(r.createdAt).toISOString(),
      started_at: iso(r.startedAt),
      ended_at: iso(r.endedAt),
      timeout: r.definition.timeout,
      idle_timeout: r.definition.idle_timeout ?? null,
      block_network: r.definition.block_network,
      pty: r.definition.pty,
      running_execs: runningExecs,
    };
  }
}
