/**
 * The dispatcher owns the deployed functions' pools and the live calls: it queues submitted calls,
 * hands them to container slots the scaler offers, and turns what agents and the scaler report
 * into call events. What an event does to a call (state machine, commit, publish) is
 * CallOutcomes'; containers (starting, stopping, GPUs) are the scaler's.
 */
import type { FunctionLiveView } from "../../protocol/api.js";
import type { AgentInput, DaemonToAgent } from "../../protocol/agent-messages.js";
import { DEFAULTS } from "../../protocol/function-spec.js";
import { SystemErrorType, type RemoteError } from "../../protocol/remote-error.js";
import { CallStatus, transition, type CallEvent } from "../core/call-state.js";
import { CallIds, type RandomSource } from "../core/ids.js";
import { syncHoldMs } from "../core/scheduler.js";
import type { Logger } from "../logger.js";
import { storedValue, type CallInput, type CallStore } from "../store/call-store.js";
import { fromStore, invalid, notFound, ServiceError, ServiceErrorCode } from "./errors.js";
import type { EventBus } from "./event-bus.js";
import { pooledRandom } from "./random-pool.js";
import { describeVariant, PARAM_LIMITS, paramsFromQuery, resolveVariant, streamsItems, VariantError } from "../../protocol/cls-variant.js";
import { runningSlots, busySlots, waitingLeases, FunctionPool, poolKey, type ContainerEntry, type Lease, type LiveCall, type PoolDeployment } from "./pool.js";
import type { ContainerLauncher } from "./container-launcher.js";
import type { GpuBroker } from "./gpu-broker.js";
import { Scaler, type CallSide } from "./scaler.js";
import { RunningMarks } from "./running-marks.js";
import { CallOutcomes } from "./call-outcomes.js";
import { WebRequests, type WebRoute } from "./web-requests.js";
import { InputStops } from "./input-stops.js";
import { PrefetchedInputs } from "./prefetched.js";

export interface DeployedFunction extends PoolDeployment {
  app: string;
}

export interface DispatcherDeps {
  calls: CallStore;
  launcher: ContainerLauncher;
  gpus: GpuBroker;
  bus: EventBus;
  log: Logger;
  clock?: () => number;
  random?: RandomSource;
  maxQueuedPerFunction: number;
  /** The largest web request body (as for a call's input). */
  maxBodyBytes: number;
  /** How long an input asked to stop (cancelled, timed out) may take before its container is replaced; default 30 s. */
  cancelGraceMs?: number;
}

/** Calls at the head of a queue keep their arguments in memory; those behind read them at dispatch. */
const INPUTS_KEPT_PER_QUEUE = 10_000;

export class Dispatcher implements CallSide {
  private readonly pools = new Map<string, FunctionPool>();
  private readonly live = new Map<string, LiveCall>();
  private readonly stoppedApps = new Set<string>();
  private readonly now: () => number;
  private readonly random: RandomSource;
  private readonly callIds: CallIds;
  private readonly scaler: Scaler;
  private readonly marks: RunningMarks;
  /** What each event does to a call: committed, then published. */
  private readonly outcomes: CallOutcomes;
  /** Requests to web endpoints: they wait and run in the same pools and slots as calls. */
  readonly web: WebRequests;
  /** Inputs asked to stop, holding their slots until they have (input-stops.ts). */
  private readonly stops: InputStops;
  private readonly prefetched: PrefetchedInputs;
  private closing = false;

  constructor(private readonly d: DispatcherDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? pooledRandom();
    this.callIds = new CallIds(this.random);
    this.marks = new RunningMarks({
      calls: d.calls,
      clock: this.now,
      onMarked: (m) => this.outcomes.publishStatus(m.call, CallStatus.running, m.attempt),
      onError: (err) => this.d.log.error("marking calls running failed", { err: (err as Error)?.message ?? String(err) }),
    });
    this.outcomes = new CallOutcomes({ calls: d.calls, bus: d.bus, log: d.log, marks: this.marks, live: this.live, pump: (pool) => this.pump(pool), clock: this.now });
    this.web = new WebRequests({
      route: (app, fn, query) => this.webRoute(app, fn, query),
      pump: (pool) => this.pump(pool),
      maxBodyBytes: d.maxBodyBytes,
      log: d.log,
      clock: this.now,
    });
    this.scaler = new Scaler({
      launcher: d.launcher,
      gpus: d.gpus,
      log: d.log,
      calls: this,
      web: this.web,
      clock: this.now,
      pools: () => this.pools.values(),
      onPoolDone: (pool) => this.pools.delete(pool.key),
    });
    this.stops = new InputStops({
      send: (c, msg) => this.send(c, msg),
      kill: (pool, c, why) => this.scaler.kill(pool, c, why),
      released: (pool, c) => {
        this.markIdleIfFree(c);
        this.pump(pool);
      },
      log: d.log,
      graceMs: d.cancelGraceMs ?? 30_000,
    });
    this.prefetched = new PrefetchedInputs({
      send: (c, msg) => this.send(c, msg),
      marks: this.marks,
      armTimeout: (pool, c, call, attempt) => setTimeout(() => this.onAttemptTimeout(pool, c, call, attempt), pool.spec.timeoutMs),
      pump: (pool) => this.pump(pool),
      freed: (c) => this.markIdleIfFree(c),
      cancelQueued: (pool, why) => this.bg(this.cancelQueued(pool, why)),
      now: this.now,
    });
  }

