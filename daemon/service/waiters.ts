import type { EventEmitter } from "node:events";
import { TERMINAL, type CallStatus } from "../core/call-state.js";
import type { EventBus } from "./event-bus.js";

/** Lets requests wait (long-poll) for a call to finish, woken by committed status events. */
export class Waiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(bus: EventBus) {
    bus.on("event", (e) => {
      if (e.type !== "call.status" || !TERMINAL.has(e.status as CallStatus)) return;
      const set = this.waiting.get(e.call_id);
      if (!set) return;
      this.waiting.delete(e.call_id);
      for (const wake of set) wake();
    });
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
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.waiting.get(callId) ?? new Set();
      this.waiting.set(callId, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiting.get(callId) === set) this.waiting.delete(callId);
        until?.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      until?.once("close", done);
    });
  }
}
