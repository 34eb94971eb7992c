/**
 * Apps' versions (issue 21): the store (numbering, what changed, the last 50 kept, migration 10's
 * seed of apps deployed before it), the deployer's rollback (no build: images and code checked,
 * served and recorded as a new version) and the CLI's pure parts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { MIGRATIONS } from "../../daemon/store/migrations.js";
import { AppStore, type FunctionRecord } from "../../daemon/store/app-store.js";
import { describeChanges, versionRanges, VersionStore, type VersionFunction } from "../../daemon/store/version-store.js";
import { Deployer, type DeployerDeps } from "../../daemon/service/deployer.js";
import type { DeployedFunction, Dispatcher } from "../../daemon/service/dispatcher.js";
import type { GpuBroker } from "../../daemon/service/gpu-broker.js";
import { ServiceError } from "../../daemon/service/errors.js";
import type { ContainerRuntime } from "../../daemon/docker/types.js";
import { silentLogger } from "../../daemon/logger.js";
import { registerVersionRoutes, versionView } from "../../daemon/api/version-routes.js";
import { Router, type RequestContext } from "../../daemon/api/http-kit.js";
import { resolveFunctionSpec, type FunctionOptions } from "../../protocol/function-spec.js";
import { historyTable, parseVersionArg } from "../../cli/commands/apps.js";
import { UsageError } from "../../cli/exit-codes.js";

let dir: string;
let db: Db;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-versions-test-"));
  db = openDatabase(join(dir, "gantry.db"));
});

afterEach(() => {
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

const fn = (name: string, o: Partial<VersionFunction> & { options?: FunctionOptions } = {}): VersionFunction => ({
  name,
  spec: resolveFunctionSpec(name, o.options ?? {}),
  image: o.image ?? "gantry/fn-node:aaaa",
  bundleHash: o.bundleHash ?? "bundle1",
  runtime: o.runtime ?? "node",
  module: o.module ?? "app.mjs",
});

const record = (app: string, f: VersionFunction, deployedAt = 1000): FunctionRecord => ({ ...f, app, deployedAt });

describe("VersionStore", () => {
  it("numbers each app's versions from 1 and lists them newest first", () => {
    const versions = new VersionStore(db);
    expect(versions.list("a")).toEqual([]);
    expect(versions.latest("a")).toBeUndefined();
    const v1 = versions.record({ app: "a", deployedAt: 1000, bundleHash: "bundle1", source: "app.ts", functions: [record("a", fn("f"))] });
    versions.record({ app: "b", deployedAt: 1500, bundleHash: "bundle1", source: null, functions: [record("b", fn("g"))] });
    const v2 = versions.record({ app: "a", deployedAt: 2000, bundleHash: "bundle2", source: "app.ts", functions: [record("a", fn("f", { bundleHash: "bundle2" }))] });
    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect(versions.list("a").map((v) => v.version)).toEqual([2, 1]);
    expect(versions.list("b").map((v) => v.version)).toEqual([1]);
    expect(versions.latest("a")).toEqual(v2);
    expect(versions.get("a", 1)).toEqual(v1);
    expect(versions.get("a", 3)).toBeUndefined();
    // What a version keeps of a function: no app, no time (the version has it).
    expect(Object.keys(v1.functions[0]!).sort()).toEqual(["bundleHash", "image", "module", "name", "runtime", "spec"]);
    expect(v1.functions[0]!.spec).toEqual(resolveFunctionSpec("f", {}));
    expect(v1).toMatchObject({ app: "a", deployedAt: 1000, source: "app.ts", changes: ["first version: f"], rollbackTo: null, rolledBackFrom: null });
  });

  it("says what changed from the version before", () => {
    const versions = new VersionStore(db);
    const deploy = (bundleHash: string, fs: VersionFunction[]) => versions.record({ app: "a", deployedAt: 1, bundleHash, source: null, functions: fs.map((f) => record("a", { ...f, bundleHash })) }).changes;
    expect(deploy("b1", [fn("f"), fn("g")])).toEqual(["first version: f, g"]);
    expect(deploy("b1", [fn("f"), fn("g")])).toEqual(["no changes"]);
    expect(deploy("b2222222222", [fn("f"), fn("g")])).toEqual(["code changed (b1 → b2222222)"]);
    expect(deploy("b2222222222", [fn("f", { options: { timeout: 60, env: { K: "secret-value" } } }), fn("g", { image: "gantry/fn-node:bbbb" }), fn("h")])).toEqual([
      "added function h",
      "f: options changed (env, startupTimeoutMs, timeoutMs)", // a timeout sets the startup timeout too
      "g: image changed",
    ]);
    const removed = deploy("b2222222222", [fn("g", { image: "gantry/fn-node:bbbb" })]);
    expect(removed).toEqual(["removed functions f, h"]);
    expect(removed.join(" ")).not.toContain("secret-value"); // options are named, never their values
  });

  it("describes runtime and module changes", () => {
    const prev = { bundleHash: "x", functions: [fn("f")] };
    expect(describeChanges(prev, { bundleHash: "x", functions: [fn("f", { module: "other.mjs" })] })).toEqual(["f: module changed (app.mjs → other.mjs)"]);
    expect(describeChanges(prev, { bundleHash: "x", functions: [{ ...fn("f"), runtime: "python", module: "m" }] })).toEqual(["runtime changed (node → python)"]);
    expect(describeChanges(null, { bundleHash: "x", functions: [] })).toEqual(["first version"]);
    // Key order in a stored spec does not count as a change.
    const f = fn("f", { options: { timeout: 5 } });
    const reordered = { ...f, spec: Object.fromEntries(Object.entries(f.spec).reverse()) as typeof f.spec };
    expect(describeChanges({ bundleHash: "x", functions: [f] }, { bundleHash: "x", functions: [reordered] })).toEqual(["no changes"]);
  });

  it("a rollback says which version it served again and which it was rolled back from", () => {
    const versions = new VersionStore(db);
    versions.record({ app: "a", deployedAt: 1, bundleHash: "b1", source: null, functions: [record("a", fn("f", { bundleHash: "b1" }))] });
    versions.record({ app: "a", deployedAt: 2, bundleHash: "b2", source: null, functions: [record("a", fn("f", { bundleHash: "b2" }))] });
    const back = versions.record({ app: "a", deployedAt: 3, bundleHash: "b1", source: null, functions: [record("a", fn("f", { bundleHash: "b1" }))], rollbackTo: 1 });
    expect(back).toMatchObject({ version: 3, rollbackTo: 1, rolledBackFrom: 2, changes: ["rollback to v1", "code changed (b2 → b1)"] });
    expect(versions.get("a", 3)).toEqual(back);
  });

  it("keeps the last 50 versions of each app", () => {
    const versions = new VersionStore(db);
    for (let i = 1; i <= 55; i++) versions.record({ app: "a", deployedAt: i, bundleHash: `b${i}`, source: null, functions: [record("a", fn("f"))] });
    versions.record({ app: "other", deployedAt: 1, bundleHash: "b", source: null, functions: [] });
    const kept = versions.list("a").map((v) => v.version);
    expect(kept.length).toBe(50);
    expect(kept[0]).toBe(55);
    expect(kept.at(-1)).toBe(6);
    expect(versions.list("other").length).toBe(1);
    // Numbering goes on past what was removed.
    expect(versions.record({ app: "a", deployedAt: 99, bundleHash: "b", source: null, functions: [] }).version).toBe(56);
    const small = new VersionStore(db, 2);
    small.record({ app: "s", deployedAt: 1, bundleHash: "b", source: null, functions: [] });
    small.record({ app: "s", deployedAt: 2, bundleHash: "b", source: null, functions: [] });
    small.record({ app: "s", deployedAt: 3, bundleHash: "b", source: null, functions: [] });
    expect(small.list("s").map((v) => v.version)).toEqual([3, 2]);
  });

  it("version ranges read short", () => {
    expect(versionRanges([3, 1, 2, 5, 7, 8])).toBe("v1–v3, v5, v7–v8");
    expect(versionRanges([4])).toBe("v4");
    expect(versionRanges([])).toBe("");
  });
});

describe("migration 10", () => {
  it("is the tenth migration and records each app deployed before it as its version 1", () => {
    db.close();
    const file = join(dir, "old.db");
    const old = new Database(file);
    for (let v = 0; v < 9; v++) old.exec(MIGRATIONS[v]!);
    old.pragma("user_version = 9");
    const spec = resolveFunctionSpec("g", { timeout: 7 });
    old.prepare(`INSERT INTO apps (name, state, bundle_hash, source, deployed_at) VALUES ('a', 'deployed', 'h1', 'app.py', 1234)`).run();
    old.prepare(`INSERT INTO apps (name, state, bundle_hash, source, deployed_at) VALUES ('empty', 'stopped', 'h0', NULL, 5)`).run();
    const ins = old.prepare(`INSERT INTO functions (app, name, spec, image, bundle_hash, deployed_at, runtime, module) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    ins.run("a", "g", JSON.stringify(spec), "gantry/fn-python:g", "h1", 1234, "python", "my_app");
    ins.run("a", "f", "{}", "gantry/fn-python:f", "h1", 1234, "python", "my_app"); // a spec stored before web endpoints
    old.close();

    db = openDatabase(file);
    expect(MIGRATIONS[9]).toContain("CREATE TABLE app_versions");
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const versions = new VersionStore(db);
    const [v1] = versions.list("a");
    expect(v1).toMatchObject({ app: "a", version: 1, deployedAt: 1234, bundleHash: "h1", source: "app.py", changes: ["deployed before gantry kept versions"], rollbackTo: null });
    expect(v1!.functions.map((f) => f.name)).toEqual(["f", "g"]);
    expect(v1!.functions[1]).toEqual({ name: "g", spec, image: "gantry/fn-python:g", bundleHash: "h1", runtime: "python", module: "my_app" });
    expect(v1!.functions[0]!.spec).toMatchObject({ web: null, public: false });
    expect(versions.list("empty")).toMatchObject([{ version: 1, functions: [] }]);
    // The next deploy is version 2, compared against it.
    expect(versions.record({ app: "a", deployedAt: 2000, bundleHash: "h1", source: "app.py", functions: [record("a", v1!.functions[1]!)] })).toMatchObject({ version: 2, changes: ["removed function f"] });
  });
});

describe("Deployer.rollback", () => {
  function setup(images: string[] = ["gantry/fn-node:aaaa", "gantry/fn-node:bbbb"]) {
    const appsDir = join(dir, "apps");
    const apps = new AppStore(db);
    const versions = new VersionStore(db);
    const present = new Set(images);
    const applied: Array<{ app: string; functions: DeployedFunction[] }> = [];
    const scheduled: string[] = [];
    const deps: DeployerDeps = {
      runtime: { imageExists: async (tag: string) => present.has(tag) } as unknown as ContainerRuntime,
      apps,
      versions,
      dispatcher: { applyDeployment: (app: string, functions: DeployedFunction[]) => applied.push({ app, functions }) } as unknown as Dispatcher,
      gpus: { check: async () => undefined } as unknown as GpuBroker,
      log: silentLogger,
      webBase: () => null,
      appsDir,
      baseImages: { node: "node", python: "python" },
      layers: { runtimeImagesDir: dir, pythonPackageDir: dir },
      schedules: { apply: (app: string) => scheduled.push(app) },
      clock: () => 9000,
    };
    const deployer = new Deployer(deps);
    /** What a deploy records: the app's functions, and the version. */
    const deployed = (bundleHash: string, fs: VersionFunction[], at: number) => {
      mkdirSync(join(appsDir, "a", bundleHash), { recursive: true });
      const records = fs.map((f) => record("a", { ...f, bundleHash }, at));
      apps.saveDeployment({ name: "a", state: "deployed", bundleHash, source: "app.ts", deployedAt: at, expiresAt: null }, records);
      versions.record({ app: "a", deployedAt: at, bundleHash, source: "app.ts", functions: records });
    };
    return { deployer, apps, versions, applied, scheduled, present, appsDir, deployed };
  }

  it("serves the version before the current again, without building, as a new version", async () => {
    const t = setup();
    t.deployed("b1", [fn("f")], 1000);
    t.deployed("b2", [fn("f", { image: "gantry/fn-node:bbbb", options: { timeout: 30 } }), fn("g")], 2000);
    const res = await t.deployer.rollback("a");
    expect(res.rollbackTo).toBe(1);
    expect(res.version).toMatchObject({ version: 3, rollbackTo: 1, rolledBackFrom: 2, deployedAt: 9000, bundleHash: "b1" });
    expect(res.version.changes).toEqual(["rollback to v1", "removed function g", "code changed (b2 → b1)", "f: image changed", "f: options changed (startupTimeoutMs, timeoutMs)"]);
    expect(res.functions.map((f) => [f.name, f.image])).toEqual([["f", "gantry/fn-node:aaaa"]]);
    // Served exactly as a deploy serves: the store's functions, the dispatcher, the schedules.
    expect(t.apps.listFunctions()).toEqual([record("a", { ...fn("f"), bundleHash: "b1" }, 9000)]);
    expect(t.apps.listApps()).toEqual([{ name: "a", state: "deployed", bundleHash: "b1", source: "app.ts", deployedAt: 9000, expiresAt: null }]);
    expect(t.applied).toHaveLength(1);
    expect(t.applied[0]!.functions.map((f) => [f.spec.name, f.image, f.bundleDir])).toEqual([["f", "gantry/fn-node:aaaa", join(t.appsDir, "a", "b1")]]);
    expect(t.scheduled).toEqual(["a"]);
    // Rolling back again goes to the version before the current (v2), and a named one is served.
    expect((await t.deployer.rollback("a")).rollbackTo).toBe(2);
    expect((await t.deployer.rollback("a", 1)).version).toMatchObject({ version: 5, rollbackTo: 1, rolledBackFrom: 4 });
    expect(t.versions.list("a").map((v) => v.version)).toEqual([5, 4, 3, 2, 1]);
  });

  it("refuses an unknown app or version, naming the versions there are", async () => {
    const t = setup();
    await expect(t.deployer.rollback("nope")).rejects.toThrow(/no deployed app named nope/);
    t.deployed("b1", [fn("f")], 1000);
    await expect(t.deployer.rollback("a")).rejects.toThrow(/one version only \(v1\): there is no earlier one/);
    t.deployed("b2", [fn("f")], 2000);
    const err = await t.deployer.rollback("a", 7).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({ code: "not_found", message: expect.stringContaining("app a has no version 7: its versions are v1–v2") });
    await expect(t.deployer.rollback("a", 2)).rejects.toMatchObject({ code: "conflict", message: "app a serves v2 already" });
    expect(t.applied).toEqual([]);
  });

  it("refuses a version whose image or code is gone, naming it, and serves nothing", async () => {
    const t = setup(["gantry/fn-node:bbbb"]);
    t.deployed("b1", [fn("f"), fn("g")], 1000);
    t.deployed("b2", [fn("f", { image: "gantry/fn-node:bbbb" })], 2000);
    await expect(t.deployer.rollback("a", 1)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/cannot roll a back to v1 without building: its image gantry\/fn-node:aaaa is gone from Docker; deploy that version's code again/),
    });
    t.present.add("gantry/fn-node:aaaa");
    rmSync(join(t.appsDir, "a", "b1"), { recursive: true });
    await expect(t.deployer.rollback("a", 1)).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("its code") });
    expect(t.applied).toEqual([]);
    expect(t.versions.list("a").map((v) => v.version)).toEqual([2, 1]);
    expect(t.apps.listApps()[0]!.bundleHash).toBe("b2");
  });

  it("GET /v1/apps/:app/versions lists them, the newest current", async () => {
    const t = setup();
    t.deployed("b1", [fn("f")], 1000);
    t.deployed("b2", [fn("f")], 2000);
    await t.deployer.rollback("a");
    const r = new Router();
    registerVersionRoutes(r, { apps: t.apps, deployer: t.deployer });
    const get = async (app: string) => {
      const { handler, params } = r.match("GET", `/v1/apps/${app}/versions`);
      return handler({ params, query: new URLSearchParams() } as unknown as RequestContext);
    };
    const answer = (await get("a")) as { status: number; body: { versions: ReturnType<typeof versionView>[] } };
    expect(answer.status).toBe(200);
    expect(answer.body.versions.map((v) => [v.version, v.current, v.rolled_back_from, v.rollback_to])).toEqual([
      [3, true, 2, 1],
      [2, false, undefined, undefined],
      [1, false, undefined, undefined],
    ]);
    expect(answer.body.versions[2]).toEqual({
      version: 1,
      deployed_at: new Date(1000).toISOString(),
      functions: [{ name: "f", image: "gantry/fn-node:aaaa", bundle_hash: "b1", runtime: "node" }],
      changes: ["first version: f"],
      current: false,
      source: "app.ts",
    });
    await expect(get("nope")).rejects.toMatchObject({ status: 404 });
  });
});

describe("gantry app history / rollback", () => {
  it("reads VERSION as 3 or v3", () => {
    expect(parseVersionArg("3")).toBe(3);
    expect(parseVersionArg("v12")).toBe(12);
    for (const bad of ["0", "v", "-1", "1.5", "three", ""]) expect(() => parseVersionArg(bad), bad).toThrow(UsageError);
  });

  it("shows versions newest first with the current one marked", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    const text = historyTable(
      [
        { version: 2, deployed_at: "2026-01-01T11:59:00Z", functions: [{ name: "f", image: "i", bundle_hash: "b", runtime: "node" }], changes: ["rollback to v1", "code changed (b2 → b1)"], current: true, source: null, rolled_back_from: 1, rollback_to: 1 },
        { version: 1, deployed_at: "2026-01-01T10:00:00Z", functions: [], changes: ["first version"], current: false, source: null },
      ],
      now,
    );
    expect(text.split("\n")).toEqual([
      "VERSION       DEPLOYED  FUNCTIONS  CHANGES",
      "v2 (current)  1m ago    f          rollback to v1; code changed (b2 → b1)",
      "v1            2h ago    -          first version",
    ]);
    expect(historyTable([])).toBe("");
  });
});