  // ── functions ────────────────────────────────────────────────────────────────────────────

  pool(app: string, fn: string): FunctionPool | undefined {
    const p = this.pools.get(`${app}/${fn}`);
    return p && !p.removed ? p : undefined;
  }

  /** Installs or updates the functions of one app; containers of older revisions drain. */
  applyDeployment(app: string, functions: DeployedFunction[]): void {
    this.stoppedApps.delete(app);
    const keep = new Set(functions.map((f) => `${app}/${f.spec.name}`));
    for (const f of functions) {
      const key = `${app}/${f.spec.name}`;
      const existing = this.pools.get(key);
      if (!existing) {
        this.pools.set(key, new FunctionPool(app, f));
      } else {
        existing.removed = false;
        if (existing.revision !== f.revision) this.redeploy(existing, f);
      }
      this.pump(this.pools.get(key)!);
      for (const v of this.variantsOf(app, f.spec.name)) if (v.revision !== f.revision) this.redeploy(v, f);
    }
    for (const pool of this.pools.values()) {
      const fnKey = poolKey(app, pool.spec.name, null);
      if (pool.app === app && !keep.has(fnKey) && !pool.removed) this.removePool(pool, `function ${fnKey} is no longer deployed`);
    }
  }

  /** A new revision for a pool: its containers of older ones drain. A class's variant whose options no longer fit is removed. */
  private redeploy(pool: FunctionPool, f: DeployedFunction): void {
    try {
      pool.deploy(f);
    } catch (err) {
      return this.removePool(pool, `its options no longer fit class ${pool.app}.${f.spec.name}: ${(err as Error).message}`);
    }
    pool.startFailures = 0;
    pool.startBlockedUntilMs = 0;
    for (const c of pool.containers.values()) if (c.revision !== f.revision) this.scaler.retire(pool, c);
    this.pump(pool);
  }

  /** A class's pools for parameter sets and options in use. */
  private variantsOf(app: string, fn: string): FunctionPool[] {
    return [...this.pools.values()].filter((p) => p.variant !== null && p.app === app && p.spec.name === fn && !p.removed);
  }

  /**
   * The pool a call of this class runs in: its own, or the one for its parameter set and options
   * (made on first use, up to a limit). Replaces the input's variant with its canonical form.
   */
  private poolFor(base: FunctionPool, input: CallInput): FunctionPool {
    if (!base.spec.cls) return base;
    input.variant ??= { params: {}, options: {} }; // the defaults, or an error naming a parameter that has none
    let resolved: ReturnType<typeof resolveVariant>;
    try {
      resolved = resolveVariant(`${base.app}.${base.spec.name}`, base.spec.cls.params ?? [], input.variant.params, input.variant.options);
    } catch (err) {
      if (err instanceof VariantError) throw invalid(err.message);
      throw err;
    }
    if (!resolved) {
      delete input.variant;
      return base;
    }
    input.variant = resolved.variant;
    const key = poolKey(base.app, base.spec.name, resolved.key);
    const known = this.pools.get(key);
    if (known && !known.removed) return known;
    const used = this.variantsOf(base.app, base.spec.name).length;
    if (used >= PARAM_LIMITS.variantsPerClass) {
      throw new ServiceError(
        ServiceErrorCode.queueFull,
        `class ${base.app}.${base.spec.name} has ${used} pools for parameter sets and options in use, the limit; retry once idle ones have scaled down`,
      );
    }
    let pool: FunctionPool;
    try {
      pool = new FunctionPool(base.app, base.deployment, resolved);
    } catch (err) {
      if (err instanceof VariantError) throw invalid(err.message);
      throw err;
    }
    if (pool.gpu && !this.d.gpus.everSatisfiable(pool.gpu)) {
      throw new ServiceError(ServiceErrorCode.gpuUnavailable, `${base.app}.${base.spec.name}.with_options asks for gpu ${this.d.gpus.unmet(pool.spec.gpu!)}`);
    }
    this.pools.set(key, pool);
    this.pump(pool); // planned once its first calls are queued; dropped then if none came
    return pool;
  }

