/**
 * Volumes' records (table `volumes`, migration 7): a row per volume, its files in a folder of its
 * own under $GANTRY_HOME/volumes (daemon/host/volume-files.ts). An ephemeral volume's row has an
 * expiry its owner's heartbeats push back; the sweep removes those past it.
 */
import type { Db } from "./database.js";

export interface StoredVolume {
  name: string;
  createdAt: number;
  ephemeral: boolean;
  /** When an ephemeral volume goes without a heartbeat; null for named ones. */
  expiresAt: number | null;
}

interface Row {
  name: string;
  created_at: number;
  ephemeral: number;
  expires_at: number | null;
}

const fromRow = (r: Row): StoredVolume => ({ name: r.name, createdAt: r.created_at, ephemeral: r.ephemeral === 1, expiresAt: r.expires_at });

export class VolumeStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      get: db.prepare(`SELECT * FROM volumes WHERE name = ?`),
      list: db.prepare(`SELECT * FROM volumes ORDER BY name`),
      insert: db.prepare(`INSERT INTO volumes (name, created_at, ephemeral, expires_at) VALUES (?, ?, ?, ?)`),
      remove: db.prepare(`DELETE FROM volumes WHERE name = ?`),
      touch: db.prepare(`UPDATE volumes SET expires_at = ? WHERE name = ? AND ephemeral = 1`),
      expired: db.prepare(`SELECT name FROM volumes WHERE ephemeral = 1 AND expires_at <= ?`).pluck(),
    };
  }

  get(name: string): StoredVolume | undefined {
    const row = this.stmts.get.get(name) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(): StoredVolume[] {
    return (this.stmts.list.all() as Row[]).map(fromRow);
  }

  insert(v: StoredVolume): void {
    this.stmts.insert.run(v.name, v.createdAt, v.ephemeral ? 1 : 0, v.expiresAt);
  }

  remove(name: string): boolean {
    return this.stmts.remove.run(name).changes > 0;
  }

  /** Pushes an ephemeral volume's expiry back; false when there is no such ephemeral volume. */
  touch(name: string, expiresAt: number): boolean {
    return this.stmts.touch.run(expiresAt, name).changes > 0;
  }

  /** Ephemeral volumes past their expiry. */
  expired(now: number): string[] {
    return this.stmts.expired.all(now) as string[];
  }
}
