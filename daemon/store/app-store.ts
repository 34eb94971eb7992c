import type { FunctionSpec, Runtime } from "../../protocol/function-spec.js";
import type { Db } from "./database.js";

export interface FunctionRecord {
  app: string;
  name: string;
  spec: FunctionSpec;
  image: string;
  bundleHash: string;
  deployedAt: number;
  runtime: Runtime;
  /** What the agent loads: the bundle's file (node) or the module's name (python). */
  module: string;
}

export interface AppRecord {
  name: string;
  state: "deployed" | "stopped";
  bundleHash: string;
  source: string | null;
  deployedAt: number;
  /** An ephemeral app's: when it is stopped unless its client heartbeats (ms); null: deployed for good. */
  expiresAt: number | null;
}

interface FunctionRow {
  app: string;
  name: string;
  spec: string;
  image: string;
  bundle_hash: string;
  deployed_at: number;
  runtime: Runtime;
  module: string;
}

const fnFromRow = (r: FunctionRow): FunctionRecord => ({
  app: r.app,
  name: r.name,
  spec: { web: null, public: false, ...(JSON.parse(r.spec) as Partial<FunctionSpec>) } as FunctionSpec, // specs stored before web endpoints lack both
  image: r.image,
  bundleHash: r.bundle_hash,
  deployedAt: r.deployed_at,
  runtime: r.runtime,
  module: r.module,
});

/** Deployed apps and their functions. Deploys are rare: plain synchronous transactions. */
export class AppStore {
  constructor(private readonly db: Db) {}

  /** Replaces the app's functions with these, in one transaction. */
  saveDeployment(app: AppRecord, functions: FunctionRecord[]): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO apps (name, state, bundle_hash, source, deployed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET state = excluded.state, bundle_hash = excluded.bundle_hash,
             source = excluded.source, deployed_at = excluded.deployed_at, expires_at = excluded.expires_at`,
        )
        .run(app.name, app.state, app.bundleHash, app.source, app.deployedAt, app.expiresAt);
      this.db.prepare(`DELETE FROM functions WHERE app = ?`).run(app.name);
      const ins = this.db.prepare(
        `INSERT INTO functions (app, name, spec, image, bundle_hash, deployed_at, runtime, module) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const f of functions) ins.run(f.app, f.name, JSON.stringify(f.spec), f.image, f.bundleHash, f.deployedAt, f.runtime, f.module);
    })();
  }

  listApps(): AppRecord[] {
    return (this.db.prepare(`SELECT * FROM apps ORDER BY name`).all() as Array<Record<string, unknown>>).map((r) => ({
      name: r.name as string,
      state: r.state as AppRecord["state"],
      bundleHash: r.bundle_hash as string,
      source: (r.source as string | null) ?? null,
      deployedAt: r.deployed_at as number,
      expiresAt: (r.expires_at as number | null) ?? null,
    }));
  }

  /** Pushes an ephemeral app's expiry back; false when there is no such ephemeral app. */
  touchApp(name: string, expiresAt: number): boolean {
    return this.db.prepare(`UPDATE apps SET expires_at = ? WHERE name = ? AND expires_at IS NOT NULL`).run(expiresAt, name).changes === 1;
  }

  listFunctions(): FunctionRecord[] {
    return (this.db.prepare(`SELECT * FROM functions ORDER BY app, name`).all() as FunctionRow[]).map(fnFromRow);
  }

  setAppState(name: string, state: AppRecord["state"]): boolean {
    return this.db.prepare(`UPDATE apps SET state = ? WHERE name = ?`).run(state, name).changes === 1;
  }

  getMeta(key: string): string | null {
    const row = this.db.prepare(`SELECT value FROM meta WHERE key = ?`).get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(key, value);
  }
}
