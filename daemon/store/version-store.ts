/**
 * Apps' versions (table `app_versions`, migration 10): every successful deploy, and every rollback,
 * is a version numbered 1, 2, … per app, holding the function records it served (so a rollback can
 * serve them again without building) and a short summary of what changed from the version before.
 * The newest is the one served now. The last `keep` versions of each app are kept (50 by default);
 * their bundles and images are not removed with them.
 */
import type { FunctionSpec, Runtime } from "../../protocol/function-spec.js";
import type { FunctionRecord } from "./app-store.js";
import type { Db } from "./database.js";

/** A function as a version keeps it: everything a deploy records but when (the version says that). */
export interface VersionFunction {
  name: string;
  spec: FunctionSpec;
  image: string;
  bundleHash: string;
  runtime: Runtime;
  module: string;
}

export interface AppVersion {
  app: string;
  version: number;
  deployedAt: number;
  bundleHash: string;
  source: string | null;
  functions: VersionFunction[];
  /** What changed from the version before ("added function f", "code changed", …). */
  changes: string[];
  /** A rollback's: the version it served again, and the version served before it. */
  rollbackTo: number | null;
  rolledBackFrom: number | null;
}

/** What a deploy or a rollback records; the store numbers it and says what changed. */
export interface NewVersion {
  app: string;
  deployedAt: number;
  bundleHash: string;
  source: string | null;
  functions: ReadonlyArray<FunctionRecord | VersionFunction>;
  /** A rollback: the version served again. */
  rollbackTo?: number;
}

interface Row {
  app: string;
  version: number;
  deployed_at: number;
  bundle_hash: string;
  source: string | null;
  functions: string;
  changes: string;
  rollback_to: number | null;
  rolled_back_from: number | null;
}

export const KEEP_VERSIONS = 50;

const fromRow = (r: Row): AppVersion => ({
  app: r.app,
  version: r.version,
  deployedAt: r.deployed_at,
  bundleHash: r.bundle_hash,
  source: r.source,
  functions: (JSON.parse(r.functions) as VersionFunction[]).map((f) => ({
    ...f,
    spec: { web: null, public: false, ...(f.spec as Partial<FunctionSpec>) } as FunctionSpec, // specs stored before web endpoints lack both (as app-store)
  })),
  changes: JSON.parse(r.changes) as string[],
  rollbackTo: r.rollback_to,
  rolledBackFrom: r.rolled_back_from,
});

const keep = (f: FunctionRecord | VersionFunction): VersionFunction => ({
  name: f.name,
  spec: f.spec,
  image: f.image,
  bundleHash: f.bundleHash,
  runtime: f.runtime,
  module: f.module,
});

/** JSON with object keys sorted, so two specs compare equal whatever order their keys were written in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** Spec fields a change summary leaves out: the name is the function's, the image spec shows as its tag. */
const NOT_OPTIONS = new Set(["name", "image"]);

/** The options (spec fields) that differ between two specs of one function, by name. */
function changedOptions(a: FunctionSpec, b: FunctionSpec): string[] {
  const ra = a as unknown as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].filter((k) => !NOT_OPTIONS.has(k)).sort();
  return keys.filter((k) => canonical(ra[k] ?? null) !== canonical(rb[k] ?? null));
}

/**
 * What changed from `prev` to `next`, one short line each: functions added and removed, the code
 * (the bundle's hash, the runtime or module), and per function its image and its options (named,
 * never their values: env holds values). `prev` null: the app's first version.
 */