  /**
   * Stops an app: its queued calls are cancelled, and so are those its containers run (dispatched,
   * marked running yet or not): each input is asked to stop in its container. Its containers stop.
   */
  stopApp(app: string): number {
    this.stoppedApps.add(app);
    let n = 0;
    for (const pool of this.pools.values()) {
      if (pool.app === app && !pool.removed) {
        const running = [...pool.containers.values()].flatMap((c) => [...c.leases.values()].map((l) => l.call));
        for (const call of running) this.bg(this.cancelLive(call, `app ${app} was stopped`));
        this.removePool(pool, `app ${app} was stopped`);
        if (!pool.variant) n++;
      }
    }
    return n;
  }

  /**
   * A secret changed (replaced or removed): the containers of every function using it drain
   * (running calls finish there) and new calls go to new containers, created with its new values.
   * Returns the functions rolled, as "app.fn".
   */
  rollSecretUsers(secret: string): string[] {
    const rolled: string[] = [];
    for (const pool of this.pools.values()) {
      if (pool.removed || !(pool.spec.secrets ?? []).includes(secret)) continue;
      for (const c of pool.containers.values()) this.scaler.retire(pool, c, `secret ${secret} changed`);
      // Starts that failed for want of the secret may go again at once.
      pool.startFailures = 0;
      pool.startBlockedUntilMs = 0;
      this.pump(pool);
      rolled.push(`${pool.app}.${pool.spec.name}`);
    }
    return rolled;
  }

  private removePool(pool: FunctionPool, why: string): void {
    pool.removed = true;
    pool.removedWhy = why;
    this.bg(this.cancelQueued(pool, why));
    this.web.refuseQueued(pool, why);
    for (const c of pool.containers.values()) this.scaler.retire(pool, c);
    this.pump(pool);
  }

  // ── calls ────────────────────────────────────────────────────────────────────────────────

  /**
   * Commits a new queued call and returns its ID; the call is durable before anyone sees the ID.
   * Its input is as the API read it: JSON arguments, or a pickled input.
   */
  async submit(app: string, fn: string, input: CallInput): Promise<string> {
    return (await this.submitMany(app, fn, [input]))[0]!;
  }

  /**
   * Commits new queued calls of one function in one transaction and returns their IDs, in order.
   * They are queued (and may start) at once, while the insert is being committed: only the IDs
   * wait for the commit, so no call is acknowledged before it is durable. An insert that fails
   * withdraws its calls; one that already started runs to an end nobody reads (at least once).
   */
  async submitMany(app: string, fn: string, inputs: readonly CallInput[]): Promise<string[]> {
    const routed = this.route(app, fn, inputs);
    const now = this.now();
    const calls = inputs.map((input, i) => this.newCall(app, fn, input, routed[i]!, now));
    const committed = this.d.calls.insertMany(app, fn, calls.map((c) => ({ id: c.id, ...c.input! })), now);
    this.holdSyncForResult(calls, routed);
    calls.forEach((call, i) => {
      this.live.set(call.id, call);
      routed[i]!.queue.push(call);
    });
    const pools = new Set(routed);
    for (const pool of pools) this.pump(pool);
    try {
      await committed;
    } catch (err) {
      calls.forEach((call, i) => {
        this.live.delete(call.id);
        if (call.status === CallStatus.queued) routed[i]!.unqueue(call.id);
      });
      throw fromStore(err);
    }
    if (routed[0]!.removed) {
      // The app was stopped while these calls were being committed: they are cancelled like the others.
      await Promise.all(calls.filter((c) => this.live.has(c.id)).map((c) => this.cancelLive(c, "the app was stopped")));
      return calls.map((c) => c.id);
    }
    const longQueues = new Set([...pools].filter((p) => p.queue.length > INPUTS_KEPT_PER_QUEUE));
    calls.forEach((call, i) => {
      // Every call is announced queued, even one already dispatched: streams see queued → running → end.
      this.outcomes.publishStatus(call, CallStatus.queued, 1);
      // Far back in a long queue, a call lets go of its arguments: they are read again at dispatch.
      if (longQueues.has(routed[i]!) && call.status === CallStatus.queued) call.input = null;
    });
    return calls.map((c) => c.id);
  }

  /**
   * A lone call that begins at once and is expected to take at most half a log sync: the sync
   * that makes it durable waits (at most a sync's time) for its result, so one sync covers both
   * (syncHoldMs). Call before it is queued.
   */
  private holdSyncForResult(calls: readonly LiveCall[], routed: readonly FunctionPool[]): void {
    if (calls.length !== 1 || !routed[0]!.beginsAtOnce()) return;
    const ms = syncHoldMs(routed[0]!.callMs, this.d.calls.syncMs);
    if (ms > 0) calls[0]!.syncHold = this.d.calls.holdSync(ms) ?? undefined;
  }

