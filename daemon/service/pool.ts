import type { FunctionSpec, Runtime } from "../../protocol/function-spec.js";
import { parseGpuRequest, type Gpu, type GpuRequest } from "../core/gpu.js";
import type { CallInput, OpenCall } from "../store/call-store.js";
import { prefetchDepth, type ContainerSlots, type PoolLimits, type PoolView, type SlotState } from "../core/scheduler.js";
import type { AgentConnection, AgentEndpoint } from "./ports.js";
import type { RemoteError } from "../../protocol/remote-error.js";
import type { RunningMark } from "./running-marks.js";
import { CallQueue } from "./call-queue.js";
import { defaultParams, hasRequiredParams, variantSpec, type ParamValue, type Variant } from "../../protocol/cls-variant.js";

/**
 * A call the daemon is responsible for (queued or running). Finished calls live in the store only.
 * `input` is null while the call waits far back in a long queue (or after a restart): it is read
 * from the store when the call is dispatched, so that queued calls do not all hold their arguments.
 */
export type LiveCall = Pick<OpenCall, "id" | "app" | "function" | "status" | "attempt" | "runAt" | "containerId" | "createdAt" | "startedAt" | "lost"> & {
  input: CallInput | null;
  /** Its "running" mark in the store, written once it has run a while (see RunningMarks). */
  runningMark: RunningMark | null;
  /** A generator call: the items its running attempt sent so far. */
  items?: number;
  /** A class's call with parameters or options: the key of its pool within the class (absent: the class's own). */
  variant?: string;
  /** The GPUs the container running its attempt holds (set at dispatch), and the GPU-seconds its ended attempts used. */
  gpus?: number;
  gpuSeconds?: number;
  /** Lets go of the hold its submit put on the log's sync (see syncHoldMs), once its end is committed. */
  syncHold?: () => void;
};

/** One attempt occupying a container slot. */
export interface Lease {
  call: LiveCall;
  attempt: number;
  /** Its timeout; undefined while it waits, prefetched, for a slot (the agent's `started` sets it). */
  timer: NodeJS.Timeout | undefined;
  /** Prefetched and not begun yet (issue 25). */
  waiting?: boolean;
}

/** What the HTTP side of one web request offers the service: the head, the body, the answer. */
export interface WebExchange {
  readonly method: string;
  /** The path below the endpoint's prefix, starting with "/". */
  readonly path: string;
  readonly rootPath: string;
  readonly query: string;
  readonly headers: Array<[string, string]>;
  readonly client: [string, number] | null;
  /** The request's body as it arrives. */
  readonly body: AsyncIterable<Buffer>;
  respond(status: number, headers: Array<[string, string]>): void;
  write(chunk: Buffer): void;
  end(): void;
  /** Answers with a JSON error, or breaks the connection when the answer has begun. */
  fail(status: number, code: string, message: string, error?: RemoteError): void;
  /** Called once when the client goes away before the answer ended. */
  onClose(listener: () => void): void;
}

/** One HTTP request to a web endpoint: queued in its pool, then occupying a container slot. */
export interface WebRequest {
  id: string;
  exchange: WebExchange;
  /** A class's web endpoint method that answers it; null for a web endpoint function. */
  target: string | null;
  containerId: string | null;
  timer: NodeJS.Timeout | null;
  /** The agent has sent the response's head. */
  responded: boolean;
  done: boolean;
}

