/**
 * Stopping one input in a shared container (issue 22): its call has ended (cancelled, timed out,
 * its app stopped), but the function may still be running. The agent is asked to stop it (a
 * `cancel` message); the input keeps its slot until the agent answers for it, so a container never
 * runs more than maxInputs at once. One that does not stop within the grace gets its container
 * replaced, and only then do the container's other inputs count as lost.
 */
import type { DaemonToAgent } from "../../protocol/agent-messages.js";
import type { Logger } from "../logger.js";
import { stoppingKey, type ContainerEntry, type FunctionPool, type Lease } from "./pool.js";

export interface InputStopsDeps {
  send(c: ContainerEntry, msg: DaemonToAgent): void;
  /** Replaces the container (its other inputs are lost and run again). */
  kill(pool: FunctionPool, c: ContainerEntry, why: string): void;
  /** A stopping input's slot is free again. */
  released(pool: FunctionPool, c: ContainerEntry): void;
  log: Logger;
  /** How long an input may take to stop once asked (default 30 s). */
  graceMs: number;
}

export class InputStops {
  constructor(private readonly d: InputStopsDeps) {}

  /**
   * Moves a running input's lease to `stopping` and asks its agent to stop it; `why` says what
   * ended its call. A container that runs this input alone (maxInputs 1) is replaced at once
   * instead: it protects no neighbour, and what it holds (a GPU) is free sooner.
   */
  stop(pool: FunctionPool, c: ContainerEntry, lease: Lease, why: string): void {
    clearTimeout(lease.timer);
    if (c.leases.get(lease.call.id) === lease) c.leases.delete(lease.call.id);
    if (pool.spec.maxInputs === 1 && c.leases.size === 0 && c.stopping.size === 0 && c.requests.size === 0) {
      this.d.kill(pool, c, `its call ${lease.call.id} attempt ${lease.attempt} ended: ${why}`);
      return;
    }
    const key = stoppingKey(lease.call.id, lease.attempt);
    const timer = setTimeout(() => this.overdue(pool, c, key, why), this.d.graceMs);
    timer.unref?.();
    const stopping: Lease = { ...lease, timer, waiting: false };
    c.stopping.set(key, stopping);
    this.d.send(c, { type: "cancel", callId: lease.call.id, attempt: lease.attempt, reason: why });
  }

  /** The agent answered for an input: true when it was a stopping one, whose slot is free now. */
  release(pool: FunctionPool, c: ContainerEntry, callId: string, attempt: number): boolean {
    const key = stoppingKey(callId, attempt);
    const lease = c.stopping.get(key);
    if (!lease) return false;
    clearTimeout(lease.timer);
    c.stopping.delete(key);
    this.d.released(pool, c);
    return true;
  }

  /** The container is gone: its stopping inputs need nothing more (their calls ended already). */
  drop(c: ContainerEntry): void {
    for (const lease of c.stopping.values()) clearTimeout(lease.timer);
    c.stopping.clear();
  }

  private overdue(pool: FunctionPool, c: ContainerEntry, key: string, why: string): void {
    if (!c.stopping.has(key)) return;
    const [callId, attempt] = key.split("#");
    this.d.log.warn("an input did not stop when asked: its container is replaced", { call: callId, attempt, container: c.id, why });
    this.d.kill(pool, c, `call ${callId} attempt ${attempt} did not stop within ${this.d.graceMs / 1000} s of being asked (${why})`);
  }
}
