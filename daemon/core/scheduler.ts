/**
 * Scheduling decisions for one function's pool of containers. Pure: the caller passes a view of
 * the pool and the time, and carries out the plan (dispatch, start, stop).
 *
 * - Queued calls go to ready containers with a free slot (maxInputs slots each), packing the
 *   busiest, then most recently used container first, so warm containers are reused and spare
 *   ones go idle and scale down.
 * - The pool aims at ceil((active + queued) / maxInputs) + bufferContainers containers, at least
 *   minContainers and at most maxContainers; calls beyond that wait in the queue.
 * - A container idle for scaledownWindow is stopped while the pool is above its aim.
 * - Draining containers (an older deployment) take no new calls and stop once idle.
 * - Prefetch (issue 25): when the pool runs short calls and has all the containers it aims at
 *   (none starting), calls still queued go to ready containers beyond their free slots, up to
 *   `prefetch` each, fewest first, so that a slot finds its next input already there instead of
 *   waiting a round trip to the daemon.
 */
export type SlotState = "starting" | "ready" | "draining" | "stopping";

export interface ContainerSlots {
  id: string;
  state: SlotState;
  active: number;
  /** When the container last became idle (no active calls); null while busy or starting. */
  idleSinceMs: number | null;
  lastUsedMs: number;
}

export interface PoolLimits {
  maxContainers: number;
  minContainers: number;
  bufferContainers: number;
  maxInputs: number;
  scaledownWindowMs: number;
  /** Inputs a ready container may hold beyond its slots (0: none). */
  prefetch?: number;
}

export interface PoolView {
  limits: PoolLimits;
  /** Calls ready to run now, in queue order. */
  queued: number;
  containers: readonly ContainerSlots[];
  /** No container is started before this time (after failed starts). */
  startBlockedUntilMs: number;
  nowMs: number;
}

export interface PoolPlan {
  /** One container id per dispatched call, in queue order. */
  assign: string[];
  start: number;
  stop: string[];
  /** When the plan may change without any new event (an idle window ends, a start block lifts). */
  wakeAtMs: number | null;
}

/** Prefetch (issue 25) is for short calls: where a round trip to the daemon is a slot's idle time. */
export const PREFETCH_BELOW_MS = 250;
/** Inputs a container holds beyond its slots, at most. */
export const PREFETCH_MAX = 16;
/** How much work a container's prefetched inputs cover: a daemon round trip or two, with room. */
export const PREFETCH_COVER_MS = 5;

/**
 * How many inputs a container holds beyond its slots, for calls that take `callMs` on average
 * (null: none has finished yet): enough to keep its slots busy for PREFETCH_COVER_MS (one for
 * calls of 5 ms or more on one slot, PREFETCH_MAX for calls of a fraction of a millisecond), none
 * for calls of PREFETCH_BELOW_MS or longer.
 */
export function prefetchDepth(maxInputs: number, callMs: number | null): number {
  if (callMs === null || callMs >= PREFETCH_BELOW_MS) return 0;
  return Math.min(PREFETCH_MAX, Math.max(1, Math.ceil((maxInputs * PREFETCH_COVER_MS) / Math.max(callMs, 0.01))));
}

/** The longest a log sync is held back for a call's result. */
export const SYNC_HOLD_MAX_MS = 10;

/**
 * How long the log's sync may wait for a lone new call's result (ms; 0: not at all), when that call
 * begins at once in a free slot, its calls take `callMs` there on average (dispatch to output), and
 * a sync of the log takes `syncMs` on average (null: not known yet).
 *
 * Without a hold, the submit's sync runs first and the result needs a second one after it: the
 * caller waits max(sync, call) + sync. Holding the submit's sync until the result is committed
 * too puts both on disk with one: call + sync, a gain of sync - call. A call that takes longer than
 * predicted costs its submit up to the hold, and both averages move from call to call; so it holds
 * only where the gain is clear, for calls expected to take at most half a sync, and never longer
 * than a sync (PostgreSQL's commit_delay, for one caller).
 */
export function syncHoldMs(callMs: number | null, syncMs: number | null): number {
  if (callMs === null || syncMs === null || callMs * 2 > syncMs) return 0;
  return Math.min(SYNC_HOLD_MAX_MS, syncMs, callMs * 1.5 + 0.25);
}

/** Assigns queued calls beyond free slots (up to limits.prefetch each, fewest held first); returns those still queued. */
function prefetch(ready: Array<ContainerSlots>, queued: number, limits: PoolLimits, settled: boolean, assign: string[]): number {
  const cap = limits.maxInputs + (limits.prefetch ?? 0);
  if (!settled || cap <= limits.maxInputs) return queued;
  while (queued > 0) {
    let slot: ContainerSlots | null = null;
    for (const c of ready) if (c.active < cap && (!slot || c.active < slot.active)) slot = c;
    if (!slot) break;
    slot.active++;
    slot.idleSinceMs = null;
    assign.push(slot.id);
    queued--;
  }
  return queued;
}

export function planPool(view: PoolView): PoolPlan {
  const { limits, nowMs } = view;
  const live = view.containers.filter((c) => c.state === "starting" || c.state === "ready");
  const ready = live
    .filter((c) => c.state === "ready")
    .map((c) => ({ ...c }))
    .sort((a, b) => b.active - a.active || b.lastUsedMs - a.lastUsedMs);

  const assign: string[] = [];
  let queued = view.queued;
  while (queued > 0) {
    const slot = ready.find((c) => c.active < limits.maxInputs);
    if (!slot) break;
    slot.active++;
    slot.idleSinceMs = null;
    assign.push(slot.id);
    queued--;
    ready.sort((a, b) => b.active - a.active || b.lastUsedMs - a.lastUsedMs);
  }

  const active = ready.reduce((n, c) => n + c.active, 0);
  const demand = Math.ceil((active + queued) / limits.maxInputs);
  const aim = Math.min(limits.maxContainers, Math.max(limits.minContainers, demand + limits.bufferContainers));
  queued = prefetch(ready, queued, limits, live.length >= aim && live.length === ready.length, assign);

  let wakeAtMs: number | null = null;
  const wakeAt = (t: number) => {
    wakeAtMs = wakeAtMs === null ? t : Math.min(wakeAtMs, t);
  };

  let start = Math.max(0, aim - live.length);
  if (start > 0 && nowMs < view.startBlockedUntilMs) {
    wakeAt(view.startBlockedUntilMs);
    start = 0;
  }

  const stop: string[] = view.containers.filter((c) => c.state === "draining" && c.active === 0).map((c) => c.id);
  const idle = ready
    .filter((c) => c.active === 0 && c.idleSinceMs !== null)
    .sort((a, b) => a.idleSinceMs! - b.idleSinceMs!);
  let count = live.length;
  for (const c of idle) {
    const due = c.idleSinceMs! + limits.scaledownWindowMs;
    if (count <= aim) break;
    if (due <= nowMs) {
      stop.push(c.id);
      count--;
    } else {
      wakeAt(due);
    }
  }
  return { assign, start, stop, wakeAtMs };
}