  /**
   * The pool each new call goes to (a class's call with parameters goes to its parameter set's),
   * after checking what the function takes and that each pool's queue has room.
   */
  private route(app: string, fn: string, inputs: readonly CallInput[]): FunctionPool[] {
    const base = this.acceptingPool(app, fn);
    checkInputs(base, inputs);
    const routed = inputs.map((input) => this.poolFor(base, input));
    const counts = new Map<FunctionPool, number>();
    for (const p of routed) counts.set(p, (counts.get(p) ?? 0) + 1);
    for (const [pool, count] of counts) this.checkRoom(pool, count);
    return routed;
  }

  /**
   * Submits one call under an idempotency key: the first submit with the key (for this function,
   * within 24 h) makes the call; later ones get its ID back (`replayed`) and queue nothing. The
   * key is claimed in the transaction that inserts the call, so the call is queued only once that
   * commit decided it is new (one commit later than an unkeyed submit's may start).
   */
  async submitKeyed(app: string, fn: string, input: CallInput, key: string): Promise<{ callId: string; replayed: boolean }> {
    if (this.closing) throw new ServiceError(ServiceErrorCode.shuttingDown, "the daemon is shutting down");
    const known = this.d.calls.keys.find(app, fn, key, this.now()); // committed already: no write needed
    if (known !== null) return { callId: known, replayed: true };
    const first = this.route(app, fn, [input])[0]!;
    const now = this.now();
    const call = this.newCall(app, fn, input, first, now);
    const earlier = await this.d.calls.insertKeyed({ id: call.id, app, function: fn, now, ...input }, key).catch((err) => {
      throw fromStore(err);
    });
    if (earlier !== null) return { callId: earlier, replayed: true };
    this.live.set(call.id, call);
    // Found again after the commit: a class's variant left unused meanwhile was dropped (made again here).
    const pool = this.pools.get(poolKey(app, fn, call.variant)) ?? (first.removed ? first : this.poolFor(this.requirePool(app, fn), input));
    if (pool.removed) {
      // The app was stopped while the call was being committed: it is cancelled like its queued calls.
      const error = { type: SystemErrorType.cancelled, message: "the app was stopped", traceback: "" };
      await this.outcomes.finish(pool, call, { status: CallStatus.queued, attempt: 1 }, CallStatus.cancelled, 1, { error });
      return { callId: call.id, replayed: false };
    }
    this.outcomes.publishStatus(call, CallStatus.queued, 1);
    pool.queue.push(call);
    this.pump(pool);
    if (call.status === CallStatus.queued && pool.queue.length > INPUTS_KEPT_PER_QUEUE) call.input = null;
    return { callId: call.id, replayed: false };
  }

  /**
   * Where a request to /web/APP/NAME/ goes: a web endpoint function's pool, or for `CLASS.METHOD`
   * a class's web endpoint method, in the pool of the parameter set its query names.
   */
  private webRoute(app: string, name: string, query: string): WebRoute {
    if (this.closing) throw new ServiceError(ServiceErrorCode.shuttingDown, "the daemon is shutting down");
    const dot = name.indexOf(".");
    if (dot < 0) {
      const pool = this.requirePool(app, name);
      if (!pool.spec.web) throw notFound(`${app}.${name} is not a web endpoint: call it with spawn or remote`);
      return { pool: () => pool, target: null, public: pool.spec.public };
    }
    const [cls, method] = [name.slice(0, dot), name.slice(dot + 1)];
    const base = this.requirePool(app, cls);
    const m = base.spec.cls?.methods.find((x) => x.name === method);
    if (!m?.web) throw notFound(`${app}.${cls} has no web endpoint method ${JSON.stringify(method)}`);
    // The parameter set's pool is made only once the request may go (after the token check).
    const pool = () => {
      try {
        const params = paramsFromQuery(`${app}.${cls}`, base.spec.cls!.params ?? [], query);
        return this.poolFor(base, { args: [], kwargs: null, variant: { params, options: {} } });
      } catch (err) {
        if (err instanceof VariantError) throw invalid(err.message);
        throw err;
      }
    };
    return { pool, target: method, public: m.public ?? false };
  }

  /** The function's pool when it takes calls now; throws why when it does not (stopping, unknown, web endpoint). */
  private acceptingPool(app: string, fn: string): FunctionPool {
    if (this.closing) throw new ServiceError(ServiceErrorCode.shuttingDown, "the daemon is shutting down");
    const pool = this.requirePool(app, fn);
    if (pool.spec.web) throw invalid(`${app}.${fn} is a web endpoint: send it HTTP requests at /web/${app}/${fn}/`);
    return pool;
  }

