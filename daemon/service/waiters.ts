import type { EventEmitter } from "node:events";
import { TERMINAL, type CallStatus } from "../core/call-state.js";
import type { EventBus } from "./event-bus.js";

/** Lets requests wait (long-poll) for a call to finish, or for a generator call's next item, woken by committed events. */
export class Waiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Readers of a generator call's items: woken by its next item or its end. */
  private readonly itemWaiting = new Map<string, Set<() => void>>();

  constructor(bus: EventBus) {
    bus.on("event", (e) => {
      const finished = e.type === "call.status" && TERMINAL.has(e.status as CallStatus);
      if (finished || e.type === "call.item") this.wakeAll(this.itemWaiting, e.call_id);
      if (finished) this.wakeAll(this.waiting, e.call_id);
    });
  }

  private wakeAll(map: Map<string, Set<() => void>>, callId: string): void {
    const set = map.get(callId);
    if (!set) return;
    map.delete(callId);
    for (const wake of set) wake();
  }

  /** Resolves at the call's next item or its end, after `ms`, or when `until` emits "close". */
  waitItem(callId: string, ms: number, until?: EventEmitter): Promise<void> {
    return this.park(this.itemWaiting, callId, ms, until);
  }

  /** Calls `onFinished` once when the call finishes; returns a function that stops watching. */
  watch(callId: string, onFinished: () => void): () => void {
    const set = this.waiting.get(callId) ?? new Set();
    this.waiting.set(callId, set);
    const once = () => onFinished();
    set.add(once);
    return () => {
      set.delete(once);
      if (set.size === 0 && this.waiting.get(callId) === set) this.waiting.delete(callId);
    };
  }

  /** Resolves when the call finishes or after `ms`, whichever is first, or when `until` emits "close". */
  wait(callId: string, ms: number, until?: EventEmitter): Promise<void> {
    return this.park(this.waiting, callId, ms, until);
  }

  private park(map: Map<string, Set<() => void>>, callId: string, ms: number, until?: EventEmitter): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const set = map.get(callId) ?? new Set();
      map.set(callId, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && map.get(callId) === set) map.delete(callId);
        until?.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      until?.once("close", done);
    });
  }
}
