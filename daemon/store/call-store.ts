import type { Variant } from "../../protocol/cls-variant.js";
import type { RemoteError } from "../../protocol/remote-error.js";
import { CallHistory } from "./call-history.js";
import { CallItems } from "./item-store.js";
import type { CallStatus } from "../core/call-state.js";
import type Database from "better-sqlite3";
import type { Db } from "./database.js";
import type { GroupCommit } from "./group-commit.js";
import { IdempotencyKeys } from "./idempotency.js";

/** A call's "running" mark, waiting to be written; cancelled when the call ends first. */
export interface RunningMarkWrite {
  id: string;
  attempt: number;
  startedAt: number;
  containerId: string;
  cancelled: boolean;
  written: boolean;
}

/** A call as stored, without its input (reads that answer clients never need it). */
export interface CallRecord {
  id: string;
  app: string;
  function: string;
  status: CallStatus;
  attempt: number;
  containerId: string | null;
  createdAt: number;
  runAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  expiresAt: number | null;
  expired: boolean;
  /** The result as the JSON text the agent sent: answered as is, parsed only where needed. */
  resultJson: string | null;
  error?: RemoteError;
  /** Attempts that ended with their container lost: re-runs that used none of the function's retries. */
  lost: number;
  /** A finished call's GPU-seconds (its attempts' durations × the GPUs each held); null when it held none. */
  gpuSeconds?: number | null;
}

/** An attempt that ended without being the call's outcome: why the call ran again. */
export interface AttemptRecord {
  attempt: number;
  /** "failed": the function failed and a retry followed; "lost": its container went away, a re-run followed. */
  outcome: "failed" | "lost";
  containerId: string | null;
  startedAt: number | null;
  endedAt: number;
  error: RemoteError | null;
}

/** Keyword arguments of a call (Python functions take them); null when there are none. */
export type CallKwargs = Record<string, unknown> | null;

/** A call's arguments: JSON values, or (from Python callers to Python functions) the pickled (args, kwargs). */
export interface CallInput {
  args: unknown[];
  kwargs: CallKwargs;
  /** base64 of the pickled (args, kwargs); args is then [] and kwargs null. Never unpickled here. */
  pickle?: string;
  /** The call that spawned this one, from inside its container (the call graph). */
  parentId?: string;
  /** A class's call: the method it runs. */
  method?: string;
  /** A class's call with parameters or options (`Model(size=2)`): its pool within the class, canonical. */
  variant?: Variant;
  /** Started by the function's schedule, not by a caller. */
  scheduled?: boolean;
}

/**
 * Pickled values sit in the input and result columns as this prefix and their base64: no JSON
 * text starts with "p", so a column's text says its own format.
 */
export const PICKLED_PREFIX = "pickle:";

/** How a value an agent sent (a result, an item) is stored: its JSON text, or the prefix and the pickle's base64. */
export function storedValue(v: { value?: unknown; pickled?: string }): string {
  return v.pickled !== undefined ? PICKLED_PREFIX + v.pickled : JSON.stringify(v.value ?? null);
}

/** The base64 of a stored pickled value (a result, an item), or null when it is JSON text. */
export function pickledValue(text: string | null): string | null {
  return text !== null && text.startsWith(PICKLED_PREFIX) ? text.slice(PICKLED_PREFIX.length) : null;
}

/** The input column of an expired call: its bytes are gone (the column cannot be NULL). */
const EXPIRED_INPUT = "";

/** A queued or running call, for the dispatcher: its input is read when it is dispatched. */
export type OpenCall = CallRecord;

/** The input column: the arguments' JSON array, {"args", "kwargs"} when there are keyword arguments, or a pickled input. */
function encodeInput(c: CallInput): string {
  if (c.method !== undefined || c.variant !== undefined || c.scheduled) {
    const { args, kwargs, method, variant, pickle, scheduled } = c;
    return JSON.stringify({ args, kwargs, method, ...(variant !== undefined ? { variant } : {}), ...(pickle !== undefined ? { pickle } : {}), ...(scheduled ? { scheduled } : {}) });
  }
  if (c.pickle !== undefined) return PICKLED_PREFIX + c.pickle;
  return c.kwargs ? JSON.stringify({ args: c.args, kwargs: c.kwargs }) : JSON.stringify(c.args);
}

