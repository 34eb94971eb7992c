/**
 * Dicts and Queues in SQLite (migration 8). Every change is one write of the group commit, so it
 * is atomic (a put with skip_if_exists is a compare-and-set: one winner) and durable before its
 * answer; concurrent changes share an fsync. Reads see what is committed. Keys are canonical text,
 * values as calls keep theirs (JSON text, or "pickle:" and base64), each with the app that wrote
 * it (null: the host).
 */
import type { Db } from "./database.js";
import type { GroupCommit } from "./group-commit.js";

export interface StoredObject {
  name: string;
  createdAt: number;
  ephemeral: boolean;
  expiresAt: number | null;
}


/** A limit that waiting does not lift (a Dict's entries, a Queue's partitions): nothing was written. */
export class LimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LimitError";
  }
}

/** A stored value and who wrote it. */
export interface StoredValue {
  data: string;
  origin: string | null;
}

interface ObjectRow {
  name: string;
  created_at: number;
  ephemeral: number;
  expires_at: number | null;
}

const fromRow = (r: ObjectRow): StoredObject => ({ name: r.name, createdAt: r.created_at, ephemeral: r.ephemeral === 1, expiresAt: r.expires_at });

/** The rows of named Dicts or Queues: created, listed, heartbeaten, expired, removed (with what they hold). */
export class ObjectRows {
  private readonly stmts;