export interface ContainerEntry {
  id: string;
  dockerId: string | null;
  state: SlotState;
  /** The deployment (bundle + spec hash) this container runs. */
  revision: string;
  leases: Map<string, Lease>;
  /**
   * Inputs the agent was asked to stop (cancelled, timed out, their app stopped), by
   * `stoppingKey`: their calls have ended, but each keeps its slot until the agent answers for it
   * (the function really stopped), or the container is replaced past the grace.
   */
  stopping: Map<string, Lease>;
  /** Web requests it is answering (they take slots like calls). */
  requests: Map<string, WebRequest>;
  idleSinceMs: number | null;
  lastUsedMs: number;
  startedAtMs: number;
  endpoint: AgentEndpoint | null;
  conn: AgentConnection | null;
  startupTimer: NodeJS.Timeout | null;
  /** Why the container is going away, once it is. */
  exitReason: string | null;
  initError: RemoteError | null;
  /** Settles once Docker has created and started the container (its id), or failed to (null). */
  created: Promise<string | null>;
  /** The GPUs it holds until it is gone ([] for CPU functions). */
  gpus: Gpu[];
}

/** What a deployment sets on a pool; a new revision replaces it. */
export interface PoolDeployment {
  spec: FunctionSpec;
  image: string;
  bundleDir: string;
  /** Changes whenever code, image or options change: containers of an older revision drain. */
  revision: string;
  runtime: Runtime;
  /** What the agent loads: the bundle's file (node) or the module's name (python). */
  module: string;
}

/** Calls and web requests a container is running: its busy slots. */
export function busySlots(c: ContainerEntry): number {
  return c.leases.size + c.stopping.size + c.requests.size;
}

/** Inputs sent ahead to the container (prefetched) that have not begun: each waits there for a slot. */
export function waitingLeases(c: ContainerEntry): number {
  let waiting = 0;
  for (const l of c.leases.values()) if (l.waiting) waiting++;
  return waiting;
}

/** Slots running something now (prefetched inputs that wait are not counted). */
export function runningSlots(c: ContainerEntry): number {
  return busySlots(c) - waitingLeases(c);
}

/** A stopping input's key: a call's next attempt may run beside its stopping one. */
export const stoppingKey = (callId: string, attempt: number): string => `${callId}#${attempt}`;

/** The dispatcher's key of a pool: the function's, and the variant's within a class. */
export function poolKey(app: string, fn: string, variant?: string | null): string {
  return variant == null ? `${app}/${fn}` : `${app}/${fn}#${variant}`;
}

/** One deployed function: its queue, its delayed retries and its containers. */
export class FunctionPool {
  readonly queue = new CallQueue();
  /** Web requests waiting for a slot, oldest first. */
  readonly web: WebRequest[] = [];
  /** Retries waiting for their backoff, ordered by runAt. */
  readonly delayed: LiveCall[] = [];
  readonly containers = new Map<string, ContainerEntry>();
  startFailures = 0;
  startBlockedUntilMs = 0;
  lastStartError: RemoteError | null = null;
  wakeTimer: NodeJS.Timeout | null = null;
  pumpScheduled = false;
  removed = false;
  /** Why it was removed (its queued calls were cancelled with this reason). */
  removedWhy: string | null = null;
  spec!: FunctionSpec;
  /** The deployment as it came (a variant's options not applied): a class's variants are made from it. */
  deployment!: PoolDeployment;
  image!: string;
  bundleDir!: string;
  revision!: string;
  runtime!: Runtime;
  module!: string;
  /** The GPU request and its fallbacks; null for CPU functions. */
  gpu: GpuRequest[] | null = null;
  /** Since when a container it wants waits for GPUs; null when none does. */
  gpuWaitSinceMs: number | null = null;
  /** How long its calls ran lately (a moving average, ms); null before the first. */
  callMs: number | null = null;

  constructor(
    readonly app: string,
    deployment: PoolDeployment,
    /** A class's pool for one parameter set and options (`Model(size=2)`); null for a function's or a class's own pool. */
    readonly variant: { key: string; variant: Variant } | null = null,
  ) {
    this.deploy(deployment);
  }

  /** Takes a deployment; a variant's options apply over it (throws when they no longer fit it). */
  deploy(d: PoolDeployment): void {
    this.deployment = d;
    this.spec = this.variant ? variantSpec(d.spec, this.variant.variant.options) : d.spec;
    this.image = d.image;
    this.bundleDir = d.bundleDir;
    this.revision = d.revision;
    this.runtime = d.runtime;
    this.module = d.module;
    this.gpu = this.spec.gpu ? this.spec.gpu.map(parseGpuRequest) : null;
  }

