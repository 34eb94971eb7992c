/**
 * Scales each function's containers. It plans a pool with the pure core (which queued call goes
 * to which slot, how many containers to start, which idle ones to stop), starts containers with
 * the GPUs they need, lets an idle container give its GPUs to a waiting call of another function,
 * and follows every container to its end, when its GPUs come back. What happens to calls is the
 * dispatcher's (`CallSide`).
 */
import { MAX_BATCH_MESSAGE_ITEMS } from "../../protocol/agent-messages.js";
import type { RemoteError } from "../../protocol/remote-error.js";
import { SystemErrorType } from "../../protocol/remote-error.js";
import { pickDonors, type GpuHolder } from "../core/gpu.js";
import { planPool } from "../core/scheduler.js";
import type { Logger } from "../logger.js";
import type { ContainerLauncher, LaunchHandlers } from "./container-launcher.js";
import type { ContainerEnd } from "./container-end.js";
import type { GpuBroker } from "./gpu-broker.js";
import { busySlots, type ContainerEntry, type FunctionPool, type Lease, type LiveCall } from "./pool.js";
import type { WebRequests } from "./web-requests.js";

/** What the scaler asks of the side that owns calls. */
export interface CallSide {
  /** Hands queued calls to free slots of a ready container (one message to its agent). */
  dispatch(pool: FunctionPool, c: ContainerEntry, calls: readonly LiveCall[]): void;
  onOutput: (pool: FunctionPool, c: ContainerEntry, msg: Parameters<LaunchHandlers["onOutput"]>[0]) => void;
  onItem: (pool: FunctionPool, c: ContainerEntry, msg: Parameters<LaunchHandlers["onItem"]>[0]) => void;
  onStarted: (pool: FunctionPool, c: ContainerEntry, msg: Parameters<LaunchHandlers["onStarted"]>[0]) => void;
  /** The container running this attempt went away without the function's doing: the call runs again. */
  lose(pool: FunctionPool, lease: Lease, reason: string): void;
  /** The container running this attempt failed it (out of memory, its process ended): retries apply. */
  failAttempt(pool: FunctionPool, lease: Lease, error: RemoteError): void;
  /** Prefetched inputs that never began, their container gone: queued again, nothing counted. */
  giveBack(pool: FunctionPool, leases: readonly Lease[]): void;
  /** Asks a draining container's agent to give back the prefetched inputs it has not begun. */
  withdraw(c: ContainerEntry): void;
  onWithdrawn: (pool: FunctionPool, c: ContainerEntry, msg: Parameters<LaunchHandlers["onWithdrawn"]>[0]) => void;
  /** Fails the pool's queued calls: they cannot run (no container starts, or no GPU ever fits). */
  failQueued(pool: FunctionPool, error: RemoteError): void;
  /** The container is gone: the inputs it was asked to stop need nothing more. */
  dropStopping(c: ContainerEntry): void;
}

export interface ScalerDeps {
  launcher: ContainerLauncher;
  gpus: GpuBroker;
  log: Logger;
  calls: CallSide;
  web: WebRequests;
  /** Every pool, for GPU donors. */
  pools: () => Iterable<FunctionPool>;
  /** A removed pool, or a class's variant nothing uses, has no containers and no calls left. */
  onPoolDone: (pool: FunctionPool) => void;
  clock?: () => number;
}

const START_BACKOFF_MAX_MS = 30_000;
/** Consecutive failed container starts after which a function's queued calls fail. */
const START_FAILURES_BEFORE_FAILING_CALLS = 3;

export class Scaler {
  private readonly now: () => number;
  private closing = false;

  constructor(private readonly d: ScalerDeps) {
    this.now = d.clock ?? Date.now;
    // GPUs came back: pools waiting for them plan again, longest waiting first.
    d.gpus.onRelease(() => {
      const waiting = [...d.pools()].filter((p) => p.gpuWaitSinceMs !== null).sort((a, b) => a.gpuWaitSinceMs! - b.gpuWaitSinceMs!);
      for (const p of waiting) this.pump(p);
    });
    // The engine came back: pools plan again (their calls waited, none failed for it).
    d.launcher.onEngineChange((up) => {
      if (!up) return;
      for (const p of d.pools()) {
        p.startBlockedUntilMs = 0;
        this.pump(p);
      }
    });
  }

  /**
   * Plans the pool once the event loop has read what it has (setImmediate): the calls submitted
   * and the outputs received in one turn are planned once, and each container gets the inputs
   * assigned to it in one message, rather than a message per request.
   */
  pump(pool: FunctionPool): void {
    if (pool.pumpScheduled || this.closing) return;
    pool.pumpScheduled = true;
    setImmediate(() => {
      pool.pumpScheduled = false;
      if (!this.closing) this.plan(pool);
    });
  }

