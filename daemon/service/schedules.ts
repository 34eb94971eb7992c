/**
 * Runs deployed functions on their schedules (issue 21): each run is a call like any other
 * (retries, logs, the dashboard), marked as scheduled. The next run is stored, so after downtime a
 * missed run happens once (the next one is then counted from now, not once per missed tick). A run
 * whose previous scheduled call is still queued (not started) is skipped: runs never pile up
 * behind a busy function; one whose previous call is running starts beside it (as Modal's do).
 * A redeploy without the schedule stops it; a stopped app's schedules wait for its next deploy.
 */
import type { FunctionSpec } from "../../protocol/function-spec.js";
import { nextRun } from "../../protocol/schedule.js";
import type { Logger } from "../logger.js";
import type { ScheduleStore } from "../store/schedule-store.js";

export interface SchedulesDeps {
  store: ScheduleStore;
  /** Submits a scheduled call of a function (no arguments); resolves its ID. */
  submit: (app: string, fn: string) => Promise<string>;
  /** Whether a call is still queued (not started). */
  isQueued: (callId: string) => boolean;
  /** Whether an app is deployed and not stopped. */
  isServing: (app: string) => boolean;
  log: Logger;
  clock?: () => number;
}

/** setTimeout's longest delay; a later run is armed again when this one fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class Schedules {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private firing = false;
  private closed = false;

  constructor(private readonly d: SchedulesDeps) {
    this.now = d.clock ?? Date.now;
  }

  /** A deploy of `app`: its functions' schedules start, change (counted again from now) or stop. */
  apply(app: string, specs: readonly FunctionSpec[]): void {
    const now = this.now();
    const existing = new Map(this.d.store.list().filter((s) => s.app === app).map((s) => [s.function, s]));
    for (const spec of specs) {
      if (!spec.schedule) continue;
      const json = JSON.stringify(spec.schedule);
      const known = existing.get(spec.name);
      existing.delete(spec.name);
      if (known?.spec === json) continue; // unchanged: its stored next run stands (a missed one included)
      this.d.store.upsert(app, spec.name, json, nextRun(spec.schedule, now));
      this.d.log.info("schedule set", { app, function: spec.name, schedule: json });
    }
    for (const gone of existing.keys()) {
      this.d.store.remove(app, gone);
      this.d.log.info("schedule removed", { app, function: gone });
    }
    this.arm();
  }

  /** When a function runs next; null when it has no schedule. */
  nextRunAt(app: string, fn: string): number | null {
    return this.d.store.list().find((s) => s.app === app && s.function === fn)?.nextRunAt ?? null;
  }

  start(): void {
    this.arm();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.closed) return;
    const first = this.d.store.list()[0];
    if (!first) return;
    this.timer = setTimeout(() => void this.fire(), Math.min(MAX_DELAY_MS, Math.max(0, first.nextRunAt - this.now())));
    this.timer.unref();
  }

  /** Runs every schedule that is due, once each, then arms the next. */
  private async fire(): Promise<void> {
    if (this.firing) return;
    this.firing = true;
    try {
      const now = this.now();
      for (const s of this.d.store.list()) {
        if (s.nextRunAt > now) break;
        const next = nextRun(JSON.parse(s.spec), now);
        if (!this.d.isServing(s.app)) {
          this.d.store.ran(s.app, s.function, now, null, next);
          continue;
        }
        if (s.lastCallId && this.d.isQueued(s.lastCallId)) {
          this.d.log.warn("scheduled run skipped: the previous one is still queued", { app: s.app, function: s.function, call: s.lastCallId });
          this.d.store.ran(s.app, s.function, now, null, next);
          continue;
        }
        const callId = await this.d.submit(s.app, s.function).catch((err: Error) => {
          this.d.log.warn("scheduled run failed to start", { app: s.app, function: s.function, err: err.message });
          return null;
        });
        this.d.store.ran(s.app, s.function, now, callId, next);
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }
}