  get key(): string {
    return poolKey(this.app, this.spec.name, this.variant?.key ?? null);
  }

  /** The parameters its containers' class instances get: its variant's, else the declared defaults. */
  params(): Record<string, ParamValue> | null {
    if (!this.spec.cls?.params?.length) return null;
    return this.variant?.variant.params ?? defaultParams(this.spec.cls.params);
  }

  /** A variant nothing uses any longer (no calls, no containers, none kept warm): dropped until a call names it again. */
  unused(): boolean {
    const idle = this.containers.size === 0 && this.queue.length === 0 && this.delayed.length === 0 && this.web.length === 0;
    return idle && (this.removed || (this.variant !== null && this.limits().minContainers === 0 && this.limits().bufferContainers === 0));
  }

  /** Whether a new call would begin at once: nothing queued, and a ready container with a free slot. */
  beginsAtOnce(): boolean {
    if (this.queue.length > 0) return false;
    for (const c of this.containers.values()) if (c.state === "ready" && busySlots(c) < this.spec.maxInputs) return true;
    return false;
  }

  /** Notes how long a call ran (the moving average prefetch looks at). */
  noteCallMs(ms: number): void {
    this.callMs = this.callMs === null ? ms : this.callMs * 0.9 + ms * 0.1;
  }

  /** Inputs a container may hold beyond its slots: for short calls only, and never web requests. */
  private prefetch(): number {
    if (this.web.length || this.spec.web) return 0;
    return prefetchDepth(this.spec.maxInputs, this.callMs);
  }

  limits(): PoolLimits {
    const s = this.spec;
    // A class's own pool cannot warm containers when a parameter has no default: no instance could be made.
    const cold = this.removed || (this.variant === null && hasRequiredParams(s));
    return {
      maxContainers: s.maxContainers,
      minContainers: cold ? 0 : s.minContainers,
      bufferContainers: cold ? 0 : s.bufferContainers,
      maxInputs: s.maxInputs,
      scaledownWindowMs: s.scaledownWindowMs,
      prefetch: this.prefetch(),
    };
  }

  /** Moves retries whose backoff has passed into the queue; returns the next runAt, if any. */
  releaseDelayed(nowMs: number): number | null {
    let due = 0;
    while (due < this.delayed.length && this.delayed[due]!.runAt <= nowMs) due++;
    for (const call of this.delayed.splice(0, due)) this.queue.push(call); // one splice: linear
    return this.delayed.length ? this.delayed[0]!.runAt : null;
  }

  addDelayed(call: LiveCall): void {
    const last = this.delayed.at(-1);
    if (!last || last.runAt <= call.runAt) {
      this.delayed.push(call); // the usual case (recovery reads calls in time order): no search
      return;
    }
    const i = this.delayed.findIndex((c) => c.runAt > call.runAt);
    if (i < 0) this.delayed.push(call);
    else this.delayed.splice(i, 0, call);
  }

  /** Removes a waiting call from the queue or the delayed list; true when it was there. */
  unqueue(callId: string): boolean {
    if (this.queue.remove(callId)) return true;
    const i = this.delayed.findIndex((c) => c.id === callId);
    if (i < 0) return false;
    this.delayed.splice(i, 1);
    return true;
  }

  view(nowMs: number): PoolView {
    const containers: ContainerSlots[] = [...this.containers.values()].map((c) => ({
      id: c.id,
      state: c.state,
      active: busySlots(c),
      idleSinceMs: c.idleSinceMs,
      lastUsedMs: c.lastUsedMs,
    }));
    return {
      limits: this.limits(),
      queued: this.queue.length + this.web.length,
      containers,
      startBlockedUntilMs: this.startBlockedUntilMs,
      nowMs,
    };
  }
}
