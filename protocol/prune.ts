/**
 * `POST /v1/calls/prune` (gantry calls prune): what the daemon streams back, one JSON object a line.
 * Finished calls past the history window are deleted with their attempts, generator items and
 * idempotency keys, then the database file shrinks (incremental vacuum).
 */

/** The most days `older_than_days` and `--history` take (100 years: keep everything). */
export const MAX_HISTORY_DAYS = 36_500;

export interface PruneProgress {
  calls: number;
  attempts: number;
  items: number;
  idempotency_keys: number;
  /** Bytes of stored values deleted (inputs, results, errors, items). */
  bytes: number;
}

export interface PruneReport extends PruneProgress {
  older_than_days: number;
  /** Calls that finished before this were deleted (those whose result had not expired yet aside). */
  cutoff: string;
  /** The database file's size as SQLite counts it (page count × page size), before and after. */
  db_bytes_before: number;
  db_bytes_after: number;
  /** Whether freed pages are handed back to the file system (false: kept in the file for reuse). */
  incremental_vacuum: boolean;
  vacuumed_pages: number;
  /** True when the daemon began stopping during the prune: what was done is kept, the rest waits. */
  interrupted: boolean;
  took_ms: number;
}

export type PruneEvent =
  | ({ type: "progress" } & PruneProgress)
  | ({ type: "done" } & PruneReport)
  | { type: "error"; error: { code: string; message: string } };