function decodeInput(input: string): CallInput {
  if (input.startsWith(PICKLED_PREFIX)) return { args: [], kwargs: null, pickle: input.slice(PICKLED_PREFIX.length) };
  const v = JSON.parse(input) as unknown[] | { args: unknown[]; kwargs: Record<string, unknown>; method?: string; variant?: Variant; pickle?: string; scheduled?: boolean };
  if (Array.isArray(v)) return { args: v, kwargs: null };
  return {
    args: v.args,
    kwargs: v.kwargs,
    ...(v.method !== undefined ? { method: v.method } : {}),
    ...(v.variant !== undefined ? { variant: v.variant } : {}),
    ...(v.pickle !== undefined ? { pickle: v.pickle } : {}),
    ...(v.scheduled ? { scheduled: true } : {}),
  };
}

interface Row {
  id: string;
  app: string;
  function: string;
  status: CallStatus;
  attempt: number;
  input?: string;
  result: string | null;
  error: string | null;
  container_id: string | null;
  created_at: number;
  run_at: number;
  started_at: number | null;
  finished_at: number | null;
  expires_at: number | null;
  expired: number;
  lost: number;
  gpu_seconds: number | null;
}

/** Every column but the input. */
const COLUMNS =
  "id, app, function, status, attempt, result, error, container_id, created_at, run_at, started_at, finished_at, expires_at, expired, lost, " +
  "(SELECT gpu_seconds FROM call_gpu_seconds WHERE call_id = calls.id) AS gpu_seconds";

function fromRow(r: Row): CallRecord {
  const rec: CallRecord = {
    id: r.id,
    app: r.app,
    function: r.function,
    status: r.status,
    attempt: r.attempt,
    containerId: r.container_id,
    createdAt: r.created_at,
    runAt: r.run_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    expiresAt: r.expires_at,
    expired: r.expired === 1,
    resultJson: r.result,
    lost: r.lost,
  };
  if (r.gpu_seconds !== null) rec.gpuSeconds = r.gpu_seconds;
  if (r.error !== null) rec.error = JSON.parse(r.error) as RemoteError;
  return rec;
}

/** What a compare-and-set writes once `transition` allowed a change. */
export interface CallUpdate {
  status: CallStatus;
  attempt: number;
  runAt?: number;
  startedAt?: number | null;
  finishedAt?: number | null;
  expiresAt?: number | null;
  containerId?: string | null;
  /** JSON text of the result. */
  resultJson?: string | null;
  error?: RemoteError | null;
  /** The call's count of lost containers, when it changed. */
  lost?: number;
}

export interface CallQuery {
  app?: string;
  function?: string;
  status?: CallStatus;
  limit: number;
  /** Only calls with an id below this one (paging back in time). */
  before?: string;
  /** Only calls with an id above this one: the `limit` oldest of them (paging forward in time). */
  after?: string;
  /** Only calls with an id at or above this one (IDs sort by creation time: see callIdAt). */
  since?: string;
}

const INSERT = "INSERT INTO calls (id, app, function, status, attempt, input, created_at, run_at) VALUES";
/** Rows per multi-row insert (batches): fewer statements for the same rows. */
const INSERT_ROWS = 100;

/** Finished calls kept in memory for reads (their record no longer changes; expiry is a time). */
const RECENT_FINISHED = 20_000;

/**
 * Calls in SQLite. Every state change is a compare-and-set on (id, attempt, status), so a stale
 * writer (an older attempt's late result) changes nothing. Writes go through the group commit.
 * The records of recently finished calls are also kept in memory, so that reading a result just
 * written (a long-poll woken, a results stream) does not read it back from SQLite.
 */
export class CallStore {
  private readonly stmts;
  private readonly recent = new Map<string, CallRecord>();
  /** The IDs in `recent`, oldest first, as a ring: the oldest is dropped when a new one comes. */
  private readonly recentRing: Array<string | undefined>;
  private recentNext = 0;
  /** list()'s statements, one per combination of filters (at most 96). */
  private readonly listStatements = new Map<string, Database.Statement>();
  /** Idempotency keys: each claimed in the transaction that inserts its call (insertKeyed). */
  readonly keys: IdempotencyKeys;
  /** Generator calls' items. */
  readonly items: CallItems;
  /** Finished calls past the history window: deleted in batches (service/history.ts). */
  readonly history: CallHistory;