  constructor(
    db: Db,
    private readonly commit: GroupCommit,
    table: "dicts" | "queues",
    /** Statements that remove what an object holds, each taking its name. */
    contents: string[],
  ) {
    this.stmts = {
      get: db.prepare(`SELECT name, created_at, ephemeral, expires_at FROM ${table} WHERE name = ?`),
      list: db.prepare(`SELECT name, created_at, ephemeral, expires_at FROM ${table} ORDER BY name`),
      insert: db.prepare(`INSERT INTO ${table} (name, created_at, ephemeral, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
      remove: db.prepare(`DELETE FROM ${table} WHERE name = ?`),
      removeContents: contents.map((sql) => db.prepare(sql)),
      touch: db.prepare(`UPDATE ${table} SET expires_at = ? WHERE name = ? AND ephemeral = 1`),
      expired: db.prepare(`SELECT name FROM ${table} WHERE ephemeral = 1 AND expires_at <= ?`).pluck(),
    };
  }

  get(name: string): StoredObject | undefined {
    const row = this.stmts.get.get(name) as ObjectRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(): StoredObject[] {
    return (this.stmts.list.all() as ObjectRow[]).map(fromRow);
  }

  /** Adds one; false when the name is taken (then nothing changed). */
  insert(o: StoredObject): Promise<boolean> {
    return this.commit.run(() => this.stmts.insert.run(o.name, o.createdAt, o.ephemeral ? 1 : 0, o.expiresAt).changes > 0, "refuse");
  }

  /** Removes one and all it holds; false when there was none. */
  remove(name: string): Promise<boolean> {
    return this.commit.run(() => {
      for (const s of this.stmts.removeContents) s.run(name);
      return this.stmts.remove.run(name).changes > 0;
    });
  }

  touch(name: string, expiresAt: number): Promise<boolean> {
    return this.commit.run(() => this.stmts.touch.run(expiresAt, name).changes > 0);
  }

  expired(now: number): string[] {
    return this.stmts.expired.all(now) as string[];
  }
}

export class DictStore {
  readonly objects: ObjectRows;
  private readonly stmts;

  constructor(db: Db, private readonly commit: GroupCommit) {
    this.objects = new ObjectRows(db, commit, "dicts", ["DELETE FROM dict_entries WHERE dict = ?"]);
    this.stmts = {
      get: db.prepare(`SELECT value AS data, origin FROM dict_entries WHERE dict = ? AND key = ?`),
      len: db.prepare(`SELECT len FROM dicts WHERE name = ?`).pluck(),
      insert: db.prepare(
        `INSERT INTO dict_entries (dict, key, value, origin, seq) VALUES (?, ?, ?, ?, (SELECT next_seq FROM dicts WHERE name = ?)) ON CONFLICT (dict, key) DO NOTHING`,
      ),
      replace: db.prepare(
        `UPDATE dict_entries SET value = ?, origin = ?, seq = (SELECT next_seq FROM dicts WHERE name = ?) WHERE dict = ? AND key = ?`,
      ),
      bump: db.prepare(`UPDATE dicts SET next_seq = next_seq + 1, len = len + ? WHERE name = ?`),
      pop: db.prepare(`DELETE FROM dict_entries WHERE dict = ? AND key = ? RETURNING value AS data, origin`),
      shrink: db.prepare(`UPDATE dicts SET len = len - ? WHERE name = ?`),
      clear: db.prepare(`DELETE FROM dict_entries WHERE dict = ?`),
      zero: db.prepare(`UPDATE dicts SET len = 0 WHERE name = ?`),
      page: db.prepare(`SELECT key, value AS data, origin, seq FROM dict_entries WHERE dict = ? AND seq > ? ORDER BY seq LIMIT ?`),
    };
  }

  get(dict: string, key: string): StoredValue | undefined {
    return this.stmts.get.get(dict, key) as StoredValue | undefined;
  }

  len(dict: string): number {
    return (this.stmts.len.get(dict) as number | undefined) ?? 0;
  }

  /**
   * Sets entries in one write: each new key must fit under `maxEntries`, else the whole write is
   * refused (RangeError, nothing changed). With `skipIfExists`, an existing key is left as it is.
   * Resolves how many keys were new and how many entries were written.
   */
  put(dict: string, entries: ReadonlyArray<{ key: string; data: string }>, origin: string | null, opts: { skipIfExists: boolean; maxEntries: number }): Promise<{ added: number; written: number }> {
    return this.commit.run(() => {
      let added = 0;
      let written = 0;
      for (const e of entries) {
        if (this.stmts.insert.run(dict, e.key, e.data, origin, dict).changes > 0) added++;
        else if (!opts.skipIfExists) this.stmts.replace.run(e.data, origin, dict, dict, e.key);
        else continue;
        written++;
        this.stmts.bump.run(0, dict);
      }
      if (this.len(dict) + added > opts.maxEntries) throw new LimitError(`${added} new keys would pass the limit of ${opts.maxEntries} entries`);
      this.stmts.bump.run(added, dict);
      return { added, written };
    }, "refuse");
  }

  pop(dict: string, key: string): Promise<StoredValue | undefined> {
    return this.commit.run(() => {
      const row = this.stmts.pop.get(dict, key) as StoredValue | undefined;
      if (row) this.stmts.shrink.run(1, dict);
      return row;
    });
  }

  clear(dict: string): Promise<number> {
    return this.commit.run(() => {
      const n = this.stmts.clear.run(dict).changes;
      this.stmts.zero.run(dict);
      return n;
    });
  }

  /** Entries written after `after` (a seq), oldest write first. */
  page(dict: string, after: number, limit: number): Array<{ key: string; data: string; origin: string | null; seq: number }> {
    return this.stmts.page.all(dict, after, limit) as Array<{ key: string; data: string; origin: string | null; seq: number }>;
  }
}

export class QueueStore {
  readonly objects: ObjectRows;
  private readonly stmts;

  constructor(db: Db, private readonly commit: GroupCommit) {
    this.objects = new ObjectRows(db, commit, "queues", ["DELETE FROM queue_items WHERE queue = ?", "DELETE FROM queue_partitions WHERE queue = ?"]);
    this.stmts = {
      partition: db.prepare(`SELECT len, next_seq, expires_at FROM queue_partitions WHERE queue = ? AND partition = ?`),
      partitions: db.prepare(`SELECT count(*) FROM queue_partitions WHERE queue = ?`).pluck(),
      total: db.prepare(`SELECT coalesce(sum(len), 0) FROM queue_partitions WHERE queue = ?`).pluck(),
      openPartition: db.prepare(
        `INSERT INTO queue_partitions (queue, partition, expires_at) VALUES (?, ?, ?) ON CONFLICT (queue, partition) DO UPDATE SET expires_at = excluded.expires_at`,
      ),
      insert: db.prepare(`INSERT INTO queue_items (queue, partition, seq, value, origin) VALUES (?, ?, ?, ?, ?)`),
      grow: db.prepare(`UPDATE queue_partitions SET len = len + ?, next_seq = next_seq + ? WHERE queue = ? AND partition = ?`),
      take: db.prepare(
        `DELETE FROM queue_items WHERE queue = ? AND partition = ? AND seq IN (SELECT seq FROM queue_items WHERE queue = ? AND partition = ? ORDER BY seq LIMIT ?) RETURNING seq, value AS data, origin`,
      ),
      shrink: db.prepare(`UPDATE queue_partitions SET len = len - ? WHERE queue = ? AND partition = ?`),
      after: db.prepare(`SELECT seq, value AS data, origin FROM queue_items WHERE queue = ? AND partition = ? AND seq > ? ORDER BY seq LIMIT ?`),
      clearPartition: db.prepare(`DELETE FROM queue_items WHERE queue = ? AND partition = ?`),
      dropPartition: db.prepare(`DELETE FROM queue_partitions WHERE queue = ? AND partition = ?`),
      clearAll: db.prepare(`DELETE FROM queue_items WHERE queue = ?`),
      dropAll: db.prepare(`DELETE FROM queue_partitions WHERE queue = ?`),
      expired: db.prepare(`SELECT queue, partition FROM queue_partitions WHERE expires_at <= ?`),
    };
  }

  len(queue: string, partition: string | null): number {
    if (partition === null) return this.stmts.total.get(queue) as number;
    return (this.stmts.partition.get(queue, partition) as { len: number } | undefined)?.len ?? 0;
  }

  partitions(queue: string): number {
    return this.stmts.partitions.get(queue) as number;
  }

  /**
   * Appends values to a partition in one write, its expiry set to `expiresAt`. Refused (RangeError,
   * nothing put) when they do not all fit: `room` says how many may be added to the partition, and
   * a new partition must fit under `maxPartitions`.
   */
  put(queue: string, partition: string, values: readonly string[], origin: string | null, limits: { perPartition: number; maxPartitions: number }, expiresAt: number): Promise<number> {
    return this.commit.run(() => {
      const existing = this.stmts.partition.get(queue, partition) as { len: number; next_seq: number } | undefined;
      if (!existing && this.partitions(queue) >= limits.maxPartitions) throw new LimitError(`the queue has ${limits.maxPartitions} partitions, the limit`);
      const len = existing?.len ?? 0;
      if (len + values.length > limits.perPartition) throw new RangeError(`the partition holds ${len} items; ${values.length} more would pass the limit of ${limits.perPartition}`);
      this.stmts.openPartition.run(queue, partition, expiresAt);
      let seq = existing?.next_seq ?? 1;
      for (const v of values) this.stmts.insert.run(queue, partition, seq++, v, origin);
      this.stmts.grow.run(values.length, values.length, queue, partition);
      return values.length;
    }, "refuse");
  }

  /**
   * Removes and returns up to `n` items of a partition, oldest first. Committed without waiting for
   * fsync (GroupCommit.runSoon): a daemon crash loses nothing, and after a power cut in the next
   * few milliseconds an item taken could come back (delivered twice), never be lost.
   */
  take(queue: string, partition: string, n: number): Promise<Array<{ seq: number; data: string; origin: string | null }>> {
    return this.commit.runSoon(() => {
      const rows = (this.stmts.take.all(queue, partition, queue, partition, n) as Array<{ seq: number; data: string; origin: string | null }>).sort((a, b) => a.seq - b.seq);
      if (rows.length) this.stmts.shrink.run(rows.length, queue, partition);
      return rows;
    });
  }

  /** Items after `seq`, without removing them. */
  after(queue: string, partition: string, seq: number, limit: number): Array<{ seq: number; data: string; origin: string | null }> {
    return this.stmts.after.all(queue, partition, seq, limit) as Array<{ seq: number; data: string; origin: string | null }>;
  }

  /** Clears one partition, or all of them; resolves how many items went. */
  clear(queue: string, partition: string | null): Promise<number> {
    return this.commit.run(() => {
      if (partition === null) {
        const n = this.stmts.clearAll.run(queue).changes;
        this.stmts.dropAll.run(queue);
        return n;
      }
      const n = this.stmts.clearPartition.run(queue, partition).changes;
      this.stmts.dropPartition.run(queue, partition);
      return n;
    });
  }

  /** Partitions past their expiry (24 h after their last put, or their partition_ttl). */
  expiredPartitions(now: number): Array<{ queue: string; partition: string }> {
    return this.stmts.expired.all(now) as Array<{ queue: string; partition: string }>;
  }
}