  private plan(pool: FunctionPool): void {
    const now = this.now();
    const nextRetryAt = pool.releaseDelayed(now);
    // GPUs this machine no longer has (fewer than at deploy): calls fail rather than wait forever.
    const gpuPossible = !pool.gpu || this.d.gpus.everSatisfiable(pool.gpu);
    if (!gpuPossible && pool.queue.length) {
      const message = `function ${pool.app}.${pool.spec.name} asks for gpu ${this.d.gpus.unmet(pool.spec.gpu!)}`;
      this.d.calls.failQueued(pool, { type: SystemErrorType.gpuUnavailable, message, traceback: "" });
    }
    const plan = planPool(pool.view(now));
    const batches = new Map<string, LiveCall[]>();
    for (const containerId of plan.assign) {
      const c = pool.containers.get(containerId)!;
      if (pool.web.length) this.d.web.dispatch(pool, c, pool.web.shift()!);
      else {
        const batch = batches.get(containerId) ?? [];
        batch.push(pool.queue.shift()!);
        batches.set(containerId, batch);
      }
    }
    for (const [containerId, calls] of batches) {
      for (let i = 0; i < calls.length; i += MAX_BATCH_MESSAGE_ITEMS) {
        this.d.calls.dispatch(pool, pool.containers.get(containerId)!, calls.slice(i, i + MAX_BATCH_MESSAGE_ITEMS));
      }
    }
    let started = 0;
    const canStart = gpuPossible && this.d.launcher.engineUp;
    while (canStart && started < plan.start && this.start(pool)) started++;
    this.waitForGpus(pool, canStart && started < plan.start, now);
    for (const id of plan.stop) this.stop(pool, pool.containers.get(id)!, "idle for its scaledown window");
    const wake = [plan.wakeAtMs, nextRetryAt].filter((t): t is number => t !== null);
    if (pool.wakeTimer) clearTimeout(pool.wakeTimer);
    pool.wakeTimer = null;
    if (wake.length) {
      pool.wakeTimer = setTimeout(() => this.pump(pool), Math.max(0, Math.min(...wake) - now) + 5);
      pool.wakeTimer.unref();
    }
    if (pool.unused()) this.d.onPoolDone(pool);
  }

  /** Starts one container; false when the GPUs it needs are not free. */
  private start(pool: FunctionPool): boolean {
    const id = this.d.launcher.newContainerId();
    const gpus = pool.gpu ? this.d.gpus.acquire({ app: pool.app, function: pool.spec.name, containerId: id }, pool.gpu) : [];
    if (!gpus) return false;
    const c = this.d.launcher.launch(pool, { id, gpus, gpuAccess: gpus.length ? this.d.gpus.access(gpus) : null }, {
      onReady: () => {
        c.state = "ready";
        c.idleSinceMs = this.now();
        pool.startFailures = 0;
        pool.lastStartError = null;
        this.pump(pool);
      },
      onOutput: (msg) => this.d.calls.onOutput(pool, c, msg),
      onItem: (msg) => this.d.calls.onItem(pool, c, msg),
      onStarted: (msg) => this.d.calls.onStarted(pool, c, msg),
      onWithdrawn: (msg) => this.d.calls.onWithdrawn(pool, c, msg),
      onHttp: (msg) => this.d.web.onAgent(pool, c, msg),
      onGone: (end, duringStart) => this.onGone(pool, c, end, duringStart),
    });
    pool.containers.set(c.id, c);
    return true;
  }

  /**
   * A container the pool wants waits for GPUs. When calls are queued, idle containers of other
   * functions give theirs up (longest idle first; those keeping minContainers warm stay).
   */
  private waitForGpus(pool: FunctionPool, waiting: boolean, now: number): void {
    if (!waiting) {
      pool.gpuWaitSinceMs = null;
      return;
    }
    pool.gpuWaitSinceMs ??= now;
    if (pool.queue.length === 0) return;
    const donors = pickDonors(this.d.gpus.inventory, this.holders(pool), pool.gpu!) ?? [];
    for (const id of donors) {
      const owner = this.ownerOf(id);
      if (owner) this.stop(owner.pool, owner.c, `gave its GPUs to a waiting call of ${pool.key}`);
    }
  }

  private holders(except: FunctionPool): GpuHolder[] {
    const out: GpuHolder[] = [];
    for (const p of this.d.pools()) {
      if (p === except) continue;
      const cs = [...p.containers.values()];
      const live = cs.filter((c) => c.state === "starting" || c.state === "ready").length;
      const idle = cs.filter((c) => c.state === "ready" && busySlots(c) === 0).sort((a, b) => a.idleSinceMs! - b.idleSinceMs!);
      const donatable = new Set(idle.slice(0, Math.max(0, live - p.limits().minContainers)).map((c) => c.id));
      for (const c of cs) {
        if (!c.gpus.length) continue;
        out.push({
          containerId: c.id,
          uuids: c.gpus.map((g) => g.uuid),
          idleSinceMs: c.state === "ready" && busySlots(c) === 0 ? c.idleSinceMs : null,
          releasing: c.state === "stopping",
          donatable: donatable.has(c.id),
        });
      }
    }
    return out;
  }

