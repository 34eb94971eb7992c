/**
 * Schema migrations, applied in order at open; `PRAGMA user_version` records how many ran.
 * Never edit a released migration: append a new one.
 */

/**
 * A migration whose text starts with this line runs outside a transaction (VACUUM cannot run in
 * one); it must be safe to run again, as a crash before `user_version` is written repeats it.
 */
export const OUTSIDE_TRANSACTION = "-- outside a transaction";

export const MIGRATIONS: readonly string[] = [
  /* 1: first schema */ `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('deployed', 'stopped')),
    bundle_hash TEXT NOT NULL,
    source TEXT,
    deployed_at INTEGER NOT NULL
  );
  CREATE TABLE functions (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    image TEXT NOT NULL,
    bundle_hash TEXT NOT NULL,
    deployed_at INTEGER NOT NULL,
    PRIMARY KEY (app, name)
  );
  CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    function TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt INTEGER NOT NULL,
    input TEXT NOT NULL,
    result TEXT,
    error TEXT,
    container_id TEXT,
    created_at INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    expires_at INTEGER,
    expired INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX calls_open ON calls (status, id) WHERE status IN ('queued', 'running');
  CREATE INDEX calls_expiry ON calls (expires_at) WHERE expired = 0 AND expires_at IS NOT NULL;
  CREATE INDEX calls_by_function ON calls (app, function, id);
  `,
  /* 2: python functions: the app's language, and the module the agent imports */ `
  ALTER TABLE functions ADD COLUMN runtime TEXT NOT NULL DEFAULT 'node' CHECK (runtime IN ('node', 'python'));
  ALTER TABLE functions ADD COLUMN module TEXT NOT NULL DEFAULT 'app.mjs';
  `,
  /* 3: idempotent submits: the first call a key made, per function, kept 24 h */ `
  CREATE TABLE idempotency_keys (
    app TEXT NOT NULL,
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    call_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app, function, key)
  ) WITHOUT ROWID;
  CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
  `,
  /* 4: infrastructure faults: re-runs a call used for lost containers (not its retries), and the
     attempts that ended without being the call's outcome (why each was re-run) */ `
  ALTER TABLE calls ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE attempts (
    call_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    container_id TEXT,
    started_at INTEGER,
    ended_at INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('failed', 'lost')),
    error TEXT,
    PRIMARY KEY (call_id, attempt)
  ) WITHOUT ROWID;
  `,
  /* 5: dashboard sessions kept server-side: only a hash of each random session id, and when it ends */ `
  CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX sessions_by_expiry ON sessions (expires_at);
  `,
  /* 6: generator calls' items, in order: JSON text, or "pickle:" and base64 (as results);
     and which call spawned which, from inside its container (FunctionCall.get_call_graph) */ `
  CREATE TABLE call_items (
    call_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (call_id, idx)
  ) WITHOUT ROWID;
  CREATE TABLE call_parents (
    call_id TEXT PRIMARY KEY,
    parent_id TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX call_parents_by_parent ON call_parents (parent_id);
  `,
  /* 7: volumes: their files are folders under $GANTRY_HOME/volumes; an ephemeral one has an
     expiry its owner's heartbeats push back */ `
  CREATE TABLE volumes (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER
  ) WITHOUT ROWID;
  `,
  /* 8: Dicts and Queues (issue 20). A key is its canonical text (JSON, or "pickle:" and base64),
     a value as calls keep theirs; \`origin\` is the app whose container wrote it (null: the host);
     \`len\` and \`next_seq\` are kept by each write, so limits and cursors need no scan */ `
  CREATE TABLE dicts (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    len INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 1
  ) WITHOUT ROWID;
  CREATE TABLE dict_entries (
    dict TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    origin TEXT,
    seq INTEGER NOT NULL,
    PRIMARY KEY (dict, key)
  ) WITHOUT ROWID;
  CREATE INDEX dict_entries_by_seq ON dict_entries (dict, seq);
  CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE queue_partitions (
    queue TEXT NOT NULL,
    partition TEXT NOT NULL,
    len INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 1,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, partition)
  ) WITHOUT ROWID;
  CREATE INDEX queue_partitions_by_expiry ON queue_partitions (expires_at);
  CREATE TABLE queue_items (
    queue TEXT NOT NULL,
    partition TEXT NOT NULL,
    seq INTEGER NOT NULL,
    value TEXT NOT NULL,
    origin TEXT,
    PRIMARY KEY (queue, partition, seq)
  ) WITHOUT ROWID;
  `,
  /* 9: schedules (issue 21): a deployed function's schedule, its next run (kept, so a restart
     neither loses nor repeats one) and its last scheduled call */ `
  CREATE TABLE schedules (
    app TEXT NOT NULL,
    function TEXT NOT NULL,
    spec TEXT NOT NULL,
    next_run_at INTEGER NOT NULL,
    last_run_at INTEGER,
    last_call_id TEXT,
    PRIMARY KEY (app, function)
  ) WITHOUT ROWID;
  `,
  /* 10: versions (issue 21): every deploy and rollback of an app, numbered per app, with the
     function records it served (JSON: name, spec, image tag, bundle hash, runtime, module) and what
     changed from the one before; the last 50 per app are kept. An app deployed before this
     migration gets its current deployment as version 1 */ `
  CREATE TABLE app_versions (
    app TEXT NOT NULL,
    version INTEGER NOT NULL,
    deployed_at INTEGER NOT NULL,
    bundle_hash TEXT NOT NULL,
    source TEXT,
    functions TEXT NOT NULL,
    changes TEXT NOT NULL,
    rollback_to INTEGER,
    rolled_back_from INTEGER,
    PRIMARY KEY (app, version)
  ) WITHOUT ROWID;
  INSERT INTO app_versions (app, version, deployed_at, bundle_hash, source, functions, changes)
  SELECT a.name, 1, a.deployed_at, a.bundle_hash, a.source,
    (SELECT json_group_array(json_object('name', f.name, 'spec', json(f.spec), 'image', f.image,
       'bundleHash', f.bundle_hash, 'runtime', f.runtime, 'module', f.module))
     FROM (SELECT * FROM functions WHERE app = a.name ORDER BY name) f),
    '["deployed before gantry kept versions"]'
  FROM apps a;
  `,
  /* 11: ephemeral apps (issue 21: gantry serve, app.run()): when one is stopped unless its client
     heartbeats again (ms); NULL for a deployed app, which stays until stopped */ `
  ALTER TABLE apps ADD COLUMN expires_at INTEGER;
  `,
  /* 12: history (issue 22): finished calls are found by when they finished, to delete those past the
     history window; idempotency keys by their call, to delete them with it */ `
  CREATE INDEX calls_by_finish ON calls (finished_at) WHERE finished_at IS NOT NULL;
  CREATE INDEX idempotency_keys_by_call ON idempotency_keys (call_id);
  `,
  /* 13: the file shrinks after a prune (issue 22): pages freed are handed back by
     PRAGMA incremental_vacuum, which needs auto_vacuum set and the file rewritten once */ `${OUTSIDE_TRANSACTION}
  PRAGMA auto_vacuum = INCREMENTAL;
  VACUUM;
  `,
  /* 14: GPU-seconds (issue 23): what a finished call used of GPUs, summed over its attempts (each
     attempt's duration × the GPUs its container held); a row only for calls that held some, gone
     with its call. A table of its own (not a column): running this again is harmless */ `
  CREATE TABLE IF NOT EXISTS call_gpu_seconds (
    call_id TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    gpu_seconds REAL NOT NULL
  ) WITHOUT ROWID;
  `,
  /* 15: sandboxes (issue 24): one row per sandbox, its definition (JSON, as created), state and
     exit code; its output lives in files under $GANTRY_HOME/sandboxes/ID, execs only in memory.
     IF NOT EXISTS: running this again is harmless */ `
  CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    name TEXT,
    definition TEXT NOT NULL,
    image TEXT,
    state TEXT NOT NULL,
    returncode INTEGER,
    error TEXT,
    timeout_kind TEXT,
    tags TEXT NOT NULL,
    docker_id TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS sandboxes_by_app ON sandboxes (app, id);
  CREATE INDEX IF NOT EXISTS sandboxes_by_end ON sandboxes (ended_at) WHERE ended_at IS NOT NULL;
  `,
];
