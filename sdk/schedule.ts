/**
 * Schedules for TypeScript functions, as Modal's JS names them (issue 21):
 * `app.function({ schedule: Period({ minutes: 5 }) }, async function refresh() {…})`, or
 * `schedule: Cron("0 9 * * 1-5", { timezone: "Europe/Paris" })`. The daemon calls the function with
 * no arguments at each time.
 */
import type { ScheduleSpec } from "../protocol/function-spec.js";
import { scheduleProblem } from "../protocol/schedule.js";

/** Every `days + hours + minutes + seconds` (1 s to 366 days). */
export function Period(p: { days?: number; hours?: number; minutes?: number; seconds?: number }): ScheduleSpec {
  for (const [what, v] of Object.entries(p)) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new Error(`Period({ ${what} }) takes a number ≥ 0, got ${JSON.stringify(v)}`);
  }
  const total = (p.days ?? 0) * 86400 + (p.hours ?? 0) * 3600 + (p.minutes ?? 0) * 60 + (p.seconds ?? 0);
  if (total < 1 || total > 366 * 86400) throw new Error(`a Period runs every 1 s to 366 days; this one is ${total} s`);
  return { period: total };
}

/** At a cron expression's times (5 fields), in `timezone` (an IANA name; default UTC). */
export function Cron(expression: string, opts: { timezone?: string } = {}): ScheduleSpec {
  const s = { cron: expression, timezone: opts.timezone ?? "UTC" };
  const problem = scheduleProblem(s);
  if (problem) throw new Error(problem);
  return s;
}
