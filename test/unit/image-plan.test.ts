import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import {
  DEFAULT_NODE_BASE,
  DEFAULT_PYTHON_BASE,
  NPM_DEPS_DIR,
  assetHash,
  baseRef,
  planImage,
  type ImagePlanInput,
  type RuntimeLayer,
} from "../../daemon/docker/image-plan.js";
import { loadRuntimeLayer } from "../../daemon/docker/runtime-layers.js";
import type { Asset, ImageSpec } from "../../protocol/function-spec.js";

const RUNTIME_DOCKERFILE = readFileSync(new URL("../../runtime-images/node/Dockerfile", import.meta.url), "utf8");
const AGENT = Buffer.from("/* agent bundle */ console.log('agent');");

const spec = (steps: ImageSpec["steps"] = []): ImageSpec => ({ base: { kind: "node" }, steps });

const STEPS: ImageSpec["steps"] = [
  { kind: "apt", packages: ["ffmpeg", "libvips-dev"] },
  { kind: "npm", packages: ["sharp@0.33", "@scope/pkg"] },
  { kind: "run", commands: ["echo one", "mkdir -p /data"] },
  { kind: "env", vars: { MODEL: "small v2", QUOTE: 'say "hi"' } },
];

const layer = (o: Partial<RuntimeLayer> = {}): RuntimeLayer => ({ runtime: "node", dockerfile: RUNTIME_DOCKERFILE, files: { "agent.cjs": AGENT }, ...o });

function input(o: Partial<ImagePlanInput> = {}): ImagePlanInput {
  return {
    spec: spec(STEPS),
    layer: layer(),
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
    const b = planImage(input({ spec: spec(structuredClone(STEPS)), layer: layer({ files: { "agent.cjs": Buffer.from(AGENT) } }) }));
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
    expect(planImage(input({ layer: layer({ files: { "agent.cjs": Buffer.from(AGENT.toString() + " ") } }) })).tag).not.toBe(base);
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
      input({ spec: spec([]), layer: layer({ dockerfile: "# runtime\nARG BASE_IMAGE=old\nFROM ${BASE_IMAGE}\nCMD [\"node\"]\n\n" }), base: { ref: "my/base:1", id: null } }),
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

  it("ships the runtime layer's files in the build context", () => {
    const { files } = planImage(input());
    expect(Object.keys(files)).toEqual(["agent.cjs"]);
    expect(files["agent.cjs"]?.equals(AGENT)).toBe(true);
  });

  it("runs no build step for an image without steps (it builds without a network)", () => {
    expect(planImage(input({ spec: spec([]) })).dockerfile).not.toMatch(/^RUN /m);
  });
});

describe("python images", () => {
  const pyLayer = layer({ runtime: "python", dockerfile: "ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE}\n", files: { "agent.py": Buffer.from("# agent") } });
  const py = (steps: ImageSpec["steps"] = [], version?: string): ImageSpec => ({ base: { kind: "python", ...(version ? { version } : {}) }, steps });
  const folder: Asset = { "run.sh": { data: Buffer.from("#!/bin/sh\n").toString("base64"), mode: 0o755 }, "data/a.txt": { data: "aGk=", mode: 0o644 } };
  const hash = assetHash(folder);

  it("are tagged gantry/fn-python and install pip packages past PEP 668", () => {
    const p = planImage(input({ layer: pyLayer, spec: py([{ kind: "pip", packages: ["numpy==2.1", "it's"] }]), base: { ref: DEFAULT_PYTHON_BASE, id: null } }));
    expect(p.tag).toMatch(/^gantry\/fn-python:[0-9a-f]{20}$/);
    expect(p.dockerfile).toContain(`RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir 'numpy==2.1' 'it'\\''s'`);
  });

  it("copy a local folder from the build context, modes kept, under its hash", () => {
    const p = planImage(input({ layer: pyLayer, spec: py([{ kind: "dir", remote: "/opt/my data", hash }]), assets: { [hash]: folder } }));
    expect(p.dockerfile).toContain(`COPY ["assets/${hash}/", "/opt/my data"]`);
    expect(p.files[`assets/${hash}/run.sh`]!.toString()).toBe("#!/bin/sh\n");
    expect(p.files[`assets/${hash}/data/a.txt`]!.toString()).toBe("hi");
    expect(p.modes).toEqual({ [`assets/${hash}/run.sh`]: 0o755 });
    expect(() => planImage(input({ layer: pyLayer, spec: py([{ kind: "dir", remote: "/d", hash }]) }))).toThrow(/the folder for \/d .* was not sent/);
  });

  it("check a requested Python version when the image is built", () => {
    expect(planImage(input({ layer: pyLayer, spec: py([], "3.12") })).dockerfile).toMatch(/^RUN python3 -c .*"3\.12".*not 3\.12 as python_version asks/m);
    expect(planImage(input({ layer: pyLayer, spec: py([]) })).dockerfile).not.toMatch(/^RUN /m);
  });

  it("name folders by a hash of each file's path, mode and content", () => {
    expect(assetHash(structuredClone(folder))).toBe(hash);
    expect(assetHash({ ...folder, "run.sh": { ...folder["run.sh"]!, mode: 0o644 } })).not.toBe(hash);
    expect(assetHash({ ...folder, "data/b.txt": folder["data/a.txt"]! })).not.toBe(hash);
    expect(assetHash({ ...folder, "data/a.txt": { data: "aGo=", mode: 0o644 } })).not.toBe(hash);
  });
});

describe("runtime layers, as the package ships them", () => {
  const paths = { runtimeImagesDir: new URL("../../runtime-images", import.meta.url).pathname, pythonPackageDir: new URL("../../python/gantry", import.meta.url).pathname };

  it("node: the agent bundle, and the package.json that npmInstall() packages land in", async () => {
    const l = await loadRuntimeLayer("node", paths);
    expect(Object.keys(l.files).sort()).toEqual(["agent.cjs", "package.json"]);
    expect(JSON.parse(l.files["package.json"]!.toString())).toEqual({ private: true });
    expect(l.dockerfile).toContain(`ARG BASE_IMAGE=${DEFAULT_NODE_BASE}`);
  });

  it("python: the agent and the gantry package the app file imports", async () => {
    const l = await loadRuntimeLayer("python", paths);
    expect(Object.keys(l.files)).toEqual(expect.arrayContaining(["agent.py", "gantry_websocket.py", "gantry_web.py", "gantry_asgi.py", "gantry_wsgi.py", "gantry/__init__.py", "gantry/app.py", "gantry/image.py"]));
    expect(l.dockerfile).toContain(`ARG BASE_IMAGE=${DEFAULT_PYTHON_BASE}`);
  });
});

describe("baseRef", () => {
  it("is gantry's base for the language, for node and python images", () => {
    expect(baseRef(spec())).toBe(DEFAULT_NODE_BASE);
    expect(DEFAULT_NODE_BASE).toBe("gantry/base-node:1");
    expect(baseRef(spec(), { node: "my/node:2", python: "p" })).toBe("my/node:2");
    expect(baseRef({ base: { kind: "python" }, steps: [] })).toBe(DEFAULT_PYTHON_BASE);
  });

  it("is the registry reference for registry images", () => {
    expect(baseRef({ base: { kind: "registry", ref: "nvidia/cuda:12.4.1-runtime-ubuntu22.04" }, steps: [] })).toBe(
      "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
    );
  });
});
