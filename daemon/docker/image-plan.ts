/**
 * Turns an image spec into a generated Dockerfile, its build context and a content-hash tag. Pure:
 * the runtime layer's files, the base image's id and the folders' contents are passed in, so an
 * unchanged spec always yields the same tag and an unchanged redeploy builds nothing.
 */
import { createHash } from "node:crypto";
import type { Asset, ImageSpec, ImageStep, Runtime } from "../../protocol/function-spec.js";
import { assertExhaustive } from "../core/assert.js";

export const CODE_DIR_IN_CONTAINER = "/opt/gantry/app";
/** The node app bundle's file name in the code folder. */
export const APP_MODULE_NAME = "app.mjs";
/** npmInstall() packages land here, so the app module (in /opt/gantry/app) resolves them. */
export const NPM_DEPS_DIR = "/opt/gantry";
export const DEFAULT_NODE_BASE = "gantry/base-node:1";
export const DEFAULT_PYTHON_BASE = "gantry/base-python:1";
/** Folders of add_local_dir() sit here in the build context, by hash. */
const ASSETS_IN_CONTEXT = "assets";

/** gantry's layer for one language: its Dockerfile (ARG BASE_IMAGE first) and the files it copies. */
export interface RuntimeLayer {
  runtime: Runtime;
  dockerfile: string;
  files: Record<string, Buffer>;
}

export interface ImagePlanInput {
  spec: ImageSpec;
  layer: RuntimeLayer;
  /** Base reference and, when it exists locally, its image id (part of the hash). */
  base: { ref: string; id: string | null };
  /** The folders that `dir` steps copy, by hash (already checked against their hash). */
  assets?: Record<string, Asset>;
}

export interface PlannedImage {
  tag: string;
  dockerfile: string;
  files: Record<string, Buffer>;
  /** File modes other than 0o644, by context path. */
  modes: Record<string, number>;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** A double-quoted Dockerfile word: backslash, quote and $ escaped, so the value stays literal. */
const dockerfileQuote = (s: string) => `"${s.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;

function renderStep(step: ImageStep): string {
  switch (step.kind) {
    case "apt":
      return (
        `RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ` +
        `${step.packages.map(quote).join(" ")} && rm -rf /var/lib/apt/lists/*`
      );
    case "npm":
      return `RUN cd ${NPM_DEPS_DIR} && npm install --no-audit --no-fund --omit=dev ${step.packages.map(quote).join(" ")}`;
    case "pip":
      // Debian's Python is "externally managed" (PEP 668); in an image of its own that is fine to override.
      return `RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir ${step.packages.map(quote).join(" ")}`;
    case "run":
      return step.commands.map((c) => `RUN ${c}`).join("\n");
    case "env":
      return Object.entries(step.vars)
        .map(([k, v]) => `ENV ${k}=${dockerfileQuote(v)}`)
        .join("\n");
    case "dir":
      return `COPY ["${ASSETS_IN_CONTEXT}/${step.hash}/", ${JSON.stringify(step.remote)}]`;
    default:
      return assertExhaustive(step, "image step");
  }
}

/** The base image a spec builds on: gantry's base for its language, or a registry reference. */
export function baseRef(spec: ImageSpec, bases: { node: string; python: string } = { node: DEFAULT_NODE_BASE, python: DEFAULT_PYTHON_BASE }): string {
  return spec.base.kind === "registry" ? spec.base.ref : bases[spec.base.kind];
}

/** A requested Python version, checked when the image is built (gantry's base has one Python). */
function versionCheck(spec: ImageSpec): string[] {
  if (spec.base.kind !== "python" || !spec.base.version) return [];
  const v = spec.base.version;
  return [
    `RUN python3 -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "${v}" else "this base image has Python " + v + ", not ${v} as python_version asks")'`,
  ];
}

export function planImage(input: ImagePlanInput): PlannedImage {
  const runtime = input.layer.dockerfile.replace(/^ARG BASE_IMAGE=.*$/m, `ARG BASE_IMAGE=${input.base.ref}`);
  const steps = [...versionCheck(input.spec), ...input.spec.steps.map(renderStep)];
  const dockerfile = [runtime.trimEnd(), ...(steps.length ? ["USER root", ...steps] : []), ""].join("\n");
  const files: Record<string, Buffer> = { ...input.layer.files };
  const modes: Record<string, number> = {};
  for (const step of input.spec.steps) {
    if (step.kind !== "dir") continue;
    const asset = input.assets?.[step.hash];
    if (!asset) throw new Error(`the folder for ${step.remote} (hash ${step.hash.slice(0, 12)}…) was not sent with the deploy`);
    for (const [path, f] of Object.entries(asset)) {
      const name = `${ASSETS_IN_CONTEXT}/${step.hash}/${path}`;
      files[name] = Buffer.from(f.data, "base64");
      if (f.mode !== 0o644) modes[name] = f.mode;
    }
  }
  const hash = createHash("sha256").update(dockerfile).update("\0");
  for (const name of Object.keys(input.layer.files).sort()) hash.update(name).update("\0").update(input.layer.files[name]!).update("\0");
  hash.update(input.base.id ?? input.base.ref);
  return { tag: `gantry/fn-${input.layer.runtime}:${hash.digest("hex").slice(0, 20)}`, dockerfile, files, modes };
}

/** The hash a folder is sent under: of each file's path, mode and content, in path order. */
export function assetHash(asset: Asset): string {
  const h = createHash("sha256");
  for (const path of Object.keys(asset).sort()) {
    const data = Buffer.from(asset[path]!.data, "base64");
    h.update(path).update("\0").update(String(asset[path]!.mode)).update("\0").update(String(data.length)).update("\0").update(data);
  }
  return h.digest("hex");
}
