/**
 * What happens to a live call when something happens to it: the state machine (`transition`)
 * decides, the change is committed with a compare-and-set (a requeue together with the record of
 * the attempt that ended, the call's history), then published. The dispatcher decides when; this
 * decides what is written and told.
 */
import type { RemoteError } from "../../protocol/remote-error.js";
import { CallStatus, transition, type CallEvent } from "../core/call-state.js";
import type { Logger } from "../logger.js";
import type { CallRecord, CallStore } from "../store/call-store.js";
import type { EventBus } from "./event-bus.js";
import type { FunctionPool, LiveCall } from "./pool.js";
import type { RunningMarks } from "./running-marks.js";

export interface CallOutcomesDeps {
  calls: CallStore;
  bus: EventBus;
  log: Logger;
  marks: RunningMarks;
  /** The calls the daemon is responsible for: a finished call leaves it. */
  live: Map<string, LiveCall>;
  /** Plans a pool again (a requeued call waits in it). */
  pump: (pool: FunctionPool) => void;
  clock: () => number;
}

export class CallOutcomes {
  private lastTs = { ms: -1, iso: "" };

  constructor(private readonly d: CallOutcomesDeps) {}

  /**
   * The call's state as the store has it: a running mark not yet written is dropped, and the call
   * moves on from queued (one write instead of two for a call that finished within a commit).
   */
  private storedFrom(call: LiveCall, from: { status: CallStatus; attempt: number }): { status: CallStatus; attempt: number; unmarked?: true } {
    const stored = from.status === CallStatus.running ? this.d.marks.storedStatus(call.runningMark) : null;
    call.runningMark = null;
    return stored === "queued" ? { status: CallStatus.queued, attempt: from.attempt, unmarked: true } : from;
  }

  /** Publishes the step a call took, after the running step it took unmarked (streams see every step). */
  private publishStep(call: LiveCall, stored: { attempt: number; unmarked?: true }, status: CallStatus, attempt: number): void {
    // Its running step is told with the time it started, not now.
    if (stored.unmarked) this.publishStatus(call, CallStatus.running, stored.attempt, call.startedAt ?? undefined);
    this.publishStatus(call, status, attempt);
  }

  /** Applies an event to a live call, persists the result (a requeue records the ended attempt), and requeues or finishes it. */
  async apply(pool: FunctionPool, call: LiveCall, ev: CallEvent, resultJson?: string): Promise<CallStatus | null> {
    const from = { status: call.status, attempt: call.attempt };
    const tr = transition({ ...from, lost: call.lost }, ev, pool.spec.retries);
    if (!tr.ok) {
      this.d.log.warn("ignored call event", { call: call.id, event: ev.type, detail: tr.detail });
      return null;
    }
    call.lost = tr.to.lost ?? call.lost;
    if (tr.to.status === CallStatus.queued) {
      const stored = this.storedFrom(call, from);
      const ended = {
        attempt: from.attempt,
        outcome: ev.type === "lose" ? ("lost" as const) : ("failed" as const),
        containerId: call.containerId,
        startedAt: call.startedAt,
        endedAt: this.d.clock(),
        error: tr.error ?? null,
      };
      addGpuSeconds(call, from.status, ended.endedAt);
      call.status = CallStatus.queued;
      call.attempt = tr.to.attempt;
      call.runAt = this.d.clock() + (tr.retryInMs ?? 0);
      call.containerId = null;
      pool.addDelayed(call);
      const update = { status: CallStatus.queued, attempt: tr.to.attempt, runAt: call.runAt, containerId: null, error: tr.error ?? null, lost: call.lost };
      const ok = await this.d.calls.requeue(call.id, stored, update, ended);
      if (ok) this.publishStep(call, stored, CallStatus.queued, tr.to.attempt);
      this.d.pump(pool);
      return CallStatus.queued;
    }
    await this.finish(pool, call, from, tr.to.status, tr.to.attempt, { resultJson, error: tr.error });
    return tr.to.status;
  }

  async finish(
    pool: FunctionPool,
    call: LiveCall,
    from: { status: CallStatus; attempt: number },
    status: CallStatus,
    attempt: number,
    out: { resultJson?: string; error?: RemoteError },
  ): Promise<void> {
    const now = this.d.clock();
    addGpuSeconds(call, from.status, now);
    call.status = status;
    this.d.live.delete(call.id);
    const rec: CallRecord = {
      id: call.id,
      app: call.app,
      function: call.function,
      status,
      attempt,
      // The container that ran the last attempt stays on record (the dashboard's call page shows it).
      containerId: from.status === CallStatus.running ? call.containerId : null,
      createdAt: call.createdAt,
      runAt: call.runAt,
      startedAt: call.startedAt,
      finishedAt: now,
      expiresAt: now + pool.spec.resultTtlMs,
      expired: false,
      resultJson: out.resultJson ?? null,
      ...(out.error ? { error: out.error } : {}),
      lost: call.lost,
      ...(call.gpuSeconds !== undefined ? { gpuSeconds: Math.round(call.gpuSeconds * 1000) / 1000 } : {}),
    };
    const stored = this.storedFrom(call, from);
    const release = call.syncHold;
    call.syncHold = undefined;
    const ok = await this.d.calls.finish(rec, stored, release);
    if (ok) this.publishStep(call, stored, status, attempt);
    else this.d.log.warn("store refused finish", { call: call.id, status, attempt });
  }


  publishStatus(call: LiveCall, status = call.status, attempt = call.attempt, atMs?: number): void {
    const ts = atMs === undefined ? this.isoNow() : new Date(atMs).toISOString();
    this.d.bus.publish({ type: "call.status", call_id: call.id, app: call.app, function: call.function, status, attempt, ts });
  }

  /** Now as ISO text, made once per millisecond (events come by the thousand in a batch). */
  isoNow(): string {
    const ms = this.d.clock();
    if (ms !== this.lastTs.ms) this.lastTs = { ms, iso: new Date(ms).toISOString() };
    return this.lastTs.iso;
  }
}

/** Adds the GPU-seconds of the attempt ending at `endMs` (its duration × the GPUs its container held) to the call's; none for an attempt on no GPU. */
function addGpuSeconds(call: LiveCall, from: CallStatus, endMs: number): void {
  if (from !== CallStatus.running || call.startedAt === null || !call.gpus) return;
  call.gpuSeconds = (call.gpuSeconds ?? 0) + (Math.max(0, endMs - call.startedAt) / 1000) * call.gpus;
  call.gpus = 0;
}
