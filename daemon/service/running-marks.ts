/**
 * Marks calls "running" in the store only once they have run for a while. A call that ends sooner
 * is written once, from queued to its end (recovery treats a queued call like a lost running one,
 * so a missing mark changes nothing); longer ones are marked in batches, riding with the next
 * commit. `calls ls` shows "running" from then on; status streams get the step then, or, for a
 * call that ends sooner, just before its end.
 */
import type { CallStore, RunningMarkWrite } from "../store/call-store.js";
import type { LiveCall } from "./pool.js";

/** How long a call runs before it is marked running in the store. */
export const RUNNING_MARK_AFTER_MS = 20;

export interface RunningMark extends RunningMarkWrite {
  call: LiveCall;
  /** When it was dispatched. */
  at: number;
}

export class RunningMarks {
  /** Marks not yet written, in dispatch order. */
  private readonly waiting: RunningMark[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly d: {
      calls: CallStore;
      clock: () => number;
      /** A mark written and committed. */
      onMarked: (mark: RunningMark) => void;
      onError: (err: unknown) => void;
    },
  ) {}

  /**
   * A call was dispatched: it is marked running if it still runs a little later. A prefetched one
   * (`held`) waits in its agent, still queued in the store, until `begin` says it began.
   */
  add(call: LiveCall, now: number, held = false): RunningMark {
    const mark: RunningMark = { call, at: now, id: call.id, attempt: call.attempt, startedAt: now, containerId: call.containerId!, cancelled: false, written: false };
    if (!held) this.begin(mark, now);
    return mark;
  }

  /** A held mark's input began now: it is marked running if it still runs a little later. */
  begin(mark: RunningMark, now: number): void {
    mark.at = now;
    mark.startedAt = now;
    this.waiting.push(mark);
    if (!this.timer) this.arm(now);
  }

  /**
   * The call's state as the store has it, for the write that ends its attempt: a mark not yet
   * written is cancelled, and the call moves on from queued.
   */
  storedStatus(mark: RunningMark | null): "queued" | "running" | null {
    if (!mark) return null;
    if (mark.written) return "running";
    mark.cancelled = true;
    return "queued";
  }

  private arm(now: number): void {
    const next = this.waiting[this.head];
    if (!next) return;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, next.at + RUNNING_MARK_AFTER_MS - now));
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = null;
    const cutoff = this.d.clock() - RUNNING_MARK_AFTER_MS;
    const due: RunningMark[] = [];
    while (this.head < this.waiting.length && this.waiting[this.head]!.at <= cutoff) {
      const m = this.waiting[this.head++]!;
      if (!m.cancelled) due.push(m);
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    if (due.length) {
      this.d.calls.markRunning(due).then(
        (written) => (written as RunningMark[]).forEach((m) => this.d.onMarked(m)),
        (err) => this.d.onError(err),
      );
    }
    this.arm(this.d.clock());
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
