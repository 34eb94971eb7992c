/**
 * Builds the images of one deploy: one per distinct image spec, each tagged by its content (an
 * unchanged image builds nothing). An Image.from_dockerfile() base is built first, under a tag of
 * its own. Builds get the host's index settings (daemon/host/index-settings.ts); a failed or
 * overrunning build fails the deploy naming the image step and the installer's last lines, and
 * nothing of the app's earlier deployment changes.
 */
import type { DeployEvent } from "../../protocol/api.js";
import type { Asset, FunctionSpec, ImageSpec } from "../../protocol/function-spec.js";
import { baseRef, installsPackages, planImage, type BuildSettings, type RuntimeLayer } from "../docker/image-plan.js";
import { BuildFailedError, type ContainerRuntime, type ImagePlan } from "../docker/types.js";
import { ServiceError, ServiceErrorCode } from "./errors.js";

export const DEFAULT_BUILD_TIMEOUT_MS = 30 * 60_000;
/** How many of the build's last lines a failure quotes. */
const QUOTED_LINES = 15;

export interface ImageBuilderDeps {
  runtime: ContainerRuntime;
  baseImages: { node: string; python: string };
  settings: () => BuildSettings;
  buildTimeoutMs?: number;
  /** Told of each build that ran, how it ended and how long it took (metrics). */
  onBuild?: (b: { ok: boolean; seconds: number }) => void;
}

export interface BuiltImages {
  /** Each function's image tag, by function name. */
  tags: Map<string, string>;
  built: string[];
  cached: string[];
}

type Emit = (e: DeployEvent) => void;

/** One deploy's build: what every image of it shares. */
interface Deploy {
  layer: RuntimeLayer;
  assets: Record<string, Asset>;
  emit: Emit;
  out: BuiltImages;
  /** The host's index settings, read once, and only when something is built (never for cached images). */
  settings(): BuildSettings;
  /** Says, once, which host settings builds cannot use (when an image installs packages). */
  note(): void;
}

export class ImageBuilder {
  constructor(private readonly d: ImageBuilderDeps) {}

  async ensure(specs: FunctionSpec[], layer: RuntimeLayer, assets: Record<string, Asset>, emit: Emit): Promise<BuiltImages> {
    const byImage = new Map<string, { image: ImageSpec; functions: string[] }>();
    for (const s of specs) {
      const key = JSON.stringify(s.image);
      const entry = byImage.get(key) ?? { image: s.image, functions: [] as string[] };
      entry.functions.push(s.name);
      byImage.set(key, entry);
    }
    let settings: BuildSettings | null = null;
    let noted = false;
    const deploy: Deploy = {
      layer,
      assets,
      emit,
      out: { tags: new Map(), built: [], cached: [] },
      settings: () => (settings ??= this.d.settings()),
      note: () => {
        if (noted) return;
        noted = true;
        for (const line of deploy.settings().notes) emit({ type: "log", line: `index settings: ${line}` });
      },
    };
    for (const { image, functions } of byImage.values()) {
      const tag = await this.ensureOne(image, functions, deploy);
      for (const f of functions) deploy.out.tags.set(f, tag);
    }
    return deploy.out;
  }