  constructor(
    private readonly db: Db,
    private readonly commit: GroupCommit,
    /** How many finished calls' records are kept in memory. */
    private readonly recentFinished = RECENT_FINISHED,
  ) {
    this.recentRing = new Array(recentFinished);
    this.keys = new IdempotencyKeys(db);
    this.items = new CallItems(db, commit);
    this.history = new CallHistory(db, commit, (ids) => {
      for (const id of ids) this.recent.delete(id);
    });
    this.stmts = {
      insert: db.prepare(`${INSERT} (?, ?, ?, 'queued', 1, ?, ?, ?)`),
      insertRows: db.prepare(`${INSERT} ${Array.from({ length: INSERT_ROWS }, () => "(?, ?, ?, 'queued', 1, ?, ?, ?)").join(", ")}`),
      get: db.prepare(`SELECT ${COLUMNS} FROM calls WHERE id = ?`),
      open: db.prepare(`SELECT ${COLUMNS} FROM calls WHERE status IN ('queued', 'running') ORDER BY id`),
      input: db.prepare(`SELECT input FROM calls WHERE id = ?`).pluck(),
      markRunning: db.prepare(`UPDATE calls SET status = 'running', started_at = ?, container_id = ? WHERE id = ? AND attempt = ? AND status = 'queued'`),
      finish: db.prepare(
        `UPDATE calls SET status = ?, attempt = ?, started_at = coalesce(?, started_at), finished_at = ?, expires_at = ?, container_id = ?,
           result = ?, error = ?, lost = ? WHERE id = ? AND attempt = ? AND status = ?`,
      ),
      gpuSeconds: db.prepare(`INSERT OR REPLACE INTO call_gpu_seconds (call_id, gpu_seconds) VALUES (?, ?)`),
      cancelQueued: db.prepare(
        `UPDATE calls SET status = 'cancelled', finished_at = @now, expires_at = @expiresAt, container_id = NULL, error = @error
         WHERE app = @app AND function = @function AND status = 'queued' AND id NOT IN (SELECT value FROM json_each(@running))
         RETURNING id, attempt`,
      ),
      cas: db.prepare(
        `UPDATE calls SET status = @status, attempt = @attempt,
           run_at = coalesce(@runAt, run_at),
           started_at = CASE WHEN @setStarted THEN @startedAt ELSE started_at END,
           finished_at = CASE WHEN @setFinished THEN @finishedAt ELSE finished_at END,
           expires_at = CASE WHEN @setExpires THEN @expiresAt ELSE expires_at END,
           container_id = CASE WHEN @setContainer THEN @containerId ELSE container_id END,
           result = CASE WHEN @setResult THEN @result ELSE result END,
           error = CASE WHEN @setError THEN @error ELSE error END,
           lost = coalesce(@lost, lost)
         WHERE id = @id AND attempt = @fromAttempt AND status = @fromStatus`,
      ),
      // The input goes with the result: an expired call keeps its status, times and error only.
      expire: db.prepare(
        `UPDATE calls SET result = NULL, input = '', expired = 1
         WHERE id IN (SELECT id FROM calls WHERE expired = 0 AND expires_at IS NOT NULL AND expires_at <= ? LIMIT ?) RETURNING id`,
      ).pluck(),
      addAttempt: db.prepare(
        `INSERT OR REPLACE INTO attempts (call_id, attempt, container_id, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      attempts: db.prepare(`SELECT attempt, outcome, container_id, started_at, ended_at, error FROM attempts WHERE call_id = ? ORDER BY attempt`),
      addParent: db.prepare(`INSERT OR IGNORE INTO call_parents (call_id, parent_id) VALUES (?, ?)`),
      children: db.prepare(`SELECT call_id FROM call_parents WHERE parent_id = ? ORDER BY call_id LIMIT ?`).pluck(),
    };
  }

  /** Inserts a new queued call; resolves once it is committed. */
  insert(call: { id: string; app: string; function: string; args: unknown[]; kwargs?: CallKwargs; now: number }): Promise<void> {
    return this.insertMany(call.app, call.function, [{ id: call.id, args: call.args, kwargs: call.kwargs ?? null }], call.now);
  }

  /** Inserts new queued calls of one function, all in one transaction; resolves once it is committed. */
  insertMany(app: string, fn: string, calls: ReadonlyArray<{ id: string } & CallInput>, now: number): Promise<void> {
    const inputs = calls.map(encodeInput);
    return this.commit.run(() => {
      let i = 0;
      for (; i + INSERT_ROWS <= calls.length; i += INSERT_ROWS) {
        const params: unknown[] = [];
        for (let k = i; k < i + INSERT_ROWS; k++) params.push(calls[k]!.id, app, fn, inputs[k], now, now);
        this.stmts.insertRows.run(params);
      }
      for (; i < calls.length; i++) this.stmts.insert.run(calls[i]!.id, app, fn, inputs[i], now, now);
      for (const c of calls) if (c.parentId !== undefined) this.stmts.addParent.run(c.id, c.parentId);
      // On a full disk, new calls are refused (DiskFullError), never left pending.
    }, "refuse");
  }

  /**
   * Inserts a new queued call under an idempotency key, in one transaction with the key's record.
   * Resolves once committed: with null, or with the call the key already made (nothing inserted).
   */
  insertKeyed(call: { id: string; app: string; function: string; now: number } & CallInput, key: string): Promise<string | null> {
    const input = encodeInput(call);
    return this.commit.run(() => {
      const earlier = this.keys.claim(call.app, call.function, key, call.id, call.now);
      if (earlier === null) this.stmts.insert.run(call.id, call.app, call.function, input, call.now, call.now);
      if (earlier === null && call.parentId !== undefined) this.stmts.addParent.run(call.id, call.parentId);
      return earlier;
    }, "refuse");
  }

  /** A call's arguments (read when it is dispatched: queued calls do not keep them in memory); null once expired. */
  inputOf(id: string): CallInput | null {
    const input = this.stmts.input.get(id) as string | undefined;
    return input === undefined || input === EXPIRED_INPUT ? null : decodeInput(input);
  }

  /**
   * Cancels every queued call of a function at once (an app stopped), but those in `running`: calls
   * dispatched to a container whose running mark is not written yet (the store has them queued).
   * Resolves with their IDs and attempts once committed.
   */
  cancelQueued(app: string, fn: string, error: RemoteError, now: number, expiresAt: number, running: readonly string[] = []): Promise<Array<{ id: string; attempt: number }>> {
    const params = { app, function: fn, now, expiresAt, error: JSON.stringify(error), running: JSON.stringify(running) };
    return this.commit.run(() => this.stmts.cancelQueued.all(params) as Array<{ id: string; attempt: number }>);
  }

  get(id: string): CallRecord | null {
    const recent = this.recent.get(id);
    if (recent) return recent;
    const row = this.stmts.get.get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /**
   * Marks dispatched calls running, in one deferred write (it rides with the next commit). A mark
   * cancelled before the write runs is skipped; each written one is flagged `written`. Resolves,
   * once committed, with the marks written.
   */
  markRunning(marks: readonly RunningMarkWrite[]): Promise<RunningMarkWrite[]> {
    return this.commit.defer(() => {
      const done: RunningMarkWrite[] = [];
      for (const m of marks) {
        if (m.cancelled) continue;
        m.written = true;
        if (this.stmts.markRunning.run(m.startedAt, m.containerId, m.id, m.attempt).changes === 1) done.push(m);
      }
      return done;
    });
  }

  /** Finishes a call (compare-and-set from `from`); once committed, its record serves reads from memory. */
  finish(rec: CallRecord, from: { status: CallStatus; attempt: number }, onCommitted?: () => void): Promise<boolean> {
    const error = rec.error ? JSON.stringify(rec.error) : null;
    const write = () => {
      const ok = this.stmts.finish.run(rec.status, rec.attempt, rec.startedAt, rec.finishedAt, rec.expiresAt, rec.containerId, rec.resultJson, error, rec.lost, rec.id, from.attempt, from.status).changes === 1;
      if (ok && rec.gpuSeconds != null) this.stmts.gpuSeconds.run(rec.id, rec.gpuSeconds);
      return ok;
    };
    return this.commit.run(write, "hold", onCommitted).then((ok) => {
      if (ok) this.remember(rec);
      return ok;
    });
  }

  /**
   * Holds the log's next sync back for at most `ms`, for a call's result expected by then (see
   * syncHoldMs): returns what lets go of it, or null when the log is busy (not held).
   */
  holdSync(ms: number): (() => void) | null {
    return this.commit.holdSync(ms);
  }

  /** How long making a write durable takes lately (a sync of the log, ms); null: acknowledgments wait for none, or none ran yet. */
  get syncMs(): number | null {
    return this.commit.syncMs;
  }

  private remember(rec: CallRecord): void {
    if (!this.recent.has(rec.id)) {
      const oldest = this.recentRing[this.recentNext];
      if (oldest !== undefined) this.recent.delete(oldest);
      this.recentRing[this.recentNext] = rec.id;
      this.recentNext = (this.recentNext + 1) % this.recentFinished;
    }
    this.recent.set(rec.id, rec);
  }

  /** Calls not yet finished, oldest first, without their input (recovery at start). */
  listOpen(): OpenCall[] {
    return (this.stmts.open.all() as Row[]).map(fromRow);
  }

  list(q: CallQuery): CallRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.app) (where.push("app = ?"), params.push(q.app));
    if (q.function) (where.push("function = ?"), params.push(q.function));
    if (q.status) (where.push("status = ?"), params.push(q.status));
    if (q.before) (where.push("id < ?"), params.push(q.before));
    if (q.after) (where.push("id > ?"), params.push(q.after));
    if (q.since) (where.push("id >= ?"), params.push(q.since));
    // Newest first; paging forward reads the oldest ones above `after`, then turns them around.
    const sql = `SELECT ${COLUMNS} FROM calls ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY id ${q.after ? "ASC" : "DESC"} LIMIT ?`;
    let stmt = this.listStatements.get(sql);
    if (!stmt) this.listStatements.set(sql, (stmt = this.db.prepare(sql)));
    const rows = (stmt.all(...params, q.limit) as Row[]).map(fromRow);
    return q.after ? rows.reverse() : rows;
  }

  /**
   * Resolves true when the row was in (fromStatus, fromAttempt) and now holds the update.
   * `deferred`: the write may wait for the next batch (GroupCommit.defer).
   */
  compareAndSet(id: string, from: { status: CallStatus; attempt: number }, u: CallUpdate, opts: { deferred?: boolean } = {}): Promise<boolean> {
    const write = this.casWrite(id, from, u);
    return opts.deferred ? this.commit.defer(write) : this.commit.run(write);
  }

  /** The compare-and-set as a write for the group commit: true when the row changed. */
  private casWrite(id: string, from: { status: CallStatus; attempt: number }, u: CallUpdate): () => boolean {
    const params = {
      id,
      fromStatus: from.status,
      fromAttempt: from.attempt,
      status: u.status,
      attempt: u.attempt,
      runAt: u.runAt ?? null,
      setStarted: u.startedAt !== undefined ? 1 : 0,
      startedAt: u.startedAt ?? null,
      setFinished: u.finishedAt !== undefined ? 1 : 0,
      finishedAt: u.finishedAt ?? null,
      setExpires: u.expiresAt !== undefined ? 1 : 0,
      expiresAt: u.expiresAt ?? null,
      setContainer: u.containerId !== undefined ? 1 : 0,
      containerId: u.containerId ?? null,
      setResult: u.resultJson !== undefined ? 1 : 0,
      result: u.resultJson ?? null,
      setError: u.error !== undefined ? 1 : 0,
      error: u.error ? JSON.stringify(u.error) : null,
      lost: u.lost ?? null,
    };
    return () => this.stmts.cas.run(params).changes === 1;
  }

  /**
   * Puts a call back in the queue for its next attempt (compare-and-set from `from`) and records,
   * in the same commit, how the attempt before ended: the call's history says why it ran again.
   */
  requeue(id: string, from: { status: CallStatus; attempt: number }, u: CallUpdate, ended: AttemptRecord): Promise<boolean> {
    const write = this.casWrite(id, from, u);
    const error = ended.error ? JSON.stringify(ended.error) : null;
    return this.commit.run(() => {
      if (!write()) return false;
      this.stmts.addAttempt.run(id, ended.attempt, ended.containerId, ended.startedAt, ended.endedAt, ended.outcome, error);
      return true;
    });
  }

  /** The attempts of a call that ended without being its outcome, oldest first. */
  attempts(id: string): AttemptRecord[] {
    const rows = this.stmts.attempts.all(id) as Array<{ attempt: number; outcome: "failed" | "lost"; container_id: string | null; started_at: number | null; ended_at: number; error: string | null }>;
    return rows.map((r) => ({
      attempt: r.attempt,
      outcome: r.outcome,
      containerId: r.container_id,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      error: r.error === null ? null : (JSON.parse(r.error) as RemoteError),
    }));
  }

  /** The calls a call spawned from inside its container, oldest first (at most `limit`). */
  children(id: string, limit: number): string[] {
    return this.stmts.children.all(id, limit) as string[];
  }

  /**
   * Drops the inputs, results and items of calls whose resultTtl passed (the row stays, marked
   * expired, until the history window deletes it), and idempotency keys past theirs; returns how
   * many calls. Bounded per run.
   */
  expireResults(now: number, max = 5000): Promise<number> {
    return this.commit.run(() => {
      this.keys.prune(now, max);
      const ids = this.stmts.expire.all(now, max) as string[];
      for (const id of ids) this.recent.delete(id); // read again from the row: expired, no result
      this.items.dropNow(ids);
      return ids.length;
    });
  }
}
