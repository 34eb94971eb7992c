/**
 * The history window (issue 22): finished calls, their earlier attempts, generator items, call-graph
 * links and idempotency keys are deleted once they finished longer ago than the window (default 7
 * days) and their result has expired, now and then and on `gantry calls prune`. A prune deletes
 * BATCH_ROWS calls per write of the group commit, each awaited before the next, so calls' own
 * writes go on between batches; then it hands the pages freed back to the file system
 * (incremental vacuum), VACUUM_PAGES per write. Log lines live in files ($GANTRY_HOME/logs), not in
 * the database: their rotation bounds them, not this.
 */
import { MAX_HISTORY_DAYS, type PruneProgress, type PruneReport } from "../../protocol/prune.js";
import type { Logger } from "../logger.js";
import { silentLogger } from "../logger.js";
import { PRUNE_START, type CallHistory } from "../store/call-history.js";
import { fromStore, invalid } from "./errors.js";

export type { PruneProgress, PruneReport };
export const DAY_MS = 24 * 3600 * 1000;
/** Calls looked at per write: a few milliseconds of the event loop each. */
const BATCH_ROWS = 1000;
/** Pages handed back per write (4 KiB pages: 1 MiB). */
const VACUUM_PAGES = 256;
const PRUNE_EVERY_MS = 10 * 60_000;
const FIRST_PRUNE_MS = 60_000;

/** Resolves after the event loop's next turn: writes issued meanwhile commit without a batch beside them. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** `older_than_days` as given: a number of days from 0 (every finished call whose result expired) to MAX_HISTORY_DAYS. */
export function checkedDays(days: unknown): number {
  if (typeof days !== "number" || !Number.isFinite(days) || days < 0 || days > MAX_HISTORY_DAYS) {
    throw invalid(`older_than_days must be a number of days from 0 to ${MAX_HISTORY_DAYS}, got ${JSON.stringify(days)}`);
  }
  return days;
}

export interface HistoryDeps {
  store: Pick<CallHistory, "pruneBatch" | "vacuumStep" | "size" | "checkpoint">;
  /** Finished calls older than this are deleted by the timer. */
  windowMs: number;
  log?: Logger;
  clock?: () => number;
  everyMs?: number;
  firstAfterMs?: number;
  batchRows?: number;
  vacuumPages?: number;
}

export class History {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  /** The prune running now (prunes run one at a time, in the order asked). */
  private last: Promise<unknown> = Promise.resolve();
  private running = 0;
  private stopped = false;

  constructor(private readonly d: HistoryDeps) {
    this.now = d.clock ?? Date.now;
  }

  /** Prunes FIRST_PRUNE_MS after start, then every PRUNE_EVERY_MS (a tick is skipped while a prune runs). */
  start(): void {
    if (this.timer) return;
    const tick = () => {
      if (this.running > 0 || this.stopped) return;
      this.prune().then(
        (r) => r.calls > 0 && this.d.log?.info("history pruned", { calls: r.calls, attempts: r.attempts, bytes: r.bytes, db_bytes: r.db_bytes_after }),
        (err: Error) => (this.d.log ?? silentLogger).warn("history prune failed", { err: err.message }),
      );
    };
    this.timer = setTimeout(() => {
      tick();
      this.timer = setInterval(tick, this.d.everyMs ?? PRUNE_EVERY_MS);
      this.timer.unref();
    }, this.d.firstAfterMs ?? FIRST_PRUNE_MS);
    this.timer.unref();
  }

  /** Stops the timer; a prune under way ends after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.last.catch(() => undefined);
  }

  /**
   * Deletes finished calls older than `olderThanDays` (default: the window) whose result expired,
   * with what is kept by them, then shrinks the file; `onProgress` hears after each batch.
   */
  prune(opts: { olderThanDays?: number; onProgress?: (p: PruneProgress) => void } = {}): Promise<PruneReport> {
    let days: number;
    try {
      days = opts.olderThanDays === undefined ? this.d.windowMs / DAY_MS : checkedDays(opts.olderThanDays);
    } catch (err) {
      return Promise.reject(err);
    }
    this.running++;
    const run = this.last.catch(() => undefined).then(() => this.run(days, opts.onProgress));
    this.last = run;
    return run.finally(() => this.running--).catch((err: unknown) => Promise.reject(fromStore(err)));
  }

  private async run(days: number, onProgress?: (p: PruneProgress) => void): Promise<PruneReport> {
    const started = this.now();
    const cutoff = started - Math.round(days * DAY_MS);
    const before = this.d.store.size();
    const p: PruneProgress = { calls: 0, attempts: 0, items: 0, idempotency_keys: 0, bytes: 0 };
    const max = this.d.batchRows ?? BATCH_ROWS;
    let cursor = PRUNE_START;
    let interrupted = false;
    for (;;) {
      if (this.stopped) {
        interrupted = true;
        break;
      }
      const b = await this.d.store.pruneBatch(cutoff, this.now(), cursor, max);
      p.calls += b.calls;
      p.attempts += b.attempts;
      p.items += b.items;
      p.idempotency_keys += b.keys;
      p.bytes += b.bytes;
      cursor = b.next;
      if (b.scanned > 0) onProgress?.({ ...p });
      if (b.scanned < max) break;
      await turn(); // a commit of call writes alone before the next batch
    }
    const vacuumed = before.incremental && !interrupted ? await this.vacuum() : 0;
    const sizeAfter = this.d.store.size();
    return {
      ...p,
      older_than_days: days,
      cutoff: new Date(cutoff).toISOString(),
      db_bytes_before: before.bytes,
      db_bytes_after: sizeAfter.bytes,
      incremental_vacuum: before.incremental,
      vacuumed_pages: vacuumed,
      interrupted,
      took_ms: this.now() - started,
    };
  }

  /** Hands every free page back, VACUUM_PAGES per write; returns how many. */
  private async vacuum(): Promise<number> {
    let free = this.d.store.size().freePages;
    const first = free;
    const step = this.d.vacuumPages ?? VACUUM_PAGES;
    while (free > 0 && !this.stopped) {
      if (free !== first) await turn();
      const left = await this.d.store.vacuumStep(step);
      if (left >= free) break; // nothing moved (cannot happen with auto_vacuum on; never loop on it)
      free = left;
    }
    if (first > 0) this.d.store.checkpoint();
    return first - free;
  }
}
