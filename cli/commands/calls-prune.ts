/** `gantry calls prune`: deletes finished calls past the history window now, and shrinks the database. */
import type { Command } from "commander";
import { MAX_HISTORY_DAYS, type PruneEvent, type PruneProgress, type PruneReport } from "../../protocol/prune.js";
import { formatBytes } from "../../protocol/units.js";
import { errorFromApi, GantryError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import type { Runner } from "../runner.js";

function parseDays(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < 0 || n > MAX_HISTORY_DAYS) {
    throw new UsageError(`--older-than-days must be a number of days from 0 to ${MAX_HISTORY_DAYS}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const count = (n: number) => n.toLocaleString("en-US");

function progressLine(p: PruneProgress): string {
  return `pruning: ${count(p.calls)} calls, ${count(p.attempts)} attempts, ${formatBytes(p.bytes)} deleted so far…`;
}

export function describePrune(r: PruneReport): string {
  const what =
    `pruned ${count(r.calls)} calls that finished before ${r.cutoff} (older than ${r.older_than_days} day${r.older_than_days === 1 ? "" : "s"}, results expired), ` +
    `${count(r.attempts)} attempts, ${count(r.items)} items, ${count(r.idempotency_keys)} idempotency keys: ${formatBytes(r.bytes)} of stored values`;
  const shrink = r.incremental_vacuum ? `${count(r.vacuumed_pages)} pages handed back` : "freed pages are reused, the file does not shrink (auto_vacuum is off)";
  const size = `database ${formatBytes(r.db_bytes_before)} → ${formatBytes(r.db_bytes_after)} (${shrink}) in ${(r.took_ms / 1000).toFixed(1)} s`;
  return [what, size, ...(r.interrupted ? ["interrupted: the daemon is stopping; the rest is pruned later"] : [])].join("\n");
}

export function registerCallsPrune(calls: Command, run: Runner): void {
  calls
    .command("prune")
    .option("--older-than-days <days>", "prune calls that finished longer ago than this (default: the daemon's --history window, 7 days)")
    .description("delete finished calls past the history window now (results not yet expired are kept), and shrink the database")
    .action(run<{ olderThanDays?: string }>(async (o) => {
      const days = parseDays(o.olderThanDays);
      const { out, client } = makeContext(o);
      let report: PruneReport | null = null;
      try {
        await client.transport.stream("POST", "/v1/calls/prune", days === undefined ? {} : { older_than_days: days }, (line) => {
          const e = line as PruneEvent;
          if (e.type === "progress") out.progress(progressLine(e));
          else if (e.type === "error") throw errorFromApi(500, e);
          else if (e.type === "done") {
            const r: PruneReport & { type?: string } = { ...e };
            delete r.type;
            report = r;
          }
        });
      } finally {
        out.endProgress();
        client.close();
      }
      const done = report as PruneReport | null;
      if (!done) throw new GantryError("the daemon ended the prune without its report (it may have stopped meanwhile)");
      out.result(done, () => describePrune(done));
    }));
}
