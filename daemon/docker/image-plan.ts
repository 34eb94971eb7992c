/**
 * Turns an image spec into a generated Dockerfile, its build context and a content-hash tag. Pure:
 * the runtime layer's files, the base image's id and the folders' contents are passed in, so an
 * unchanged spec always yields the same tag and an unchanged redeploy builds nothing.
 *
 * Layer order, so Docker's cache rebuilds only what follows a change: the base, the installer and
 * the host's index settings (only when a step installs packages), the user's build steps in order,
 * gantry's runtime layer (the agent), then files added without copy (Modal's copy=False).
 */
import { createHash } from "node:crypto";
import type { Asset, ImageSpec, ImageStep, Runtime } from "../../protocol/function-spec.js";
import { describeStep, isLateAdd } from "../../protocol/image-spec.js";
import { assertExhaustive } from "../core/assert.js";

export const CODE_DIR_IN_CONTAINER = "/opt/gantry/app";
/** The node app bundle's file name in the code folder. */
export const APP_MODULE_NAME = "app.mjs";
/** npmInstall() packages land here, so the app module (in /opt/gantry/app) resolves them. */
export const NPM_DEPS_DIR = "/opt/gantry";
export const DEFAULT_NODE_BASE = "gantry/base-node:2";
export const DEFAULT_PYTHON_BASE = "gantry/base-python:2";
/** Folders of add_local_dir() sit here in the build context, by hash. */
const ASSETS_IN_CONTEXT = "assets";
/** The installer and the host's CA file: gantry-build/ in the context, /opt/gantry/build in the image. */
const BUILD_IN_CONTEXT = "gantry-build";
export const BUILD_DIR = "/opt/gantry/build";
const INSTALLER = `${BUILD_DIR}/install`;

/**
 * Index settings the installer reads, declared as build arguments in every image that installs
 * packages (always the same names, so the tag does not depend on which the host sets).
 */
export const INDEX_SETTING_ARGS = [
  "PIP_INDEX_URL",
  "PIP_EXTRA_INDEX_URL",
  "PIP_TRUSTED_HOST",
  "PIP_DEFAULT_TIMEOUT",
  "PIP_RETRIES",
  "PIP_PROXY",
  "NPM_CONFIG_REGISTRY",
  "NPM_CONFIG_PROXY",
  "NPM_CONFIG_HTTPS_PROXY",
  "NPM_CONFIG_NOPROXY",
  "NPM_CONFIG_STRICT_SSL",
] as const;

/** gantry's layer for one language: its Dockerfile (ARG BASE_IMAGE first) and the files it copies. */
export interface RuntimeLayer {
  runtime: Runtime;
  dockerfile: string;
  files: Record<string, Buffer>;
  /** runtime-images/build/install.sh: runs pip, uv and npm with the host's index settings. */
  installer?: Buffer;
}

/** The host's package-index settings for builds (daemon/host/index-settings.ts): never part of the tag. */
export interface BuildSettings {
  /** Build arguments: INDEX_SETTING_ARGS and Docker's predefined proxy arguments. */
  args: Record<string, string>;
  /** The CA bundles pip (ca.pem) and npm (npm-ca.pem) trust, copied into gantry-build/. */
  files: Record<string, Buffer>;
  /** Host settings left out of builds, and why. */
  notes: string[];
}

export interface ImagePlanInput {
  spec: ImageSpec;
  layer: RuntimeLayer;
  /** Base reference and, when it exists locally, its image id (part of the hash). */
  base: { ref: string; id: string | null };
  /** The files that steps copy, by hash (already checked against their hash). */
  assets?: Record<string, Asset>;
  settings?: BuildSettings;
}

