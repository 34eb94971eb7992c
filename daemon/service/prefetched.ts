/**
 * Inputs prefetched into a container (issue 25): sent beyond its free slots, they wait in its agent
 * until a slot frees. The agent says `started` when one begins (its timeout and running mark start
 * then); a draining container is asked to give back those not begun (`withdraw`, answered with
 * `withdrawn`); and those a container never began when it went away are given back too. A call
 * given back is queued again at the front of its pool's queue with the same attempt and nothing
 * counted: the store has it queued all along, so nothing is written.
 */
import { MAX_BATCH_MESSAGE_ITEMS, type DaemonToAgent } from "../../protocol/agent-messages.js";
import { CallStatus, transition } from "../core/call-state.js";
import type { ContainerEntry, FunctionPool, Lease, LiveCall } from "./pool.js";
import type { RunningMarks } from "./running-marks.js";

type CallRef = { callId: string; attempt: number };

export interface PrefetchedDeps {
  send(c: ContainerEntry, msg: DaemonToAgent): void;
  marks: RunningMarks;
  /** Arms an attempt's timeout (from now). */
  armTimeout(pool: FunctionPool, c: ContainerEntry, call: LiveCall, attempt: number): NodeJS.Timeout;
  pump(pool: FunctionPool): void;
  /** A lease left the container: it may be idle now. */
  freed(c: ContainerEntry): void;
  /** Cancels a removed pool's queued calls, as its app's stop did. */
  cancelQueued(pool: FunctionPool, why: string): void;
  now(): number;
}

export class PrefetchedInputs {
  constructor(private readonly d: PrefetchedDeps) {}

  /** A prefetched input has begun in its container: its timeout counts from now. */
  started(pool: FunctionPool, c: ContainerEntry, msg: CallRef): void {
    const lease = c.leases.get(msg.callId);
    if (!lease || lease.attempt !== msg.attempt || !lease.waiting) return;
    lease.waiting = false;
    const call = lease.call;
    call.startedAt = this.d.now();
    if (call.runningMark) this.d.marks.begin(call.runningMark, call.startedAt);
    lease.timer = this.d.armTimeout(pool, c, call, msg.attempt);
  }

  /** A container drains (a new deployment or secret replaced it): its inputs not begun are asked back, to run on a new one. */
  withdraw(c: ContainerEntry): void {
    const inputs: CallRef[] = [];
    for (const l of c.leases.values()) if (l.waiting) inputs.push({ callId: l.call.id, attempt: l.attempt });
    for (let i = 0; i < inputs.length; i += MAX_BATCH_MESSAGE_ITEMS) this.d.send(c, { type: "withdraw", inputs: inputs.slice(i, i + MAX_BATCH_MESSAGE_ITEMS) });
  }

  /** The agent gave back an input unbegun: it is queued again, or cancelled as its pool's queue was (its app stopped). */
  withdrawn(pool: FunctionPool, c: ContainerEntry, msg: CallRef): void {
    const lease = c.leases.get(msg.callId);
    // Only a container that was asked (it drains) gives inputs back: one that is not could bounce them.
    if (!lease || lease.attempt !== msg.attempt || !lease.waiting || c.state === "ready" || c.state === "starting") return;
    c.leases.delete(msg.callId);
    this.d.freed(c);
    this.giveBack(pool, [lease]);
    if (pool.removed) this.d.cancelQueued(pool, pool.removedWhy ?? "its function was removed");
  }

  /** Inputs that never began are queued again at the front of their pool's queue, in the order they were sent. */
  giveBack(pool: FunctionPool, leases: readonly Lease[]): void {
    const back: LiveCall[] = [];
    for (const { call, attempt } of leases) {
      const tr = transition({ status: call.status, attempt: call.attempt, lost: call.lost }, { type: "return", attempt }, pool.spec.retries);
      if (!tr.ok) continue;
      if (call.runningMark) call.runningMark.cancelled = true;
      call.runningMark = null;
      call.status = CallStatus.queued;
      call.containerId = null;
      call.startedAt = null;
      call.gpus = 0;
      back.push(call);
    }
    pool.queue.unshift(back);
    this.d.pump(pool);
  }
}