  private ownerOf(containerId: string): { pool: FunctionPool; c: ContainerEntry } | null {
    for (const pool of this.d.pools()) {
      const c = pool.containers.get(containerId);
      if (c) return { pool, c };
    }
    return null;
  }

  /** A container of an older revision, or of a removed function: it takes no new calls, stops when idle. */
  retire(pool: FunctionPool, c: ContainerEntry, why = "superseded by a new deployment"): void {
    if (c.state === "starting") this.stop(pool, c, why);
    else if (c.state !== "stopping" && c.state !== "draining") {
      c.state = "draining";
      this.d.calls.withdraw(c); // its prefetched inputs run on a new container
    }
  }

  stop(pool: FunctionPool, c: ContainerEntry, why: string): void {
    if (c.state === "stopping") return;
    c.state = "stopping";
    c.exitReason = why;
    this.d.launcher.stop(pool, c, why);
  }

  /** Kills a running container (a timed-out or cancelled call); it takes no new calls meanwhile. */
  kill(pool: FunctionPool, c: ContainerEntry, why: string): void {
    c.exitReason ??= why;
    if (c.state !== "starting") c.state = "stopping";
    this.d.launcher.kill(pool, c, why);
  }

  /** The container exited or its agent went away: its GPUs come back, its slots are freed. */
  private onGone(pool: FunctionPool, c: ContainerEntry, end: ContainerEnd, duringStart: boolean): void {
    const reason = end.reason;
    this.d.gpus.release(c.id);
    if (!pool.containers.has(c.id)) return;
    pool.containers.delete(c.id);
    const all = [...c.leases.values()];
    // Prefetched inputs that never began had no part in it: they are given back.
    const leases = all.filter((l) => !l.waiting);
    // Its process ended while it ran one input alone: that input's doing. With others beside it (or
    // inputs still stopping), which one did it is unknown: each is lost and runs again, none blamed.
    const inputs = leases.length + c.stopping.size + c.requests.size;
    const alone = leases.length === 1 && inputs === 1;
    c.leases.clear();
    for (const lease of all) clearTimeout(lease.timer);
    this.d.calls.dropStopping(c);
    this.d.web.lose(pool, c, reason);
    // At shutdown the calls stay as stored (running, or queued for those given back); the next start's recover() runs them.
    if (this.closing) return;
    this.d.calls.giveBack(pool, all.filter((l) => l.waiting));
    for (const lease of leases) {
      if ((end.kind === "out_of_memory" || end.kind === "exited") && alone) this.d.calls.failAttempt(pool, lease, end.error);
      else this.d.calls.lose(pool, lease, `container ${c.id} went away: ${reason}${end.kind === "exited" || end.kind === "out_of_memory" ? ` (${end.error.type}; it ran ${inputs} inputs, so this one is run again)` : ""}`);
    }
    if (end.kind === "unavailable") {
      // Not the function's fault: starts wait (the engine to come back, or a moment) without failing calls.
      pool.startBlockedUntilMs = this.now() + START_BACKOFF_MAX_MS / 10;
      this.d.log.warn("a container could not be started; trying again", { fn: pool.key, reason });
    } else if (duringStart && end.kind !== "stopped") {
      pool.startFailures++;
      pool.lastStartError = c.initError ?? { type: SystemErrorType.containerStart, message: reason, traceback: "" };
      pool.startBlockedUntilMs = this.now() + Math.min(START_BACKOFF_MAX_MS, 1000 * 2 ** (pool.startFailures - 1));
      this.d.log.warn("container failed to start", { fn: pool.key, failures: pool.startFailures, reason });
      if (pool.startFailures >= START_FAILURES_BEFORE_FAILING_CALLS) {
        const cause = pool.lastStartError;
        this.d.calls.failQueued(pool, {
          type: cause.type,
          message: `no container of ${pool.key} could start (${pool.startFailures} tries): ${cause.message}`,
          traceback: cause.traceback,
        });
      }
    }
    this.pump(pool);
  }

  containers(): Array<{ pool: FunctionPool; c: ContainerEntry }> {
    const out: Array<{ pool: FunctionPool; c: ContainerEntry }> = [];
    for (const pool of this.d.pools()) for (const c of pool.containers.values()) out.push({ pool, c });
    return out;
  }

  /** Stops planning: no container starts or stops from now on but by shutdown(). */
  close(): void {
    this.closing = true;
    for (const pool of this.d.pools()) if (pool.wakeTimer) clearTimeout(pool.wakeTimer);
  }

  /** Removes every container (a class's after its @exit hooks); calls stay in the store for the next start. */
  async shutdown(): Promise<void> {
    this.close();
    const stops: Promise<void>[] = [];
    for (const { pool, c } of this.containers()) {
      for (const lease of c.leases.values()) clearTimeout(lease.timer);
      if (c.startupTimer) clearTimeout(c.startupTimer);
      c.state = "stopping";
      c.exitReason = "the daemon is shutting down";
      stops.push(this.d.launcher.stopNow(pool, c));
    }
    await Promise.allSettled(stops);
  }
}
