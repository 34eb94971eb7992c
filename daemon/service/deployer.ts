import { createHash } from "node:crypto";
import { chmod, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { webUrl, type DeployEvent, type FunctionView } from "../../protocol/api.js";
import { describeSchedule, scheduleProblem } from "../../protocol/schedule.js";
import { bundlePathProblem } from "../../protocol/bundle-paths.js";
import { resolveFunctionSpec, type Asset, type DeployRequest, type FunctionSpec, type ImageSpec } from "../../protocol/function-spec.js";
import { invalid, notFound, ServiceError, ServiceErrorCode } from "./errors.js";
import { APP_MODULE_NAME, assetHash, type BuildSettings } from "../docker/image-plan.js";
import { readHostIndexSettings } from "../host/index-settings.js";
import { ImageBuilder } from "./image-builder.js";
import { loadRuntimeLayer, type RuntimeLayerPaths } from "../docker/runtime-layers.js";
import type { ContainerRuntime } from "../docker/types.js";
import type { Logger } from "../logger.js";
import type { AppStore, FunctionRecord } from "../store/app-store.js";
import { versionRanges, type AppVersion, type NewVersion, type VersionStore } from "../store/version-store.js";
import type { DeployedFunction, Dispatcher } from "./dispatcher.js";
import type { GpuBroker } from "./gpu-broker.js";

export interface DeployerDeps {
  runtime: ContainerRuntime;
  apps: AppStore;
  dispatcher: Dispatcher;
  gpus: GpuBroker;
  log: Logger;
  /** The daemon's HTTP address (for web endpoints' URLs), or null without TCP. */
  webBase: () => string | null;
  appsDir: string;
  baseImages: { node: string; python: string };
  layers: RuntimeLayerPaths;
  /** Containers run across a cluster, where a task must reach the daemon over the network. */
  cluster?: boolean;
  /** Starts, changes and stops the app's functions' schedules. */
  schedules?: { apply(app: string, specs: readonly FunctionSpec[]): void };
  /** Every deploy and rollback, numbered per app: what `rollback` serves again. */
  versions: VersionStore;
  /** Checks (and makes, with createIfMissing) the volumes functions mount. */
  volumes?: { prepare(app: string, specs: readonly FunctionSpec[]): Promise<void> };
  /** Which secrets exist: a function naming one that does not is refused. */
  secrets?: { exists(name: string): boolean };
  clock?: () => number;
  /** The host's package-index settings for builds; read at each deploy by default. */
  indexSettings?: () => BuildSettings;
  /** The longest an image build may run (default 30 minutes). */
  buildTimeoutMs?: number;
  /** When an app deployed now expires (ephemeral ones: AppLifecycle); none: never. */
  expiryFor?: (ephemeral: boolean) => number | null;
  /** Told of each image build that ran (not of cached images): for metrics. */
  onImageBuild?: (b: { ok: boolean; seconds: number }) => void;
}

const sha256 = (...parts: Array<string | Buffer>) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
};

/** A function as the API shows it; `webBase` is the daemon's HTTP address, for endpoints' URLs. */
export function functionView(f: FunctionRecord, webBase: string | null): FunctionView {
  return {
    app: f.app,
    name: f.name,
    image: f.image,
    web_url: f.spec.web ? webUrl(webBase, f.app, f.name) : null,
    gpu: f.spec.gpu,
    deployed_at: new Date(f.deployedAt).toISOString(),
    max_containers: f.spec.maxContainers,
    max_inputs: f.spec.maxInputs,
    timeout_s: f.spec.timeoutMs / 1000,
    retries: f.spec.retries.maxRetries,
    runtime: f.runtime,
    min_containers: f.spec.minContainers,
    buffer_containers: f.spec.bufferContainers,
    scaledown_window_s: f.spec.scaledownWindowMs / 1000,
    cpu: f.spec.cpu,
    memory_mib: f.spec.memoryMiB,
    result_ttl_s: f.spec.resultTtlMs / 1000,
    network: f.spec.network,
    env: Object.keys(f.spec.env),
    secrets: f.spec.secrets ?? [],
    web: f.spec.web?.kind ?? null,
    generator: f.spec.generator ?? false,
    methods: f.spec.cls?.methods.map((m) => m.name) ?? null,
    params: f.spec.cls?.params ?? [],
    schedule: f.spec.schedule ? describeSchedule(f.spec.schedule) : null,
    web_methods: Object.fromEntries((f.spec.cls?.methods ?? []).filter((m) => m.web).map((m) => [m.name, webUrl(webBase, f.app, `${f.name}.${m.name}`)])),
    generator_methods: f.spec.cls?.methods.filter((m) => m.generator).map((m) => m.name) ?? [],
    public: f.spec.public,
  };
}