  /** Throws when `count` more calls would pass the pool's queue limit. */
  private checkRoom(pool: FunctionPool, count: number): void {
    const queued = pool.queue.length + pool.delayed.length;
    if (queued + count <= this.d.maxQueuedPerFunction) return;
    const what = pool.variant ? `class ${pool.app}.${pool.spec.name} (for ${describeVariant(pool.variant.variant)})` : `function ${pool.app}.${pool.spec.name}`;
    throw new ServiceError(ServiceErrorCode.queueFull, `${what} has ${queued} queued calls; ${count} more would pass the limit of ${this.d.maxQueuedPerFunction}; retry later`);
  }

  private newCall(app: string, fn: string, input: CallInput, pool: FunctionPool, now: number): LiveCall {
    return {
      id: this.callIds.next(now),
      app,
      function: fn,
      status: CallStatus.queued,
      attempt: 1,
      input,
      runAt: now,
      containerId: null,
      createdAt: now,
      startedAt: null,
      runningMark: null,
      lost: 0,
      ...(pool.variant ? { variant: pool.variant.key } : {}),
    };
  }

  /** Whether the call waits in a queue (not started yet). */
  isQueued(callId: string): boolean {
    return this.live.get(callId)?.status === CallStatus.queued;
  }

  /** Whether the call is queued or running in this daemon (so not finished). */
  isLive(callId: string): boolean {
    return this.live.has(callId);
  }

  requirePool(app: string, fn: string): FunctionPool {
    const pool = this.pool(app, fn);
    if (!pool) {
      const appKnown = [...this.pools.values()].some((p) => p.app === app && !p.removed);
      if (!appKnown && this.stoppedApps.has(app)) throw notFound(`app ${app} is stopped; deploy it again to serve calls`);
      throw notFound(appKnown ? `app ${app} has no function named ${fn}` : `no deployed app named ${app}`);
    }
    return pool;
  }

  /** Cancels every waiting call of a pool in one statement (an app stopped with 100,000 queued is quick). */
  private async cancelQueued(pool: FunctionPool, why: string): Promise<void> {
    const waiting = [...pool.queue.drain(), ...pool.delayed.splice(0)];
    if (!waiting.length) return;
    for (const call of waiting) this.live.delete(call.id);
    const now = this.now();
    const error = { type: SystemErrorType.cancelled, message: why, traceback: "" };
    // Calls in containers (running, or prefetched there) are not cancelled here, though the store may still have them queued.
    const running: string[] = [];
    for (const p of this.poolsOf(pool.app, pool.spec.name)) for (const c of p.containers.values()) running.push(...c.leases.keys());
    const cancelled = await this.d.calls.cancelQueued(pool.app, pool.spec.name, error, now, now + pool.spec.resultTtlMs, running);
    const ts = this.outcomes.isoNow();
    for (const { id, attempt } of cancelled) {
      this.d.bus.publish({ type: "call.status", call_id: id, app: pool.app, function: pool.spec.name, status: CallStatus.cancelled, attempt, ts });
    }
  }

  /** Cancels a queued or running call. Resolves false when the call is not live (finished or unknown). */
  async cancel(callId: string): Promise<boolean> {
    const call = this.live.get(callId);
    if (!call) return false;
    await this.cancelLive(call, "the call was cancelled");
    return true;
  }

  private async cancelLive(call: LiveCall, why: string): Promise<void> {
    const pool = this.pools.get(poolKey(call.app, call.function, call.variant))!;
    const from = { status: call.status, attempt: call.attempt };
    if (call.status === CallStatus.queued) pool.unqueue(call.id);
    if (call.status === CallStatus.running && call.containerId) {
      const c = pool.containers.get(call.containerId);
      const lease = c?.leases.get(call.id);
      // Asked to stop in its container; it keeps its slot until it has (or the container goes).
      if (c && lease) this.stops.stop(pool, c, lease, why);
    }
    const tr = transition(from, { type: "cancel" }, pool.spec.retries);
    if (!tr.ok) return;
    await this.outcomes.finish(pool, call, from, tr.to.status, tr.to.attempt, { error: { ...tr.error!, message: why } });
    this.pump(pool);
  }

