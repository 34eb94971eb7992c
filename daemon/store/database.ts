import Database from "better-sqlite3";
import { isDiskFull } from "./group-commit.js";
import { MIGRATIONS, OUTSIDE_TRANSACTION } from "./migrations.js";

export type Db = Database.Database;

/** Opens (creating if needed) the daemon's database in WAL mode and brings its schema up to date. */
export function openDatabase(file: string): Db {
  const db = new Database(file);
  try {
    db.pragma("journal_mode = WAL");
    // FULL: a commit is on disk before the daemon acknowledges it (group commit keeps this cheap).
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    // Deleted values (expired inputs and results, pruned calls) are zeroed in their pages, not left
    // behind in the file; pages freed whole are handed back by the history's incremental vacuum.
    db.pragma("secure_delete = FAST");
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export function migrate(db: Db): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this gantry knows (${MIGRATIONS.length}); upgrade gantry or use another GANTRY_HOME`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    if (MIGRATIONS[v]!.startsWith(OUTSIDE_TRANSACTION)) {
      runOutsideTransaction(db, MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
      continue;
    }
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * A migration VACUUM is part of. VACUUM needs room for a copy of the file: on a full disk it is
 * left undone (the database works as before, it only does not shrink) rather than failing the start.
 */
function runOutsideTransaction(db: Db, sql: string): void {
  try {
    db.exec(sql);
  } catch (err) {
    if (!isDiskFull(err)) throw err;
  }
}