export function deployedFunction(f: FunctionRecord, appsDir: string): DeployedFunction {
  return {
    app: f.app,
    spec: f.spec,
    image: f.image,
    bundleDir: join(appsDir, f.app, f.bundleHash),
    revision: sha256(f.bundleHash, f.image, JSON.stringify(f.spec)).slice(0, 16),
    runtime: f.runtime,
    module: f.module,
  };
}

/**
 * Deploys an app: validates its functions, stores its bundle, builds one image per distinct image
 * spec (tagged by content hash, so an unchanged redeploy builds nothing), then records the
 * functions and hands them to the dispatcher. Deploys of one app run one at a time.
 */
export class Deployer {
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private readonly images: ImageBuilder;

  constructor(private readonly d: DeployerDeps) {
    this.now = d.clock ?? Date.now;
    this.images = new ImageBuilder({ runtime: d.runtime, baseImages: d.baseImages, settings: d.indexSettings ?? (() => readHostIndexSettings()), buildTimeoutMs: d.buildTimeoutMs, onBuild: d.onImageBuild });
  }

  deploy(req: DeployRequest, emit: (e: DeployEvent) => void): Promise<FunctionView[]> {
    const prev = this.chains.get(req.app) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.run(req, emit));
    this.chains.set(req.app, next);
    void next.finally(() => {
      if (this.chains.get(req.app) === next) this.chains.delete(req.app);
    }).catch(() => undefined);
    return next;
  }

  private async run(req: DeployRequest, emit: (e: DeployEvent) => void): Promise<FunctionView[]> {
    const specs = this.validate(req);
    this.checkSecrets(req.app, specs);
    await this.d.volumes?.prepare(req.app, specs);
    for (const s of specs) if (s.gpu) await this.d.gpus.check(s.name, s.gpu);
    const offline = this.d.cluster ? specs.find((s) => s.network === "none") : undefined;
    if (offline) {
      throw invalid(`function ${offline.name} asks for network "none", which a Swarm task cannot have: its agent reaches the daemon over the network (--backend swarm)`);
    }
    const assets = this.checkedAssets(req, specs);
    const files = req.runtime === "node" ? { [APP_MODULE_NAME]: req.bundle! } : req.files!;
    const bundleHash = sha256(...Object.keys(files).sort().flatMap((f) => [f, files[f]!])).slice(0, 24);
    await this.storeBundle(join(this.d.appsDir, req.app, bundleHash), files);
    const layer = await loadRuntimeLayer(req.runtime, this.d.layers).catch((err: Error) => {
      throw new ServiceError(ServiceErrorCode.internal, err.message);
    });

    const { tags, built, cached } = await this.images.ensure(specs, layer, assets, emit);

    const deployedAt = this.now();
    const records: FunctionRecord[] = specs.map((spec) => ({
      app: req.app,
      name: spec.name,
      spec,
      image: tags.get(spec.name)!,
      bundleHash,
      deployedAt,
      runtime: req.runtime,
      module: req.runtime === "node" ? APP_MODULE_NAME : req.module!,
    }));
    this.checkSecrets(req.app, specs); // again, with the save: a secret removed during the build is seen
    const expiresAt = this.d.expiryFor?.(req.ephemeral === true) ?? null;
    this.d.apps.saveDeployment({ name: req.app, state: "deployed", bundleHash, source: req.source ?? null, deployedAt, expiresAt }, records);
    this.d.dispatcher.applyDeployment(req.app, records.map((r) => deployedFunction(r, this.d.appsDir)));
    this.d.schedules?.apply(req.app, specs);
    const version = this.recordVersion({ app: req.app, deployedAt, bundleHash, source: req.source ?? null, functions: records });
    this.d.log.info("deployed", { app: req.app, functions: specs.length, built: built.length, cached: cached.length, ephemeral: expiresAt !== null });
    const views = records.map((r) => functionView(r, this.d.webBase()));
    emit({ type: "done", app: req.app, functions: views, built, cached, ...(version !== null ? { version } : {}), ephemeral: expiresAt !== null });
    return views;
  }

  /**
   * A sandbox's image (issue 24): built as a function's would be (same tags, so one a function
   * already has builds nothing), from the image and assets a Sandbox.create sent.
   */
  async sandboxImage(runtime: "node" | "python", image: ImageSpec, assets: Record<string, Asset>, emit: (e: DeployEvent) => void): Promise<string> {
    const spec = { name: "sandbox", image } as FunctionSpec;
    const checked = this.checkedAssets({ assets } as DeployRequest, [spec]);
    const layer = await loadRuntimeLayer(runtime, this.d.layers).catch((err: Error) => {
      throw new ServiceError(ServiceErrorCode.internal, err.message);
    });
    const { tags } = await this.images.ensure([spec], layer, checked, emit);
    return tags.get("sandbox")!;
  }

  /** The app's versions, newest (the one served) first; [] for an app never deployed. */
  versions(app: string): AppVersion[] {
    return this.d.versions.list(app);
  }

  /**
   * Serves an earlier version of the app again (by default the one before the current), without
   * building: its images and its code must still be there. Recorded as a new version. Runs in
   * turn with the app's deploys.
   */
  rollback(app: string, version?: number): Promise<{ version: AppVersion; rollbackTo: number; functions: FunctionView[] }> {
    const prev = this.chains.get(app) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.runRollback(app, version));
    this.chains.set(app, next);
    void next.finally(() => {
      if (this.chains.get(app) === next) this.chains.delete(app);
    }).catch(() => undefined);
    return next;
  }

  private async runRollback(app: string, version?: number): Promise<{ version: AppVersion; rollbackTo: number; functions: FunctionView[] }> {
    const record = this.d.apps.listApps().find((a) => a.name === app);
    const versions = this.d.versions.list(app);
    if (!record || !versions.length) throw notFound(record ? `app ${app} has no recorded versions: deploy it again to start its history` : `no deployed app named ${app}`);
    const current = versions[0]!;
    const target = version === undefined ? versions.find((v) => v.version < current.version) : versions.find((v) => v.version === version);
    if (!target) {
      if (version === undefined) throw new ServiceError(ServiceErrorCode.conflict, `app ${app} has one version only (v${current.version}): there is no earlier one to roll back to`);
      throw notFound(`app ${app} has no version ${version}: its versions are ${versionRanges(versions.map((v) => v.version))} (gantry app history ${app})`);
    }
    if (target.version === current.version && record.state === "deployed") throw new ServiceError(ServiceErrorCode.conflict, `app ${app} serves v${target.version} already`);

    const missing: string[] = [];
    for (const tag of new Set(target.functions.map((f) => f.image))) if (!(await this.d.runtime.imageExists(tag))) missing.push(tag);
    if (missing.length) {
      throw new ServiceError(
        ServiceErrorCode.conflict,
        `cannot roll ${app} back to v${target.version} without building: its image${missing.length === 1 ? "" : "s"} ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} gone from Docker; deploy that version's code again instead`,
      );
    }
    const bundleDir = join(this.d.appsDir, app, target.bundleHash);
    if (!(await stat(bundleDir).then((s) => s.isDirectory(), () => false))) {
      throw new ServiceError(ServiceErrorCode.conflict, `cannot roll ${app} back to v${target.version}: its code (${bundleDir}) is gone; deploy that version's code again instead`);
    }
    const specs = target.functions.map((f) => f.spec);
    const offline = this.d.cluster ? specs.find((s) => s.network === "none") : undefined;
    if (offline) throw invalid(`cannot roll ${app} back to v${target.version}: function ${offline.name} asks for network "none", which a Swarm task cannot have`);
    this.checkSecrets(app, specs);
    await this.d.volumes?.prepare(app, specs);
    for (const s of specs) if (s.gpu) await this.d.gpus.check(s.name, s.gpu);

    const deployedAt = this.now();
    const records: FunctionRecord[] = target.functions.map((f) => ({ ...f, app, deployedAt }));
    // A rollback is a deliberate deploy: the app is kept for good, as after gantry deploy.
    this.d.apps.saveDeployment({ name: app, state: "deployed", bundleHash: target.bundleHash, source: target.source, deployedAt, expiresAt: null }, records);
    this.d.dispatcher.applyDeployment(app, records.map((r) => deployedFunction(r, this.d.appsDir)));
    this.d.schedules?.apply(app, specs);
    const recorded = this.d.versions.record({ app, deployedAt, bundleHash: target.bundleHash, source: target.source, functions: records, rollbackTo: target.version });
    this.d.log.info("rolled back", { app, to: target.version, from: current.version, version: recorded.version });
    return {
      version: recorded,
      rollbackTo: target.version,
      functions: records.map((r) => functionView(r, this.d.webBase())),
    };
  }

  /** Records a deploy as the app's next version; a failure to record does not fail the deploy, which is served (it is logged). */
  /** Records a version; its number, or null when it could not be recorded (the deploy stands). */
  private recordVersion(v: NewVersion): number | null {
    try {
      return this.d.versions.record(v).version;
    } catch (err) {
      this.d.log.warn("could not record the app's version", { app: v.app, err: (err as Error).message });
      return null;
    }
  }

  private validate(req: DeployRequest): FunctionSpec[] {
    const seen = new Set<string>();
    return req.functions.map((f) => {
      if (seen.has(f.name)) throw invalid(`app ${req.app} defines function ${f.name} twice`);
      seen.add(f.name);
      let spec: FunctionSpec;
      try {
        spec = resolveFunctionSpec(f.name, f.options, req.runtime);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      const problem = spec.schedule ? scheduleProblem(spec.schedule) : null;
      if (problem) throw invalid(`function ${f.name}: ${problem}`);
      return spec;
    });
  }

  private checkSecrets(app: string, specs: FunctionSpec[]): void {
    for (const s of specs) {
      const missing = (s.secrets ?? []).find((name) => !this.d.secrets?.exists(name));
      if (missing) {
        throw invalid(`function ${app}.${s.name} uses secret ${missing}, which does not exist: create it with gantry secret create ${missing} KEY=VALUE (or --from-dotenv FILE), then deploy again`);
      }
    }
  }

  /** The files the images copy: each sent, and each matching the hash it is named by. */
  private checkedAssets(req: DeployRequest, specs: FunctionSpec[]): Record<string, Asset> {
    const assets = req.assets ?? {};
    for (const s of specs) {
      for (const { hash, what, file } of assetRefs(s)) {
        const asset = assets[hash];
        if (!asset) throw invalid(`function ${s.name}: the files for ${what} were not sent with the deploy`);
        if (assetHash(asset) !== hash) throw invalid(`function ${s.name}: the files sent for ${what} do not match their hash`);
        const names = Object.keys(asset);
        if (file !== undefined && (names.length !== 1 || names[0] !== file)) throw invalid(`function ${s.name}: ${what} must be sent as the one file ${file}`);
      }
    }
    return assets;
  }

  /**
   * Writes the app's files once per content hash; a folder that exists is complete (renamed into
   * place). The paths are checked as a set first; a write that fails anyway leaves no temp folder.
   */
  private async storeBundle(dir: string, files: Record<string, string>): Promise<void> {
    if (await stat(dir).then(() => true, () => false)) return;
    const problem = bundlePathProblem(Object.keys(files));
    if (problem) throw invalid(`the app's files: ${problem}`);
    const tmp = `${dir}.${process.pid}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    try {
      await writeBundleFiles(tmp, files);
      await chmod(tmp, 0o755);
      await rename(tmp, dir);
    } finally {
      await rm(tmp, { recursive: true, force: true }); // gone already once renamed
    }
  }
}

/** Writes each file under `root` (made as needed), refusing a path that would leave it. */
async function writeBundleFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const file = join(root, path);
    if (!file.startsWith(root + sep)) throw invalid(`the app file path ${JSON.stringify(path)} leaves the app's folder`);
    await mkdir(dirname(file), { recursive: true, mode: 0o755 });
    await writeFile(file, content, { mode: 0o644 });
  }
}

/** The assets one function's image names: local files, folders, requirements, wheels, a Dockerfile's context. */
function assetRefs(s: FunctionSpec): Array<{ hash: string; what: string; file?: string }> {
  const refs: Array<{ hash: string; what: string; file?: string }> = [];
  if (s.image.base.kind === "dockerfile") refs.push({ hash: s.image.base.context, what: `the context of the Dockerfile ${s.image.base.path ?? ""}`.trimEnd() });
  for (const step of s.image.steps) {
    if (step.kind === "dir") refs.push({ hash: step.hash, what: `the folder for ${step.remote}` });
    if (step.kind === "file") refs.push({ hash: step.hash, what: `the file for ${step.remote}`, file: step.remote.slice(step.remote.lastIndexOf("/") + 1) });
    if (step.kind === "pip" && step.requirements) refs.push({ hash: step.requirements, what: "the requirements file", file: "requirements.txt" });
    if (step.kind === "pip" && step.options?.findLinksHash) refs.push({ hash: step.options.findLinksHash, what: "the find_links folder" });
  }
  return refs;
}
