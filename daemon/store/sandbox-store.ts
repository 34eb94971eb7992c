/**
 * Sandboxes' records (table `sandboxes`, migration 15): what each was created with, its state and
 * exit code, its tags. IDs sort by creation time, so "newest first" is ORDER BY id DESC.
 */
import type { SandboxCreateParsed, SandboxState } from "../../protocol/sandboxes.js";
import type { Db } from "./database.js";

export interface StoredSandbox {
  id: string;
  app: string;
  name: string | null;
  definition: SandboxCreateParsed;
  image: string | null;
  state: SandboxState;
  returncode: number | null;
  error: string | null;
  timeoutKind: "timeout" | "idle" | null;
  tags: Record<string, string>;
  dockerId: string | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

interface Row {
  id: string;
  app: string;
  name: string | null;
  definition: string;
  image: string | null;
  state: string;
  returncode: number | null;
  error: string | null;
  timeout_kind: string | null;
  tags: string;
  docker_id: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

const fromRow = (r: Row): StoredSandbox => ({
  id: r.id,
  app: r.app,
  name: r.name,
  definition: JSON.parse(r.definition) as SandboxCreateParsed,
  image: r.image,
  state: r.state as SandboxState,
  returncode: r.returncode,
  error: r.error,
  timeoutKind: r.timeout_kind as StoredSandbox["timeoutKind"],
  tags: JSON.parse(r.tags) as Record<string, string>,
  dockerId: r.docker_id,
  createdAt: r.created_at,
  startedAt: r.started_at,
  endedAt: r.ended_at,
});

export interface SandboxQuery {
  app?: string;
  running?: boolean;
  /** Every one must match. */
  tags?: Record<string, string>;
  limit: number;
}

export class SandboxStore {
  private readonly stmts;

  constructor(private readonly db: Db) {
    this.stmts = {
      get: db.prepare(`SELECT * FROM sandboxes WHERE id = ?`),
      insert: db.prepare(
        `INSERT INTO sandboxes (id, app, name, definition, image, state, returncode, error, timeout_kind, tags, docker_id, created_at, started_at, ended_at)
         VALUES (@id, @app, @name, @definition, @image, @state, @returncode, @error, @timeout_kind, @tags, @docker_id, @created_at, @started_at, @ended_at)`,
      ),
      started: db.prepare(`UPDATE sandboxes SET state = 'running', image = ?, docker_id = ?, started_at = ? WHERE id = ? AND state = 'pending'`),
      ended: db.prepare(`UPDATE sandboxes SET state = ?, returncode = ?, error = ?, timeout_kind = ?, ended_at = ? WHERE id = ? AND state IN ('pending', 'running')`),
      tags: db.prepare(`UPDATE sandboxes SET tags = ? WHERE id = ?`),
      open: db.prepare(`SELECT * FROM sandboxes WHERE state IN ('pending', 'running') ORDER BY id`),
      endedBefore: db.prepare(`SELECT id FROM sandboxes WHERE ended_at IS NOT NULL AND ended_at <= ? ORDER BY ended_at LIMIT ?`).pluck(),
      remove: db.prepare(`DELETE FROM sandboxes WHERE id = ?`),
    };
  }

  get(id: string): StoredSandbox | undefined {
    const row = this.stmts.get.get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  insert(s: StoredSandbox): void {
    this.stmts.insert.run({
      id: s.id,
      app: s.app,
      name: s.name,
      definition: JSON.stringify(s.definition),
      image: s.image,
      state: s.state,
      returncode: s.returncode,
      error: s.error,
      timeout_kind: s.timeoutKind,
      tags: JSON.stringify(s.tags),
      docker_id: s.dockerId,
      created_at: s.createdAt,
      started_at: s.startedAt,
      ended_at: s.endedAt,
    });
  }

  markStarted(id: string, image: string, dockerId: string, at: number): boolean {
    return this.stmts.started.run(image, dockerId, at, id).changes > 0;
  }

  /** Records its end once: false when it had ended already. */
  markEnded(id: string, end: { state: SandboxState; returncode: number | null; error: string | null; timeoutKind: StoredSandbox["timeoutKind"] }, at: number): boolean {
    return this.stmts.ended.run(end.state, end.returncode, end.error, end.timeoutKind, at, id).changes > 0;
  }

  setTags(id: string, tags: Record<string, string>): void {
    this.stmts.tags.run(JSON.stringify(tags), id);
  }

  /** Sandboxes not ended (after a restart: those the last run left). */
  open(): StoredSandbox[] {
    return (this.stmts.open.all() as Row[]).map(fromRow);
  }

  list(q: SandboxQuery): StoredSandbox[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.app !== undefined) {
      where.push("app = ?");
      args.push(q.app);
    }
    for (const [k, v] of Object.entries(q.tags ?? {})) {
      where.push("EXISTS (SELECT 1 FROM json_each(sandboxes.tags) WHERE key = ? AND value = ?)");
      args.push(k, v);
    }
    if (q.running !== undefined) where.push(q.running ? "state IN ('pending', 'running')" : "state NOT IN ('pending', 'running')");
    const sql = `SELECT * FROM sandboxes ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, q.limit) as Row[]).map(fromRow);
  }

  /** IDs of sandboxes that ended at or before `at`, oldest first (history pruning). */
  endedBefore(at: number, limit: number): string[] {
    return this.stmts.endedBefore.all(at, limit) as string[];
  }

  remove(id: string): void {
    this.stmts.remove.run(id);
  }
}