  /** Re-adopts calls left open by an earlier daemon (its containers are gone); their writes share commits. */
  async recover(): Promise<{ requeued: number; failed: number }> {
    let requeued = 0;
    let failed = 0;
    const writes: Promise<unknown>[] = [];
    const lostRuns: Array<{ pool: FunctionPool; call: LiveCall }> = [];
    for (const rec of this.d.calls.listOpen()) {
      const call: LiveCall = {
        id: rec.id,
        app: rec.app,
        function: rec.function,
        status: rec.status,
        attempt: rec.attempt,
        input: null,
        runAt: rec.runAt,
        containerId: null,
        createdAt: rec.createdAt,
        startedAt: rec.startedAt,
        runningMark: null,
        lost: rec.lost,
      };
      const pool = this.recoveredPool(call);
      if (typeof pool === "string") {
        const from = { status: rec.status, attempt: rec.attempt };
        failed++;
        writes.push(
          this.d.calls.compareAndSet(rec.id, from, {
            status: CallStatus.failed,
            attempt: rec.attempt,
            finishedAt: this.now(),
            expiresAt: this.now() + DEFAULTS.resultTtl * 1000,
            containerId: null,
            error: { type: SystemErrorType.functionRemoved, message: pool, traceback: "" },
          }),
        );
        continue;
      }
      this.live.set(call.id, call);
      if (rec.status === CallStatus.running) lostRuns.push({ pool, call });
      else {
        pool.addDelayed(call); // in time order: appended
        requeued++;
      }
    }
    // Lost ones go back to the queue after the waiting ones: each joins the end, not the front of 100,000.
    for (const { pool, call } of lostRuns) {
      const lost = this.outcomes.apply(pool, call, { type: "lose", attempt: call.attempt, reason: `the daemon restarted while attempt ${call.attempt} ran` });
      writes.push(lost.then((outcome) => (outcome === CallStatus.failed ? failed++ : requeued++)));
    }
    await Promise.all(writes);
    for (const pool of this.pools.values()) this.pump(pool);
    return { requeued, failed };
  }

  /** The pool an open call of an earlier daemon goes back to (a class's call to its parameter set's), or why none takes it. */
  private recoveredPool(call: LiveCall): FunctionPool | string {
    const base = this.pool(call.app, call.function);
    if (!base) return `function ${call.app}.${call.function} is no longer deployed`;
    if (!base.spec.cls) return base;
    const input = this.d.calls.inputOf(call.id);
    if (!input) return base;
    try {
      const pool = this.poolFor(base, input);
      if (pool.variant) call.variant = pool.variant.key;
      return pool;
    } catch (err) {
      return `its parameters or options no longer fit class ${call.app}.${call.function}: ${(err as Error).message}`;
    }
  }

  // ── dispatch ─────────────────────────────────────────────────────────────────────────────

  pump(pool: FunctionPool): void {
    if (!this.closing) this.scaler.pump(pool);
  }

  /** Runs queued calls in free slots of a ready container (the scaler chose it): one message to its agent. */
  dispatch(pool: FunctionPool, c: ContainerEntry, calls: readonly LiveCall[]): void {
    const now = this.now();
    const inputs: AgentInput[] = [];
    let running = runningSlots(c);
    for (const call of calls) {
      const from = { status: call.status, attempt: call.attempt };
      const tr = transition(from, { type: "dispatch", attempt: call.attempt }, pool.spec.retries);
      if (!tr.ok) {
        this.d.log.error("dispatch refused", { call: call.id, detail: tr.detail });
        continue;
      }
      const input = call.input ?? this.d.calls.inputOf(call.id);
      if (!input) {
        this.d.log.error("dispatch found no input", { call: call.id });
        continue;
      }
      call.status = CallStatus.running;
      call.containerId = c.id;
      call.startedAt = now;
      call.gpus = c.gpus.length;
      call.input = input; // kept while it runs: a retry needs it again
      const attempt = call.attempt;
      // Every slot busy: prefetched (issue 25). It waits in the agent; its timeout starts when the agent says it began.
      const queued = running >= pool.spec.maxInputs;
      if (!queued) running++;
      const timer = queued ? undefined : setTimeout(() => this.onAttemptTimeout(pool, c, call, attempt), pool.spec.timeoutMs);
      c.leases.set(call.id, { call, attempt, timer, ...(queued ? { waiting: true } : {}) });
      call.runningMark = this.marks.add(call, now, queued);
      inputs.push({
        callId: call.id,
        attempt,
        args: input.args,
        ...(input.kwargs ? { kwargs: input.kwargs } : {}),
        ...(input.pickle !== undefined ? { pickle: input.pickle } : {}),
        ...(input.method !== undefined ? { method: input.method } : {}),
        ...(queued ? { queued: true as const } : {}),
      });
    }
    if (!inputs.length) return;
    c.idleSinceMs = null;
    c.lastUsedMs = now;
    this.send(c, inputs.length === 1 ? { type: "input", ...inputs[0]! } : { type: "inputs", inputs });
  }

  private send(c: ContainerEntry, msg: DaemonToAgent): void {
    c.conn?.send(msg);
  }

  // ── agent reports ────────────────────────────────────────────────────────────────────────