export interface PlannedImage {
  tag: string;
  dockerfile: string;
  files: Record<string, Buffer>;
  /** File modes other than 0o644, by context path. */
  modes: Record<string, number>;
  buildArgs: Record<string, string>;
  /** What each Dockerfile instruction is for, in order (Docker's "Step N/M" is entry N-1). */
  stepLabels: string[];
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** A double-quoted Dockerfile word: backslash, quote and $ escaped, so the value stays literal. */
const dockerfileQuote = (s: string) => `"${s.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
const json = (s: string) => JSON.stringify(s);

/** One Dockerfile instruction and what it is for. */
interface Line {
  text: string;
  label: string;
}

function pipFlags(step: Extract<ImageStep, { kind: "pip" }>): string[] {
  const o = step.options ?? {};
  const uv = step.installer === "uv";
  const flags: string[] = [];
  if (o.indexUrl) flags.push("--index-url", quote(o.indexUrl));
  for (const u of o.extraIndexUrls ?? []) flags.push("--extra-index-url", quote(u));
  if (o.findLinks) flags.push("--find-links", quote(o.findLinks));
  if (o.findLinksHash) flags.push("--find-links", `${BUILD_DIR}/wheels/${o.findLinksHash}`);
  if (o.pre) flags.push(uv ? "--prerelease=allow" : "--pre");
  if (step.requirements) flags.push("-r", `${BUILD_DIR}/requirements/${step.requirements}/requirements.txt`);
  if (o.extraOptions) flags.push(o.extraOptions);
  return flags;
}

function renderStep(step: ImageStep, label: string, runtime: Runtime): Line[] {
  const one = (text: string): Line[] => [{ text, label }];
  switch (step.kind) {
    case "apt":
      return one(
        `RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ` +
          `${step.packages.map(quote).join(" ")} && rm -rf /var/lib/apt/lists/*`,
      );
    case "npm":
      return one(`RUN ${INSTALLER} npm ${NPM_DEPS_DIR} ${step.packages.map(quote).join(" ")}`);
    case "pip": {
      const lines: Line[] = [];
      if (step.requirements) lines.push({ text: `COPY ["${ASSETS_IN_CONTEXT}/${step.requirements}/", ${json(`${BUILD_DIR}/requirements/${step.requirements}/`)}]`, label });
      const wheels = step.options?.findLinksHash;
      if (wheels) lines.push({ text: `COPY ["${ASSETS_IN_CONTEXT}/${wheels}/", ${json(`${BUILD_DIR}/wheels/${wheels}/`)}]`, label });
      const args = [...pipFlags(step), ...(step.packages.length ? ["--", ...step.packages.map(quote)] : [])];
      lines.push({ text: `RUN ${INSTALLER} ${step.installer ?? "pip"} ${args.join(" ")}`, label });
      return lines;
    }
    case "run":
      return step.commands.map((c) => ({ text: `RUN ${c}`, label }));
    case "env":
      return Object.entries(step.vars).map(([k, v]) => ({ text: `ENV ${k}=${dockerfileQuote(v)}`, label }));
    case "workdir":
      return one(`WORKDIR ${json(step.path)}`);
    case "dir":
      return one(`COPY ["${ASSETS_IN_CONTEXT}/${step.hash}/", ${json(step.remote)}]`);
    case "file": {
      // The asset holds one file; COPY of a folder's contents onto the remote file's folder keeps its name.
      return one(`COPY ["${ASSETS_IN_CONTEXT}/${step.hash}/", ${json(step.remote.replace(/[^/]*$/, "") || "/")}]`);
    }
    default:
      return assertExhaustive(step, `image step for ${runtime}`);
  }
}

/** The base image a spec builds on: gantry's base for its language, a registry reference, or a built Dockerfile's tag. */
export function baseRef(spec: ImageSpec, bases: { node: string; python: string } = { node: DEFAULT_NODE_BASE, python: DEFAULT_PYTHON_BASE }): string {
  switch (spec.base.kind) {
    case "registry":
      return spec.base.ref;
    case "dockerfile":
      return dockerfileBaseTag(spec.base.dockerfile, spec.base.context);
    default:
      return bases[spec.base.kind];
  }
}

/** The tag of an Image.from_dockerfile() base: its text and its context's hash. */
export function dockerfileBaseTag(dockerfile: string, context: string): string {
  return `gantry/dockerfile:${createHash("sha256").update(dockerfile).update("\0").update(context).digest("hex").slice(0, 20)}`;
}

/** A requested Python version, checked when the image is built (gantry's base has one Python). */
function versionCheck(spec: ImageSpec, baseRefName: string): Line[] {
  if (spec.base.kind !== "python" || !spec.base.version) return [];
  const v = spec.base.version;
  const why =
    `"the base image ${baseRefName} has Python " + v + " only; python_version=${v} asks for another: ` +
    `use python_version=\\"" + v + "\\" (or none), or Image.from_registry(\\"python:${v}-slim\\") where a registry answers"`;
  return [
    {
      text: `RUN python3 -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "${v}" else ${why.replace(/'/g, "")})'`,
      label: `debian_slim(python_version="${v}")`,
    },
  ];
}

/** The runtime layer's Dockerfile split at its FROM line: what comes before, and gantry's own instructions after. */
function splitLayer(dockerfile: string, ref: string): { head: Line[]; tail: Line[] } {
  const lines = dockerfile
    .replace(/^ARG BASE_IMAGE=.*$/m, `ARG BASE_IMAGE=${ref}`)
    .split("\n")
    .filter((l) => l.trim() && !l.trimStart().startsWith("#"));
  const from = lines.findIndex((l) => /^FROM\s/i.test(l));
  const line = (text: string): Line => ({ text, label: /^FROM\s/i.test(text) ? `the base image ${ref}` : "gantry's runtime layer" });
  return { head: lines.slice(0, from + 1).map(line), tail: lines.slice(from + 1).map(line) };
}

const installs = (s: ImageStep) => s.kind === "pip" || s.kind === "npm";
/** Whether an image installs packages (pip, uv, npm): its build gets the installer and the host's index settings. */
export const installsPackages = (spec: ImageSpec): boolean => spec.steps.some(installs);

function assetFiles(spec: ImageSpec, assets: Record<string, Asset> | undefined, files: Record<string, Buffer>, modes: Record<string, number>): void {
  const hashes = new Set<string>();
  for (const step of spec.steps) {
    if (step.kind === "dir" || step.kind === "file") hashes.add(step.hash);
    if (step.kind === "pip" && step.requirements) hashes.add(step.requirements);
    if (step.kind === "pip" && step.options?.findLinksHash) hashes.add(step.options.findLinksHash);
  }
  for (const hash of hashes) {
    const asset = assets?.[hash];
    if (!asset) throw new Error(`the files for an image step (hash ${hash.slice(0, 12)}…) were not sent with the deploy`);
    for (const [path, f] of Object.entries(asset)) {
      const name = `${ASSETS_IN_CONTEXT}/${hash}/${path}`;
      files[name] = Buffer.from(f.data, "base64");
      if (f.mode !== 0o644) modes[name] = f.mode;
    }
  }
}

export function planImage(input: ImagePlanInput): PlannedImage {
  const { spec, layer } = input;
  const { head, tail } = splitLayer(layer.dockerfile, input.base.ref);
  const lines: Line[] = [...head];
  const files: Record<string, Buffer> = { ...layer.files };
  const modes: Record<string, number> = {};
  const needsInstaller = installsPackages(spec);
  if (needsInstaller) {
    if (!layer.installer) throw new Error("gantry's image installer (runtime-images/build/install.sh) is missing: run npm run build");
    lines.push(...INDEX_SETTING_ARGS.map((a) => ({ text: `ARG ${a}`, label: "the host's index settings" })));
    files[`${BUILD_IN_CONTEXT}/install`] = layer.installer;
    modes[`${BUILD_IN_CONTEXT}/install`] = 0o755;
    for (const [name, data] of Object.entries(input.settings?.files ?? {})) files[`${BUILD_IN_CONTEXT}/${name}`] = data;
    lines.push({ text: `COPY ["${BUILD_IN_CONTEXT}/", "${BUILD_DIR}/"]`, label: "gantry's installer" });
  }
  const early = spec.steps.filter((s) => !isLateAdd(s));
  const late = spec.steps.filter(isLateAdd);
  if (spec.steps.length || (spec.base.kind === "python" && spec.base.version)) lines.push({ text: "USER root", label: "gantry's runtime layer" });
  lines.push(...versionCheck(spec, input.base.ref));
  let usesUv = false;
  spec.steps.forEach((step, i) => {
    if (isLateAdd(step)) return;
    const label = `image step ${i + 1}, ${describeStep(step, layer.runtime)}`;
    if (step.kind === "pip" && step.installer === "uv" && !usesUv) {
      usesUv = true;
      lines.push({ text: `RUN ${INSTALLER} uv-setup`, label: `${label} (installing uv)` });
    }
    lines.push(...renderStep(step, label, layer.runtime));
  });
  lines.push(...tail);
  // The user's environment and working folder win over the runtime layer's (ENV and WORKDIR build nothing).
  spec.steps.forEach((step, i) => {
    if (step.kind === "env") lines.push(...renderStep(step, `image step ${i + 1}, ${describeStep(step, layer.runtime)}`, layer.runtime));
  });
  const workdir = early.filter((s) => s.kind === "workdir").at(-1);
  if (workdir) lines.push({ text: `WORKDIR ${json(workdir.path)}`, label: describeStep(workdir, layer.runtime) });
  for (const step of late) lines.push(...renderStep(step, `image step ${spec.steps.indexOf(step) + 1}, ${describeStep(step, layer.runtime)}`, layer.runtime));
  assetFiles(spec, input.assets, files, modes);

  const dockerfile = [...lines.map((l) => l.text), ""].join("\n");
  const hash = createHash("sha256").update(dockerfile).update("\0");
  for (const name of Object.keys(layer.files).sort()) hash.update(name).update("\0").update(layer.files[name]!).update("\0");
  if (needsInstaller) hash.update(layer.installer!).update("\0");
  hash.update(input.base.id ?? input.base.ref);
  return {
    tag: `gantry/fn-${layer.runtime}:${hash.digest("hex").slice(0, 20)}`,
    dockerfile,
    files,
    modes,
    buildArgs: needsInstaller ? { ...(input.settings?.args ?? {}) } : proxyArgs(input.settings?.args ?? {}),
    stepLabels: lines.map((l) => l.label),
  };
}

/** Docker's predefined proxy arguments: apt and run_commands use them too (and Docker keeps them out of history). */
export const PROXY_ARGS = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "FTP_PROXY", "ftp_proxy", "ALL_PROXY", "all_proxy"];
function proxyArgs(args: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(args).filter(([k]) => PROXY_ARGS.includes(k)));
}

export { assetHash } from "../../protocol/image-spec.js";
