/**
 * Schedules (issue 21): every N seconds (`Period`) or at a cron expression's times in a time zone
 * (`Cron`, parsed by the well-kept cron-parser, time zones through luxon). Shared by the daemon
 * (authoritative: the next run) and the SDKs (early errors).
 */
import { CronExpressionParser } from "cron-parser";
import type { ScheduleSpec } from "./function-spec.js";

/** Why a schedule cannot run, or null: a cron expression that does not parse, a time zone that does not exist. */
export function scheduleProblem(s: ScheduleSpec): string | null {
  if ("period" in s) return null;
  const tz = s.timezone ?? "UTC";
  try {
    Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    return `schedule: ${JSON.stringify(tz)} is not a time zone (use IANA names such as "UTC" or "Europe/Paris")`;
  }
  if (s.cron.trim().split(/\s+/).length !== 5) return `schedule: cron expression ${JSON.stringify(s.cron)} must have 5 fields (minute hour day-of-month month day-of-week)`;
  try {
    CronExpressionParser.parse(s.cron, { tz }).next();
  } catch (err) {
    return `schedule: cron expression ${JSON.stringify(s.cron)} is invalid: ${(err as Error).message}`;
  }
  return null;
}

/** The first run strictly after `afterMs`. */
export function nextRun(s: ScheduleSpec, afterMs: number): number {
  if ("period" in s) return afterMs + s.period * 1000;
  return CronExpressionParser.parse(s.cron, { tz: s.timezone ?? "UTC", currentDate: new Date(afterMs) }).next().getTime();
}

/** How a schedule reads in lists: "every 2 s", "cron 0 9 * * 1-5 (Europe/Paris)". */
export function describeSchedule(s: ScheduleSpec): string {
  if ("cron" in s) return `cron ${s.cron}${s.timezone && s.timezone !== "UTC" ? ` (${s.timezone})` : ""}`;
  const p = s.period;
  for (const [unit, n] of [["d", 86400], ["h", 3600], ["min", 60]] as const) if (p % n === 0) return `every ${p / n} ${unit}`;
  return `every ${p} s`;
}
