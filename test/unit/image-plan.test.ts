import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import {
  DEFAULT_NODE_BASE,
  DEFAULT_PYTHON_BASE,
  INDEX_SETTING_ARGS,
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

const INSTALLER = Buffer.from("#!/bin/sh\n# installer\n");
const layer = (o: Partial<RuntimeLayer> = {}): RuntimeLayer => ({ runtime: "node", dockerfile: RUNTIME_DOCKERFILE, files: { "agent.cjs": AGENT }, installer: INSTALLER, ...o });

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

const lines = (dockerfile: string) => dockerfile.trimEnd().split("\n");

describe("planImage Dockerfile", () => {
  it("starts from the function's base, BASE_IMAGE replaced, and ends with the runtime layer", () => {
    const { dockerfile } = planImage(input({ spec: spec([]) }));
    expect(RUNTIME_DOCKERFILE).toContain(`ARG BASE_IMAGE=${DEFAULT_NODE_BASE}`);
    expect(dockerfile.startsWith("ARG BASE_IMAGE=node:20-slim\nFROM ${BASE_IMAGE}\n")).toBe(true);
    const runtimeRest = lines(RUNTIME_DOCKERFILE).filter((l) => l.trim() && !l.startsWith("#") && !l.startsWith("ARG BASE_IMAGE=") && !l.startsWith("FROM"));
    expect(lines(dockerfile).slice(2)).toEqual(runtimeRest);
  });

  it("runs no step as root and copies no installer for an image without steps", () => {
    const { dockerfile, files, buildArgs } = planImage(input({ spec: spec([]), settings: { args: { PIP_INDEX_URL: "https://i/simple" }, files: {}, notes: [] } }));
    expect(dockerfile).not.toContain("USER root");
    expect(dockerfile).not.toContain("gantry-build");
    expect(Object.keys(files)).toEqual(["agent.cjs"]);
    expect(buildArgs).toEqual({});
  });

  it("puts the user's steps before the runtime layer, so a new agent rebuilds only the last layers", () => {
    const { dockerfile } = planImage(input({ layer: layer({ installer: INSTALLER }) }));
    const l = lines(dockerfile);
    const at = (prefix: string) => l.findIndex((x) => x.startsWith(prefix));
    expect(at("USER root")).toBeGreaterThan(at("COPY [\"gantry-build/\""));
    expect(l.slice(at("USER root"), at("USER root") + 5)).toEqual([
      "USER root",
      "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends 'ffmpeg' 'libvips-dev' && rm -rf /var/lib/apt/lists/*",
      `RUN /opt/gantry/build/install npm ${NPM_DEPS_DIR} 'sharp@0.33' '@scope/pkg'`,
      "RUN echo one",
      "RUN mkdir -p /data",
    ]);
    expect(at("RUN mkdir")).toBeLessThan(at("COPY agent.cjs"));
    expect(at("ENTRYPOINT")).toBeGreaterThan(at("COPY agent.cjs"));
    // env() steps come again after the runtime layer's ENV, so the user's values win.
    expect(l.lastIndexOf('ENV MODEL="small v2"')).toBeGreaterThan(at("ENV HOME="));
  });

  it("shell-quotes packages, including an embedded single quote", () => {
    const { dockerfile } = planImage(input({ spec: spec([{ kind: "npm", packages: ["it's"] }]), layer: layer({ installer: INSTALLER }) }));
    expect(dockerfile).toContain(` 'it'\\''s'`);
  });

  it("refuses an installing step when gantry's installer is missing", () => {
    expect(() => planImage(input({ layer: layer({ installer: undefined }) }))).toThrow(/installer .* is missing/);
  });

  it("labels each instruction with the image step that wrote it, for failures", () => {
    const p = planImage(input());
    const l = lines(p.dockerfile);
    expect(p.stepLabels).toHaveLength(l.length);
    expect(p.stepLabels[l.indexOf("RUN mkdir -p /data")]).toBe('image step 3, runCommands("echo one", "mkdir -p /data")');
    expect(p.stepLabels[l.findIndex((x) => x.includes("install npm"))]).toBe('image step 2, npmInstall("sharp@0.33", "@scope/pkg")');
  });
});

describe("the host's index settings", () => {
  const settings = { args: { PIP_INDEX_URL: "https://pypi.internal/simple", HTTPS_PROXY: "http://proxy:3128" }, files: { "ca.pem": Buffer.from("PEM") }, notes: [] };

  it("reach installing steps as build arguments and a CA file, and never change the tag", () => {
    const p = planImage(input({ settings }));
    expect(p.buildArgs).toEqual(settings.args);
    expect(p.files["gantry-build/ca.pem"]!.toString()).toBe("PEM");
    expect(p.files["gantry-build/install"]).toEqual(INSTALLER);
    expect(p.modes["gantry-build/install"]).toBe(0o755);
    for (const a of INDEX_SETTING_ARGS) expect(p.dockerfile).toContain(`ARG ${a}\n`);
    expect(p.dockerfile).not.toContain("pypi.internal");
    expect(p.tag).toBe(planImage(input()).tag);
  });

  it("reach other steps as proxies only", () => {
    const p = planImage(input({ spec: spec([{ kind: "run", commands: ["true"] }]), settings }));
    expect(p.buildArgs).toEqual({ HTTPS_PROXY: "http://proxy:3128" });
    expect(p.dockerfile).not.toContain("ARG PIP_INDEX_URL");
  });
});
describe("python images", () => {
  const pyLayer = layer({ runtime: "python", dockerfile: "ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE}\nENV HOME=/tmp\nWORKDIR /tmp\n", files: { "agent.py": Buffer.from("# agent") } });
  const py = (steps: ImageSpec["steps"] = [], version?: string): ImageSpec => ({ base: { kind: "python", ...(version ? { version } : {}) }, steps });
  const folder: Asset = { "run.sh": { data: Buffer.from("#!/bin/sh\n").toString("base64"), mode: 0o755 }, "data/a.txt": { data: "aGk=", mode: 0o644 } };
  const hash = assetHash(folder);
  const plan = (steps: ImageSpec["steps"], o: Partial<ImagePlanInput> = {}) => planImage(input({ layer: pyLayer, spec: py(steps), base: { ref: DEFAULT_PYTHON_BASE, id: null }, ...o }));

  it("are tagged gantry/fn-python and install pip packages with the installer, options before --", () => {
    const p = plan([{ kind: "pip", packages: ["numpy<3", "it's", "fastapi[standard]"], options: { indexUrl: "https://i/simple", extraIndexUrls: ["https://x/simple"], pre: true, extraOptions: "--no-deps" } }]);
    expect(p.tag).toMatch(/^gantry\/fn-python:[0-9a-f]{20}$/);
    expect(p.dockerfile).toContain(`RUN /opt/gantry/build/install pip --index-url 'https://i/simple' --extra-index-url 'https://x/simple' --pre --no-deps -- 'numpy<3' 'it'\\''s' 'fastapi[standard]'`);
  });

  it("install uv once, in its own layer, before the first uv_pip_install", () => {
    const p = plan([{ kind: "pip", installer: "uv", packages: ["six"], options: { pre: true } }, { kind: "pip", installer: "uv", packages: ["attrs"] }]);
    expect(p.dockerfile.match(/install uv-setup/g)).toHaveLength(1);
    expect(p.dockerfile.indexOf("uv-setup")).toBeLessThan(p.dockerfile.indexOf("install uv --prerelease=allow -- 'six'"));
    expect(p.dockerfile).toContain("RUN /opt/gantry/build/install uv -- 'attrs'");
  });

  it("copy a requirements file and a find_links folder from the deploy, then install from them", () => {
    const req: Asset = { "requirements.txt": { data: Buffer.from("six\n").toString("base64"), mode: 0o644 } };
    const r = assetHash(req);
    const p = plan([{ kind: "pip", packages: [], requirements: r, options: { findLinksHash: hash } }], { assets: { [r]: req, [hash]: folder } });
    expect(p.dockerfile).toContain(`COPY ["assets/${r}/", "/opt/gantry/build/requirements/${r}/"]`);
    expect(p.dockerfile).toContain(`COPY ["assets/${hash}/", "/opt/gantry/build/wheels/${hash}/"]`);
    expect(p.dockerfile).toContain(`install pip --find-links /opt/gantry/build/wheels/${hash} -r /opt/gantry/build/requirements/${r}/requirements.txt\n`);
    expect(p.files[`assets/${r}/requirements.txt`]!.toString()).toBe("six\n");
  });

  it("copy a local folder in place with copy=True, and after the runtime layer without it", () => {
    const copied = plan([{ kind: "dir", remote: "/opt/my data", hash, copy: true }, { kind: "run", commands: ["ls /opt"] }], { assets: { [hash]: folder } });
    const l = lines(copied.dockerfile);
    expect(l.indexOf(`COPY ["assets/${hash}/", "/opt/my data"]`)).toBeLessThan(l.indexOf("RUN ls /opt"));
    expect(copied.files[`assets/${hash}/run.sh`]!.toString()).toBe("#!/bin/sh\n");
    expect(copied.modes[`assets/${hash}/run.sh`]).toBe(0o755);
    const late = lines(plan([{ kind: "run", commands: ["ls /opt"] }, { kind: "dir", remote: "/d", hash }], { assets: { [hash]: folder } }).dockerfile);
    expect(late.at(-1)).toBe(`COPY ["assets/${hash}/", "/d"]`);
    expect(() => plan([{ kind: "dir", remote: "/d", hash }])).toThrow(/were not sent with the deploy/);
  });

  it("put a local file at its remote path, and end in the last workdir()", () => {
    const file: Asset = { "cfg.json": { data: "e30=", mode: 0o644 } };
    const f = assetHash(file);
    const p = plan([{ kind: "workdir", path: "/srv" }, { kind: "file", remote: "/etc/app/cfg.json", hash: f, copy: true }], { assets: { [f]: file } });
    expect(p.dockerfile).toContain(`COPY ["assets/${f}/", "/etc/app/"]`);
    expect(lines(p.dockerfile).at(-1)).toBe('WORKDIR "/srv"');
  });

  it("check a requested Python version when the image is built, naming the version the base has", () => {
    expect(plan([], { spec: py([], "3.12") }).dockerfile).toMatch(/^RUN python3 -c .*"3\.12".*has Python " \+ v \+ " only; python_version=3\.12 asks for another/m);
    expect(plan([]).dockerfile).not.toMatch(/^RUN /m);
  });

  it("name assets by a hash of each file's path, mode and content", () => {
    expect(assetHash(structuredClone(folder))).toBe(hash);
    expect(assetHash({ ...folder, "run.sh": { ...folder["run.sh"]!, mode: 0o644 } })).not.toBe(hash);
    expect(assetHash({ ...folder, "data/b.txt": folder["data/a.txt"]! })).not.toBe(hash);
    expect(assetHash({ ...folder, "data/a.txt": { data: "aGo=", mode: 0o644 } })).not.toBe(hash);
  });
});

describe("Dockerfile bases", () => {
  it("are tagged by the Dockerfile's text and its context", () => {
    const spec: ImageSpec = { base: { kind: "dockerfile", dockerfile: "FROM x\n", context: "a".repeat(64) }, steps: [] };
    expect(baseRef(spec)).toMatch(/^gantry\/dockerfile:[0-9a-f]{20}$/);
    expect(baseRef({ ...spec, base: { ...spec.base, dockerfile: "FROM y\n" } as ImageSpec["base"] })).not.toBe(baseRef(spec));
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
    expect(DEFAULT_NODE_BASE).toBe("gantry/base-node:2");
    expect(baseRef(spec(), { node: "my/node:2", python: "p" })).toBe("my/node:2");
    expect(baseRef({ base: { kind: "python" }, steps: [] })).toBe(DEFAULT_PYTHON_BASE);
  });

  it("is the registry reference for registry images", () => {
    expect(baseRef({ base: { kind: "registry", ref: "nvidia/cuda:12.4.1-runtime-ubuntu22.04" }, steps: [] })).toBe(
      "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
    );
  });
});