  /** An output from an agent; stale attempts (fenced by attempt number) change nothing. */
  onOutput(pool: FunctionPool, c: ContainerEntry, msg: { callId: string; attempt: number } & ({ ok: true; value: unknown; pickled?: string } | { ok: false; error: RemoteError })): void {
    const lease = c.leases.get(msg.callId);
    if (!lease || lease.attempt !== msg.attempt) {
      // An input asked to stop has stopped: its slot is free; its call ended already.
      if (this.stops.release(pool, c, msg.callId, msg.attempt)) return;
      this.d.log.warn("ignored a stale output", { call: msg.callId, attempt: msg.attempt, container: c.id });
      return;
    }
    clearTimeout(lease.timer);
    c.leases.delete(msg.callId);
    if (!lease.waiting && lease.call.startedAt !== null) pool.noteCallMs(this.now() - lease.call.startedAt);
    this.markIdleIfFree(c);
    const ev: CallEvent = msg.ok ? { type: "succeed", attempt: msg.attempt } : { type: "fail", attempt: msg.attempt, error: msg.error };
    this.bg(this.outcomes.apply(pool, lease.call, ev, msg.ok ? storedValue(msg) : undefined));
    this.pump(pool);
  }

  /** A prefetched input has begun in its container (prefetched.ts). */
  onStarted(pool: FunctionPool, c: ContainerEntry, msg: { callId: string; attempt: number }): void {
    this.prefetched.started(pool, c, msg);
  }

  /** Asks a draining container for its prefetched inputs back (prefetched.ts). */
  withdraw(c: ContainerEntry): void {
    this.prefetched.withdraw(c);
  }

  onWithdrawn(pool: FunctionPool, c: ContainerEntry, msg: { callId: string; attempt: number }): void {
    this.prefetched.withdrawn(pool, c, msg);
  }

  /** Prefetched inputs that never began, their container gone: queued again, nothing counted (prefetched.ts). */
  giveBack(pool: FunctionPool, leases: readonly Lease[]): void {
    this.prefetched.giveBack(pool, leases);
  }

  /** An item of a generator call: stored in order, then announced (readers long-poll for it). Stale attempts change nothing. */
  onItem(pool: FunctionPool, c: ContainerEntry, msg: { callId: string; attempt: number; index: number; value: unknown; pickled?: string }): void {
    const lease = c.leases.get(msg.callId);
    const call = lease?.call;
    if (!call || lease.attempt !== msg.attempt || !streams(pool, call) || msg.index !== (call.items ?? 0)) {
      this.d.log.warn("ignored an item", { call: msg.callId, attempt: msg.attempt, index: msg.index, container: c.id });
      return;
    }
    call.items = msg.index + 1;
    const stored = this.d.calls.items.add(call.id, msg.index, storedValue(msg)).then(() => {
      this.d.bus.publish({ type: "call.item", call_id: call.id, app: call.app, function: call.function, index: msg.index, ts: new Date(this.now()).toISOString() });
    });
    this.bg(stored.catch((err: Error) => this.d.log.error("an item was not stored", { call: call.id, index: msg.index, error: err.message })));
  }

  /** An attempt ran past its timeout: it fails (FunctionTimeoutError, retried as its policy says) and is asked to stop; its neighbours run on. */
  private onAttemptTimeout(pool: FunctionPool, c: ContainerEntry, call: LiveCall, attempt: number): void {
    const lease = c.leases.get(call.id);
    if (!lease || lease.attempt !== attempt) return;
    this.stops.stop(pool, c, lease, `its attempt ${attempt} ran past its timeout of ${pool.spec.timeoutMs / 1000} s`);
    this.bg(this.outcomes.apply(pool, call, { type: "timeout", attempt, timeoutMs: pool.spec.timeoutMs }));
  }

  /** The container is gone: inputs it was asked to stop need nothing more. */
  dropStopping(c: ContainerEntry): void {
    this.stops.drop(c);
  }

  private markIdleIfFree(c: ContainerEntry): void {
    if (busySlots(c) === 0) c.idleSinceMs = this.now();
  }

  // ── what the scaler reports ──────────────────────────────────────────────────────────────

  lose(pool: FunctionPool, lease: Lease, reason: string): void {
    if (streams(pool, lease.call)) {
      // Its items may already be read: running it again would send them twice. It fails instead.
      const error = { type: SystemErrorType.containerLost, message: `${reason}; a generator call is not run again (its items may already have been read)`, traceback: "" };
      return this.failAttempt(pool, lease, error);
    }
    this.bg(this.outcomes.apply(pool, lease.call, { type: "lose", attempt: lease.attempt, reason }));
  }

  failAttempt(pool: FunctionPool, lease: Lease, error: RemoteError): void {
    this.bg(this.outcomes.apply(pool, lease.call, { type: "fail", attempt: lease.attempt, error }));
  }

  failQueued(pool: FunctionPool, error: RemoteError): void {
    for (const call of pool.queue.drain()) {
      this.bg(this.outcomes.finish(pool, call, { status: call.status, attempt: call.attempt }, CallStatus.failed, call.attempt, { error }));
    }
  }

  // ── views & lifecycle ────────────────────────────────────────────────────────────────────

  containers(): Array<{ pool: FunctionPool; c: ContainerEntry }> {
    return this.scaler.containers();
  }

