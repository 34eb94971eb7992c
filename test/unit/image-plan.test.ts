import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { DEFAULT_NODE_BASE, NPM_DEPS_DIR, baseRef, planImage, type ImagePlanInput } from "../../daemon/docker/image-plan.js";
import type { ImageSpec } from "../../protocol/function-spec.js";

const RUNTIME_DOCKERFILE = readFileSync(new URL("../../runtime-images/node/Dockerfile", import.meta.url), "utf8");
const AGENT = Buffer.from("/* agent bundle */ console.log('agent');");

const spec = (steps: ImageSpec["steps"] = []): ImageSpec => ({ base: { kind: "node" }, steps });

const STEPS: ImageSpec["steps"] = [
  { kind: "apt", packages: ["ffmpeg", "libvips-dev"] },
  { kind: "npm", packages: ["sharp@0.33", "@scope/pkg"] },
  { kind: "run", commands: ["echo one", "mkdir -p /data"] },
  { kind: "env", vars: { MODEL: "small v2", QUOTE: 'say "hi"' } },
];

function input(o: Partial<ImagePlanInput> = {}): ImagePlanInput {
  return {
    spec: spec(STEPS),
    runtimeDockerfile: RUNTIME_DOCKERFILE,
    agentBundle: AGENT,
    base: { ref: "node:20-slim", id: "sha256:aaaa" },
    ...o,
  };
}

describe("planImage tag", () => {
  it("has the form gantry/fn-node:<20 hex>", () => {
    expect(planImage(input()).tag).toMatch(/^gantry\/fn-node:[0-9a-f]{20}$/);
  });

  it("is the same for the same input", () => {
    const a = planImage(input());
    const b = planImage(input({ spec: spec(structuredClone(STEPS)), agentBundle: Buffer.from(AGENT) }));
    expect(b.tag).toBe(a.tag);
    expect(b.dockerfile).toBe(a.dockerfile);
  });

  it("changes when a step changes", () => {
    const base = planImage(input()).tag;
    const changed: ImageSpec["steps"] = [...STEPS.slice(0, 3), { kind: "env", vars: { MODEL: "large" } }];
    expect(planImage(input({ spec: spec(changed) })).tag).not.toBe(base);
    expect(planImage(input({ spec: spec(STEPS.slice(1)) })).tag).not.toBe(base);
    expect(planImage(input({ spec: spec([]) })).tag).not.toBe(base);
  });

  it("changes when the agent's bytes change", () => {
    const base = planImage(input()).tag;
    expect(planImage(input({ agentBundle: Buffer.from(AGENT.toString() + " ") })).tag).not.toBe(base);
  });

  it("changes when the base image id changes, even under the same reference", () => {
    const base = planImage(input()).tag;
    expect(planImage(input({ base: { ref: "node:20-slim", id: "sha256:bbbb" } })).tag).not.toBe(base);
    expect(planImage(input({ base: { ref: "node:20-slim", id: null } })).tag).not.toBe(base);
  });

  it("falls back to the base reference when the image id is unknown", () => {
    const a = planImage(input({ base: { ref: "node:20-slim", id: null } })).tag;
    expect(planImage(input({ base: { ref: "node:20-slim", id: null } })).tag).toBe(a);
    expect(planImage(input({ base: { ref: "node:22-slim", id: null } })).tag).not.toBe(a);
  });
});

describe("planImage Dockerfile", () => {
  it("starts with the runtime layer, BASE_IMAGE replaced by the function's base", () => {
    const { dockerfile } = planImage(input());
    expect(RUNTIME_DOCKERFILE).toContain(`ARG BASE_IMAGE=${DEFAULT_NODE_BASE}`);
    expect(dockerfile).toContain("ARG BASE_IMAGE=node:20-slim\n");
    expect(dockerfile).not.toContain(`ARG BASE_IMAGE=${DEFAULT_NODE_BASE}`);
    const runtimeRest = RUNTIME_DOCKERFILE.trimEnd().split("\n").filter((l) => !l.startsWith("ARG BASE_IMAGE="));
    for (const line of runtimeRest) expect(dockerfile).toContain(line);
    expect(dockerfile.indexOf("ARG BASE_IMAGE=")).toBeLessThan(dockerfile.indexOf("FROM ${BASE_IMAGE}"));
  });

  it("replaces only the ARG line in a minimal runtime layer", () => {
    const { dockerfile } = planImage(
      input({ spec: spec([]), runtimeDockerfile: "# runtime\nARG BASE_IMAGE=old\nFROM ${BASE_IMAGE}\nCMD [\"node\"]\n\n", base: { ref: "my/base:1", id: null } }),
    );
    expect(dockerfile).toBe('# runtime\nARG BASE_IMAGE=my/base:1\nFROM ${BASE_IMAGE}\nCMD ["node"]\n');
  });

  it("appends no steps (and no USER switch) for an image without steps", () => {
    const { dockerfile } = planImage(input({ spec: spec([]) }));
    expect(dockerfile).not.toContain("USER root");
    expect(dockerfile.trimEnd().split("\n").at(-1)).toBe(RUNTIME_DOCKERFILE.trimEnd().split("\n").at(-1));
  });

  it("renders apt, npm, run and env steps, in order, as root after the runtime layer", () => {
    const { dockerfile } = planImage(input());
    const expected = [
      "USER root",
      "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends 'ffmpeg' 'libvips-dev' && rm -rf /var/lib/apt/lists/*",
      `RUN cd ${NPM_DEPS_DIR} && npm install --no-audit --no-fund --omit=dev 'sharp@0.33' '@scope/pkg'`,
      "RUN echo one",
      "RUN mkdir -p /data",
      'ENV MODEL="small v2"',
      'ENV QUOTE="say \\"hi\\""',
    ];
    expect(dockerfile.endsWith(expected.join("\n") + "\n")).toBe(true);
    expect(dockerfile.indexOf("ENTRYPOINT")).toBeLessThan(dockerfile.indexOf("USER root"));
  });

  it("shell-quotes packages, including an embedded single quote", () => {
    const { dockerfile } = planImage(input({ spec: spec([{ kind: "npm", packages: ["it's"] }]) }));
    expect(dockerfile).toContain(`--omit=dev 'it'\\''s'`);
  });

  it("ships the agent bundle as agent.cjs, and the package.json that npmInstall() packages land in", () => {
    const { files } = planImage(input());
    expect(Object.keys(files)).toEqual(["agent.cjs", "package.json"]);
    expect(files["agent.cjs"]?.equals(AGENT)).toBe(true);
    expect(JSON.parse(files["package.json"]!.toString())).toEqual({ private: true });
  });

  it("runs no build step for an image without steps (it builds without a network)", () => {
    expect(planImage(input({ spec: spec([]) })).dockerfile).not.toMatch(/^RUN /m);
  });
});

describe("baseRef", () => {
  it("is the gantry node base for node images", () => {
    expect(baseRef(spec())).toBe(DEFAULT_NODE_BASE);
    expect(DEFAULT_NODE_BASE).toBe("gantry/base-node:1");
    expect(baseRef(spec(), "my/node:2")).toBe("my/node:2");
  });

  it("is the registry reference for registry images", () => {
    expect(baseRef({ base: { kind: "registry", ref: "nvidia/cuda:12.4.1-runtime-ubuntu22.04" }, steps: [] })).toBe(
      "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
    );
  });
});