  private async ensureOne(image: ImageSpec, functions: string[], deploy: Deploy): Promise<string> {
    const { emit, out } = deploy;
    const ref = baseRef(image, this.d.baseImages);
    if (image.base.kind === "dockerfile") await this.ensureDockerfileBase(image.base, ref, functions, deploy);
    const baseId = await this.d.runtime.imageId(ref);
    if (!baseId && (image.base.kind === "node" || image.base.kind === "python")) {
      throw new ServiceError(ServiceErrorCode.baseImageMissing, `the base image ${ref} does not exist: run scripts/setup.sh (or scripts/lib/ensure-base-images.sh) to make it`);
    }
    // The host's settings are no part of the tag: an unchanged image is found without reading them.
    const input = { spec: image, layer: deploy.layer, base: { ref, id: baseId }, assets: deploy.assets };
    const tag = planImage(input).tag;
    if (await this.d.runtime.imageExists(tag)) {
      out.cached.push(tag);
      emit({ type: "image", image: tag, status: "cached", functions });
      return tag;
    }
    const planned = planImage({ ...input, settings: deploy.settings() });
    emit({ type: "image", image: tag, status: "building", functions });
    if (installsPackages(image)) deploy.note();
    try {
      await this.build({ ...planned, timeoutMs: this.d.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS }, emit);
    } catch (err) {
      const pulled = baseId !== null || (await this.d.runtime.imageExists(ref));
      const why = pulled ? "" : `the base image ${ref} is not on this machine and could not be pulled; `;
      throw buildFailure(err, `the image for ${functions.join(", ")}`, planned.stepLabels, why);
    }
    out.built.push(tag);
    emit({ type: "image", image: tag, status: "built", functions });
    return tag;
  }

  /** Image.from_dockerfile(): the user's Dockerfile with the files its COPY lines name, built as a base. */
  private async ensureDockerfileBase(base: Extract<ImageSpec["base"], { kind: "dockerfile" }>, tag: string, functions: string[], deploy: Deploy): Promise<void> {
    if (await this.d.runtime.imageExists(tag)) return;
    const files: Record<string, Buffer> = {};
    const modes: Record<string, number> = {};
    for (const [path, f] of Object.entries(deploy.assets[base.context] ?? {})) {
      files[path] = Buffer.from(f.data, "base64");
      if (f.mode !== 0o644) modes[path] = f.mode;
    }
    const plan: ImagePlan = { tag, dockerfile: base.dockerfile, files, modes, buildArgs: deploy.settings().args, timeoutMs: this.d.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS };
    deploy.emit({ type: "image", image: tag, status: "building", functions });
    try {
      await this.build(plan, deploy.emit);
    } catch (err) {
      throw buildFailure(err, `the Dockerfile ${base.path ?? ""}`.trimEnd(), null, "");
    }
    deploy.out.built.push(tag);
    deploy.emit({ type: "image", image: tag, status: "built", functions });
  }

  private async build(plan: ImagePlan, emit: Emit): Promise<void> {
    const startedMs = Date.now();
    const told = (ok: boolean) => this.d.onBuild?.({ ok, seconds: (Date.now() - startedMs) / 1000 });
    try {
      await this.d.runtime.buildImage(plan, (p) => emit({ type: "build", image: plan.tag, ...p }));
    } catch (err) {
      told(false);
      throw err;
    }
    told(true);
  }
}

/**
 * A failed build as the deploy reports it: which image, which step (by the SDK's name for it), the
 * installer's last lines. An overrun says it was stopped and how to allow more time.
 */
export function buildFailure(err: unknown, what: string, labels: string[] | null, prefix: string): ServiceError {
  if (!(err instanceof BuildFailedError)) return new ServiceError(ServiceErrorCode.imageBuildFailed, `${prefix}${(err as Error).message}`);
  const label = labels && err.step > 0 ? labels[err.step - 1] : undefined;
  const at = label ? `${label}` : err.step > 0 ? `Dockerfile step ${err.step} of ${err.total}` : "its start";
  const tail = err.lastLines.slice(-QUOTED_LINES).map((l) => `  | ${l}`).join("\n");
  const head = err.timedOut
    ? `building ${what} was stopped at ${at}: ${err.message.replace(/^the build of \S+ /, "it ")} (gantry daemon start --build-timeout SECONDS allows more)`
    : `building ${what} failed at ${at}: ${err.message.replace(/^building image \S+ failed: /, "").replace(/^The command '.*' returned a non-zero code: (\d+)$/s, "the step exited with code $1")}`;
  return new ServiceError(err.timedOut ? ServiceErrorCode.imageBuildTimeout : ServiceErrorCode.imageBuildFailed, `${prefix}${head}${tail ? `\nlast lines of the build:\n${tail}` : ""}`);
}