  /** Functions whose calls wait for GPUs, longest waiting first. */
  gpuWaiting(): FunctionPool[] {
    return [...this.pools.values()].filter((p) => p.gpuWaitSinceMs !== null).sort((a, b) => a.gpuWaitSinceMs! - b.gpuWaitSinceMs!);
  }

  /** A function's pools: its own, and a class's variants'. */
  private *poolsOf(app: string, fn: string): Iterable<FunctionPool> {
    for (const p of this.pools.values()) if (p.app === app && p.spec.name === fn) yield p;
  }

  /** What one function is doing now: its calls queued and running, its containers (old revisions' included). */
  functionLive(app: string, fn: string): FunctionLiveView {
    const v: FunctionLiveView = { queued: 0, running: 0, containers: 0, gpu_wait_since: null, variants: [] };
    for (const p of this.poolsOf(app, fn)) {
      let queued = p.queue.length + p.delayed.length;
      let running = 0;
      for (const c of p.containers.values()) {
        const waiting = waitingLeases(c); // sent ahead (prefetched): still waiting for a slot
        running += c.leases.size - waiting;
        queued += waiting;
      }
      v.queued += queued;
      v.running += running;
      v.containers += p.containers.size;
      if (p.gpuWaitSinceMs !== null) v.gpu_wait_since = new Date(p.gpuWaitSinceMs).toISOString();
      if (p.variant) v.variants.push({ variant: describeVariant(p.variant.variant), queued, running, containers: p.containers.size });
    }
    return v;
  }

  stats(): { live: number; queued: number; containers: number } {
    let queued = 0;
    let containers = 0;
    for (const p of this.pools.values()) {
      queued += p.queue.length + p.delayed.length;
      for (const c of p.containers.values()) queued += waitingLeases(c); // prefetched, not begun
      containers += p.containers.size;
    }
    return { live: this.live.size, queued, containers };
  }

  /** Background work: a failure is logged (a store closed at shutdown), never left unhandled. */
  private bg(p: Promise<unknown>): void {
    p.catch((err) => this.d.log.error("background step failed", { err: (err as Error)?.message ?? String(err) }));
  }

  /** Calls running in containers now. */
  private runningCount(): number {
    let n = 0;
    for (const pool of this.pools.values()) for (const c of pool.containers.values()) n += busySlots(c);
    return n;
  }

  /**
   * Stops taking and dispatching calls, then lets the running ones finish for up to `graceMs`.
   * Results that arrive meanwhile are committed as usual; queued calls stay queued.
   */
  async drain(graceMs: number): Promise<void> {
    this.closing = true;
    this.web.close();
    this.scaler.close();
    const deadline = this.now() + graceMs;
    while (this.runningCount() > 0 && this.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = this.runningCount();
    if (left) this.d.log.warn("stopping with calls still running; they run again after the next start", { calls: left });
  }

  /** Stops every container at once; calls stay in the store for the next start. */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.marks.close();
    await this.scaler.shutdown();
  }
}

/** A class's call names one of its methods; a function's names none. */
function checkMethods(pool: FunctionPool, inputs: readonly CallInput[]): void {
  const methods = pool.spec.cls?.methods.map((m) => m.name);
  for (const input of inputs) {
    if (!methods && input.method !== undefined) throw invalid(`${pool.app}.${pool.spec.name} is a function, not a class: it has no method ${JSON.stringify(input.method)}`);
    if (methods && (input.method === undefined || !methods.includes(input.method))) {
      const what = input.method === undefined ? "names no method" : `names method ${JSON.stringify(input.method)}, which it does not have`;
      throw invalid(`a call of class ${pool.app}.${pool.spec.name} ${what}: its methods are ${methods.join(", ")}`);
    }
    if (methods && pool.spec.cls!.methods.find((m) => m.name === input.method)?.web) {
      throw invalid(`${pool.app}.${pool.spec.name}.${input.method} is a web endpoint: send it HTTP requests at /web/${pool.app}/${pool.spec.name}.${input.method}/`);
    }
  }
}

/** Inputs the pool can run: a class's call names one of its methods; a pickled input goes to Python functions only (a TypeScript function could not read it). */
function checkInputs(pool: FunctionPool, inputs: readonly CallInput[]): void {
  checkMethods(pool, inputs);
  if (pool.runtime === "python" || !inputs.some((i) => i.pickle !== undefined)) return;
  throw invalid(`${pool.app}.${pool.spec.name} is a ${pool.runtime} function: send its arguments as JSON ({"args": [...]}), not pickled`);
}

/** Whether a call yields items: a generator function's, or a class's call of a generator method. */
function streams(pool: FunctionPool, call: LiveCall): boolean {
  if (pool.spec.generator) return true;
  const method = call.input?.method;
  return method !== undefined && (pool.spec.cls?.methods.some((m) => m.name === method && m.generator) ?? false);
}
