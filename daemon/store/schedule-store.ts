/**
 * Schedules (table `schedules`, migration 9): a deployed function's schedule and its next run,
 * kept so that a restart neither loses a run nor repeats one. Few rows, rare writes: each is its
 * own statement.
 */
import type { Db } from "./database.js";

export interface StoredSchedule {
  app: string;
  function: string;
  /** The schedule's JSON (ScheduleSpec), to see whether a redeploy changed it. */
  spec: string;
  nextRunAt: number;
  lastRunAt: number | null;
  lastCallId: string | null;
}

interface Row {
  app: string;
  function: string;
  spec: string;
  next_run_at: number;
  last_run_at: number | null;
  last_call_id: string | null;
}

const fromRow = (r: Row): StoredSchedule => ({ app: r.app, function: r.function, spec: r.spec, nextRunAt: r.next_run_at, lastRunAt: r.last_run_at, lastCallId: r.last_call_id });

export class ScheduleStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      list: db.prepare(`SELECT * FROM schedules ORDER BY next_run_at`),
      upsert: db.prepare(
        `INSERT INTO schedules (app, function, spec, next_run_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (app, function) DO UPDATE SET spec = excluded.spec, next_run_at = excluded.next_run_at`,
      ),
      remove: db.prepare(`DELETE FROM schedules WHERE app = ? AND function = ?`),
      ran: db.prepare(`UPDATE schedules SET last_run_at = ?, last_call_id = coalesce(?, last_call_id), next_run_at = ? WHERE app = ? AND function = ?`),
    };
  }

  list(): StoredSchedule[] {
    return (this.stmts.list.all() as Row[]).map(fromRow);
  }

  upsert(app: string, fn: string, spec: string, nextRunAt: number): void {
    this.stmts.upsert.run(app, fn, spec, nextRunAt);
  }

  remove(app: string, fn: string): void {
    this.stmts.remove.run(app, fn);
  }

  /** A run happened at `at` (its call, or null when it was skipped); the next is at `nextRunAt`. */
  ran(app: string, fn: string, at: number, callId: string | null, nextRunAt: number): void {
    this.stmts.ran.run(at, callId, nextRunAt, app, fn);
  }
}
