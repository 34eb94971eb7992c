/**
 * An app's versions: GET /v1/apps/:app/versions lists them (newest, the one served, first);
 * POST /v1/apps/:app/rollback serves an earlier one again without building (`{"version": N}`,
 * by default the one before the current) and records it as a new version.
 */
import type { RollbackView, VersionView } from "../../protocol/api.js";
import type { AppStore } from "../store/app-store.js";
import type { AppVersion } from "../store/version-store.js";
import type { Deployer } from "../service/deployer.js";
import { invalid, notFound } from "./errors.js";
import { readJson, type Router } from "./http-kit.js";
import { iso } from "./call-views.js";

export function versionView(v: AppVersion, current: boolean): VersionView {
  return {
    version: v.version,
    deployed_at: iso(v.deployedAt)!,
    functions: v.functions.map((f) => ({ name: f.name, image: f.image, bundle_hash: f.bundleHash, runtime: f.runtime })),
    changes: v.changes,
    current,
    source: v.source,
    ...(v.rolledBackFrom !== null ? { rolled_back_from: v.rolledBackFrom } : {}),
    ...(v.rollbackTo !== null ? { rollback_to: v.rollbackTo } : {}),
  };
}

export function registerVersionRoutes(r: Router, d: { apps: AppStore; deployer: Deployer }): void {
  r.on("GET", "/v1/apps/:app/versions", async ({ params }) => {
    const versions = d.deployer.versions(params.app!);
    if (!versions.length && !d.apps.listApps().some((a) => a.name === params.app)) throw notFound(`no deployed app named ${params.app}`);
    return { status: 200, body: { versions: versions.map((v, i) => versionView(v, i === 0)) } };
  });

  r.on("POST", "/v1/apps/:app/rollback", async ({ req, params }) => {
    const body = (await readJson(req, 1024)) as { version?: unknown } | undefined | null;
    if (body !== undefined && (body === null || typeof body !== "object" || Array.isArray(body))) throw invalid(`the body must be {"version": N} or empty (the version before the current)`);
    const version = body?.version;
    if (version !== undefined && version !== null && !(typeof version === "number" && Number.isInteger(version) && version >= 1)) {
      throw invalid(`version must be a version number (1, 2, …), got ${JSON.stringify(version).slice(0, 40)}`);
    }
    const done = await d.deployer.rollback(params.app!, (version ?? undefined) as number | undefined);
    const answer: RollbackView = { app: params.app!, version: versionView(done.version, true), rollback_to: done.rollbackTo, functions: done.functions };
    return { status: 200, body: answer };
  });
}
