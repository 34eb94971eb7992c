/**
 * Turns an image spec into a generated Dockerfile and a content-hash tag. Pure: the base image's
 * id and the agent's bytes are passed in, so an unchanged spec always yields the same tag and an
 * unchanged redeploy builds nothing.
 */
import { createHash } from "node:crypto";
import type { ImageSpec, ImageStep } from "../../protocol/function-spec.js";
import { assertExhaustive } from "../core/assert.js";

export const CODE_DIR_IN_CONTAINER = "/opt/gantry/app";
export const APP_MODULE_NAME = "app.mjs";
/** npmInstall() packages land here, so the app module (in /opt/gantry/app) resolves them. */
export const NPM_DEPS_DIR = "/opt/gantry";
export const DEFAULT_NODE_BASE = "gantry/base-node:1";
const RUNTIME_PACKAGE_JSON = Buffer.from('{"private":true}\n');

export interface ImagePlanInput {
  spec: ImageSpec;
  /** The runtime layer's Dockerfile (runtime-images/node/Dockerfile). */
  runtimeDockerfile: string;
  agentBundle: Buffer;
  /** Base reference and, when it exists locally, its image id (part of the hash). */
  base: { ref: string; id: string | null };
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
    case "run":
      return step.commands.map((c) => `RUN ${c}`).join("\n");
    case "env":
      return Object.entries(step.vars)
        .map(([k, v]) => `ENV ${k}=${dockerfileQuote(v)}`)
        .join("\n");
    default:
      return assertExhaustive(step, "image step");
  }
}

export function baseRef(spec: ImageSpec, nodeBase = DEFAULT_NODE_BASE): string {
  return spec.base.kind === "node" ? nodeBase : spec.base.ref;
}

export function planImage(input: ImagePlanInput): { tag: string; dockerfile: string; files: Record<string, Buffer> } {
  const runtime = input.runtimeDockerfile.replace(/^ARG BASE_IMAGE=.*$/m, `ARG BASE_IMAGE=${input.base.ref}`);
  const steps = input.spec.steps.map(renderStep);
  const dockerfile = [runtime.trimEnd(), ...(steps.length ? ["USER root", ...steps] : []), ""].join("\n");
  const hash = createHash("sha256")
    .update(dockerfile)
    .update("\0")
    .update(input.agentBundle)
    .update("\0")
    .update(input.base.id ?? input.base.ref)
    .digest("hex")
    .slice(0, 20);
  // package.json makes /opt/gantry the npm project that npmInstall() packages land in.
  return { tag: `gantry/fn-node:${hash}`, dockerfile, files: { "agent.cjs": input.agentBundle, "package.json": RUNTIME_PACKAGE_JSON } };
}