export function describeChanges(prev: { bundleHash: string; functions: readonly VersionFunction[] } | null, next: { bundleHash: string; functions: readonly VersionFunction[] }): string[] {
  const names = (fs: readonly VersionFunction[]) => fs.map((f) => f.name).sort().join(", ");
  if (!prev) return [next.functions.length ? `first version: ${names(next.functions)}` : "first version"];
  const out: string[] = [];
  const before = new Map(prev.functions.map((f) => [f.name, f]));
  const after = new Map(next.functions.map((f) => [f.name, f]));
  const added = next.functions.filter((f) => !before.has(f.name));
  const removed = prev.functions.filter((f) => !after.has(f.name));
  if (added.length) out.push(`added ${added.length === 1 ? "function" : "functions"} ${names(added)}`);
  if (removed.length) out.push(`removed ${removed.length === 1 ? "function" : "functions"} ${names(removed)}`);
  if (prev.bundleHash !== next.bundleHash) out.push(`code changed (${prev.bundleHash.slice(0, 8)} → ${next.bundleHash.slice(0, 8)})`);
  const kept = next.functions.filter((f) => before.has(f.name)).sort((a, b) => a.name.localeCompare(b.name));
  const runtimes = new Set(kept.filter((f) => f.runtime !== before.get(f.name)!.runtime).map((f) => `${before.get(f.name)!.runtime} → ${f.runtime}`));
  for (const r of runtimes) out.push(`runtime changed (${r})`);
  for (const f of kept) {
    const old = before.get(f.name)!;
    if (old.module !== f.module && old.runtime === f.runtime) out.push(`${f.name}: module changed (${old.module} → ${f.module})`);
    if (old.image !== f.image) out.push(`${f.name}: image changed`);
    const opts = changedOptions(old.spec, f.spec);
    if (opts.length) out.push(`${f.name}: options changed (${opts.join(", ")})`);
  }
  return out.length ? out : ["no changes"];
}

/** Version numbers as short ranges, newest last: "v1–v3, v5". */
export function versionRanges(versions: readonly number[]): string {
  const sorted = [...versions].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? `v${sorted[i]}` : `v${sorted[i]}–v${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

export class VersionStore {
  private readonly stmts;

  constructor(
    private readonly db: Db,
    private readonly keep = KEEP_VERSIONS,
  ) {
    this.stmts = {
      list: db.prepare(`SELECT * FROM app_versions WHERE app = ? ORDER BY version DESC`),
      get: db.prepare(`SELECT * FROM app_versions WHERE app = ? AND version = ?`),
      latest: db.prepare(`SELECT * FROM app_versions WHERE app = ? ORDER BY version DESC LIMIT 1`),
      insert: db.prepare(
        `INSERT INTO app_versions (app, version, deployed_at, bundle_hash, source, functions, changes, rollback_to, rolled_back_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      prune: db.prepare(`DELETE FROM app_versions WHERE app = ? AND version <= ?`),
    };
  }

  /** The app's versions, newest (the one served) first; [] for an app never deployed. */
  list(app: string): AppVersion[] {
    return (this.stmts.list.all(app) as Row[]).map(fromRow);
  }

  get(app: string, version: number): AppVersion | undefined {
    const row = this.stmts.get.get(app, version) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The newest version: the one served now. */
  latest(app: string): AppVersion | undefined {
    const row = this.stmts.latest.get(app) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /**
   * Records a deploy (or a rollback) as the app's next version, says what changed from the one
   * before, and removes versions beyond the last `keep`; in one transaction.
   */
  record(v: NewVersion): AppVersion {
    return this.db.transaction((): AppVersion => {
      const prev = this.latest(v.app);
      const functions = v.functions.map(keep).sort((a, b) => a.name.localeCompare(b.name));
      const diff = describeChanges(prev ?? null, { bundleHash: v.bundleHash, functions });
      const changes = v.rollbackTo !== undefined ? [`rollback to v${v.rollbackTo}`, ...diff.filter((c) => c !== "no changes")] : diff;
      const version = (prev?.version ?? 0) + 1;
      const rolledBackFrom = v.rollbackTo !== undefined ? (prev?.version ?? null) : null;
      this.stmts.insert.run(v.app, version, v.deployedAt, v.bundleHash, v.source, JSON.stringify(functions), JSON.stringify(changes), v.rollbackTo ?? null, rolledBackFrom);
      this.stmts.prune.run(v.app, version - this.keep);
      return { app: v.app, version, deployedAt: v.deployedAt, bundleHash: v.bundleHash, source: v.source, functions, changes, rollbackTo: v.rollbackTo ?? null, rolledBackFrom };
    })();
  }
}
