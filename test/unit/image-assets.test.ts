/**
 * Local files of TypeScript images, read at deploy (cli/image-assets.ts), the SDK's Image
 * (sdk/image.ts) and the image spec the daemon accepts (protocol/image-spec.ts): what a user asks
 * for, and the hostile case beside it (paths leaving a folder, links out, steps out of order).
 */
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { MAX_ASSET_BYTES, copySources, packDockerfileContext, packFile, packFolder, packImages } from "../../cli/image-assets.js";
import { assetHash, imageSpecSchema, type AssetFiles, type ImageSpec } from "../../protocol/image-spec.js";
import { InvalidArgumentError } from "../../sdk/errors.js";
import { Image } from "../../sdk/image.js";

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "gantry-assets-"));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes files (relative to tmp) and returns tmp's path of the first argument's folder. */
function tree(files: Record<string, string>, under = ""): string {
  const root = join(tmp, under);
  mkdirSync(root, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

const text = (asset: AssetFiles, name: string) => Buffer.from(asset[name]!.data, "base64").toString();

describe("assetHash", () => {
  it("is the hash the Python client computes for the same files (python/gantry/_assets.py asset_hash)", () => {
    const asset: AssetFiles = {
      "bin/run": { data: Buffer.from("#!/bin/sh\n").toString("base64"), mode: 0o755 },
      "a.txt": { data: Buffer.from("hi\n").toString("base64"), mode: 0o644 },
    };
    expect(assetHash(asset)).toBe("38b34933d59fa12815cc36fb9021511e692601a5dbb9d8051c8ba3e91d69bcce");
  });

  it("changes with a file's mode, name or content", () => {
    const base: AssetFiles = { "a.txt": { data: Buffer.from("x").toString("base64"), mode: 0o644 } };
    const h = assetHash(base);
    expect(assetHash({ "a.txt": { ...base["a.txt"]!, mode: 0o755 } })).not.toBe(h);
    expect(assetHash({ "b.txt": base["a.txt"]! })).not.toBe(h);
    expect(assetHash({ "a.txt": { data: Buffer.from("y").toString("base64"), mode: 0o644 } })).not.toBe(h);
  });
});

describe("packFolder", () => {
  it("packs every file by relative path with its content and mode", () => {
    const root = tree({ "a.txt": "A", "sub/b.txt": "B", "sub/deeper/c.txt": "C", "run.sh": "#!/bin/sh\n" }, "src");
    chmodSync(join(root, "run.sh"), 0o755);
    const asset = packFolder(root, "addLocalDir");
    expect(Object.keys(asset).sort()).toEqual(["a.txt", "run.sh", "sub/b.txt", "sub/deeper/c.txt"]);
    expect(text(asset, "sub/deeper/c.txt")).toBe("C");
    expect(asset["run.sh"]!.mode).toBe(0o755);
    expect(asset["a.txt"]!.mode).toBe(0o644);
  });

  it("leaves out what the ignore globs name: by name, by path, ** across folders, ? one character", () => {
    const root = tree(
      {
        "keep.py": "",
        "app.log": "",
        "sub/deep.log": "",
        "data/big.bin": "",
        "data/nested/more.bin": "",
        "top.tmp": "",
        "sub/x/y.tmp": "",
        "v1.cfg": "",
        "v10.cfg": "",
        "sub/data/keep.txt": "",
      },
      "src",
    );
    const asset = packFolder(root, "addLocalDir", ["*.log", "data/**", "**/*.tmp", "v?.cfg"]);
    expect(Object.keys(asset).sort()).toEqual(["keep.py", "sub/data/keep.txt", "v10.cfg"]);
  });

  it("takes glob characters of a pattern literally where they are not glob syntax", () => {
    const root = tree({ "a+b.txt": "", "aab.txt": "", "(x).txt": "" }, "src");
    expect(Object.keys(packFolder(root, "addLocalDir", ["a+b.txt", "(x).txt"]))).toEqual(["aab.txt"]);
  });

  it("does not follow links, to files or folders, out of the folder", () => {
    const outside = tree({ "secret.txt": "TOP SECRET", "dir/inner.txt": "ALSO SECRET" }, "outside");
    const root = tree({ "ok.txt": "fine" }, "src");
    symlinkSync(join(outside, "secret.txt"), join(root, "link.txt"));
    symlinkSync(join(outside, "dir"), join(root, "linkdir"));
    const asset = packFolder(root, "addLocalDir");
    expect(Object.keys(asset)).toEqual(["ok.txt"]);
    expect(JSON.stringify(asset)).not.toContain(Buffer.from("TOP SECRET").toString("base64"));
  });

  it("refuses a folder that does not exist, and a file given as a folder", () => {
    const f = join(tree({ "f.txt": "" }), "f.txt");
    expect(() => packFolder(join(tmp, "nope"), "addLocalDir(nope)")).toThrow(/addLocalDir\(nope\): .*nope is not a folder/);
    expect(() => packFolder(f, "addLocalDir(f)")).toThrow(InvalidArgumentError);
  });

  it("stops at the size limit with a message naming it", () => {
    const root = tree({ "small.txt": "x" }, "src");
    writeFileSync(join(root, "z-big.bin"), "");
    truncateSync(join(root, "z-big.bin"), MAX_ASSET_BYTES); // sparse, read after small.txt: one byte over
    expect(() => packFolder(root, "addLocalDir(src)")).toThrow(`addLocalDir(src): the files are over the limit of ${MAX_ASSET_BYTES} bytes`);
  });
});

describe("packFile", () => {
  it("packs one file under the name given", () => {
    const f = join(tree({ "local-name.cfg": "cfg" }), "local-name.cfg");
    const asset = packFile(f, "remote-name.cfg", "addLocalFile");
    expect(Object.keys(asset)).toEqual(["remote-name.cfg"]);
    expect(text(asset, "remote-name.cfg")).toBe("cfg");
  });

  it("refuses a folder or a missing file", () => {
    expect(() => packFile(tmp, "x", "addLocalFile(x)")).toThrow(/addLocalFile\(x\): .* is not a file/);
    expect(() => packFile(join(tmp, "missing"), "x", "addLocalFile(x)")).toThrow(InvalidArgumentError);
  });
});

describe("copySources", () => {
  it("reads the sources of COPY and ADD, in plain and JSON form, across line continuations", () => {
    const dockerfile = [
      "FROM python:3.12-slim AS base",
      "# COPY commented.txt /nope",
      "COPY requirements.txt /app/",
      "copy --chown=1000:1000 --chmod=644 a.txt b.txt /app/",
      'COPY ["with space.txt", "json.txt", "/app/"]',
      'COPY --chown=1:1 ["flagged json.txt", "/app/"]',
      "ADD vendor \\",
      "    /opt/vendor",
      "RUN echo COPY not-a-source /x",
    ].join("\n");
    expect(copySources(dockerfile)).toEqual(["requirements.txt", "a.txt", "b.txt", "with space.txt", "json.txt", "flagged json.txt", "vendor"]);
  });

  it("skips --from= stages and URLs, which are not files of this machine", () => {
    const dockerfile = [
      "FROM node:20 AS build",
      "COPY --from=build /src/dist /app",
      "COPY --from build /x /y",
      "ADD https://example.com/tool.tar.gz /opt/",
      "ADD local.tar.gz https://example.com/other /opt/",
    ].join("\n");
    expect(copySources(dockerfile)).toEqual(["local.tar.gz"]);
  });
});

describe("packDockerfileContext", () => {
  it("packs only the files COPY and ADD name, folders whole", () => {
    const ctx = tree({ "requirements.txt": "numpy\n", "app/main.py": "print(1)\n", "app/util/x.py": "", "unrelated/big.bin": "zzz", ".env": "SECRET=1" }, "ctx");
    const asset = packDockerfileContext("FROM python:3.12\nCOPY requirements.txt /r.txt\nCOPY app /app\n", ctx, "Dockerfile");
    expect(Object.keys(asset).sort()).toEqual(["app/main.py", "app/util/x.py", "requirements.txt"]);
    expect(text(asset, "requirements.txt")).toBe("numpy\n");
  });

  it("reads an absolute source inside the context, as Docker does", () => {
    const ctx = tree({ "etc/app.conf": "conf" }, "ctx");
    expect(Object.keys(packDockerfileContext("COPY /etc/app.conf /etc/app.conf\n", ctx, "Dockerfile"))).toEqual(["etc/app.conf"]);
  });

  it('refuses a COPY source with ".." that leaves the context', () => {
    tree({ "secret": "TOP SECRET" });
    const ctx = tree({ "ok.txt": "" }, "ctx");
    expect(() => packDockerfileContext("FROM scratch\nCOPY ../secret /x\n", ctx, "Dockerfile")).toThrow(/COPY source "\.\.\/secret" leaves the context folder/);
    expect(() => packDockerfileContext("COPY sub/../../secret /x\n", ctx, "Dockerfile")).toThrow(/leaves the context folder/);
    expect(() => packDockerfileContext('COPY ["..", "/x"]\n', ctx, "Dockerfile")).toThrow(/leaves the context folder/);
  });

  it("refuses a link that leads out of the context, named directly or as the folder copied", () => {
    const outside = tree({ "secret.txt": "TOP SECRET", "d/s.txt": "S" }, "outside");
    const ctx = tree({ "ok.txt": "" }, "ctx");
    symlinkSync(join(outside, "secret.txt"), join(ctx, "link.txt"));
    symlinkSync(join(outside, "d"), join(ctx, "linkdir"));
    expect(() => packDockerfileContext("COPY link.txt /x\n", ctx, "Dockerfile")).toThrow(/link\.txt leads out of the context folder/);
    expect(() => packDockerfileContext("COPY linkdir /x\n", ctx, "Dockerfile")).toThrow(/leads out of the context folder/);
  });

  it("does not pick up a link out of the context inside a copied folder", () => {
    const outside = tree({ "secret.txt": "TOP SECRET" }, "outside");
    const ctx = tree({ "app/ok.txt": "ok" }, "ctx");
    symlinkSync(join(outside, "secret.txt"), join(ctx, "app", "leak.txt"));
    expect(Object.keys(packDockerfileContext("COPY app /app\n", ctx, "Dockerfile"))).toEqual(["app/ok.txt"]);
  });

  it("says which source is missing and how to point at the right folder", () => {
    const ctx = tree({}, "ctx");
    expect(() => packDockerfileContext("COPY nothing.txt /x\n", ctx, "Dockerfile")).toThrow(/"nothing\.txt" is not in the context folder .*contextDir/);
  });
});

describe("packImages", () => {
  it("replaces local paths with the hashes of the assets sent, for steps and a Dockerfile base", () => {
    const dir = tree({ "a.py": "A", "skip.log": "L" }, "dir");
    const file = join(tree({ "settings.toml": "S" }, "f"), "settings.toml");
    const ctx = tree({ "Dockerfile": "FROM node:20\nCOPY pkg.json /p.json\n", "pkg.json": "{}" }, "ctx");
    const image = Image.fromDockerfile(join(ctx, "Dockerfile"), { contextDir: ctx })
      .aptInstall("curl")
      .addLocalDir(dir, "/srv/copied", { copy: true, ignore: ["*.log"] })
      .addLocalFile(file, "/etc/app/", { copy: true })
      .runCommands("echo built")
      .addLocalDir(dir, "/srv/late");
    const functions: Array<{ options: { image?: unknown } }> = [{ options: { image: image.toSpec() } }];
    const assets = packImages(functions);

    const spec = imageSpecSchema.parse(functions[0]!.options.image) as ImageSpec;
    expect(JSON.stringify(spec)).not.toContain('"local"');
    expect(JSON.stringify(spec)).not.toContain("contextDir");
    for (const [hash, files] of Object.entries(assets)) expect(assetHash(files)).toBe(hash);

    const base = spec.base as Extract<ImageSpec["base"], { kind: "dockerfile" }>;
    expect(base.dockerfile).toContain("COPY pkg.json");
    expect(Object.keys(assets[base.context]!)).toEqual(["pkg.json"]);
    const [, copied, one, , late] = spec.steps as Array<Extract<ImageSpec["steps"][number], { kind: "dir" | "file" }>>;
    expect(Object.keys(assets[copied!.hash]!)).toEqual(["a.py"]);
    expect(copied!.copy).toBe(true);
    expect(one!.remote).toBe("/etc/app/settings.toml");
    expect(Object.keys(assets[one!.hash]!)).toEqual(["settings.toml"]);
    // The same folder without ignore is another asset.
    expect(late!.hash).not.toBe(copied!.hash);
    expect(Object.keys(assets[late!.hash]!).sort()).toEqual(["a.py", "skip.log"]);
  });

  it("names an addLocalFile asset's one file like the remote path, whatever the local name", () => {
    const file = join(tree({ "local.cfg": "x" }), "local.cfg");
    const functions = [{ options: { image: Image.node().addLocalFile(file, "/etc/remote.cfg").toSpec() } }];
    const assets = packImages(functions);
    expect(Object.values(assets).map((a) => Object.keys(a))).toEqual([["remote.cfg"]]);
  });

  it("packs one Image used by two functions for both, leaving the Image itself untouched", () => {
    const dir = tree({ "a.py": "A" }, "dir");
    const image = Image.node().addLocalDir(dir, "/srv");
    const functions: Array<{ options: { image?: unknown } }> = [{ options: { image: image.toSpec() } }, { options: { image: image.toSpec() } }, { options: {} }];
    const assets = packImages(functions);
    expect(Object.keys(assets)).toHaveLength(1);
    const hash = Object.keys(assets)[0]!;
    for (const f of functions.slice(0, 2)) expect(f.options.image).toEqual({ base: { kind: "node" }, steps: [{ kind: "dir", remote: "/srv", copy: false, hash }] });
    expect(functions[2]!.options).toEqual({});
    expect((image.toSpec().steps[0] as { local?: string }).local).toBe(dir);
  });

  it("fails the deploy when a local folder is gone by then", () => {
    const dir = tree({ "a.py": "A" }, "dir");
    const spec = Image.node().addLocalDir(dir, "/srv").toSpec();
    rmSync(dir, { recursive: true });
    expect(() => packImages([{ options: { image: spec } }])).toThrow(/addLocalDir\(.*\): .* is not a folder/);
  });
});

describe("sdk Image", () => {
  it("refuses a build step after addLocalDir without copy, naming the fix", () => {
    const late = Image.node().addLocalDir(tmp, "/data");
    expect(() => late.aptInstall("curl")).toThrow(InvalidArgumentError);
    expect(() => late.runCommands("echo hi")).toThrow(/pass \{ copy: true \}/);
    expect(() => late.env({ A: "1" })).toThrow(/after a local folder added without copy \(\/data\)/);
    expect(() => Image.node().addLocalFile(join(tmp, "f"), "/f").workdir("/srv")).toThrow(/local file added without copy/);
  });

  it("allows local files after local files, and build steps after copy: true", () => {
    expect(() => Image.node().addLocalDir(tmp, "/a").addLocalFile(join(tmp, "f"), "/b")).not.toThrow();
    const spec = Image.node().addLocalDir(tmp, "/a", { copy: true }).runCommands("ls /a").toSpec();
    expect(spec.steps.map((s) => s.kind)).toEqual(["dir", "run"]);
  });

  it("keeps the file's name when addLocalFile's remote path ends in /", () => {
    const step = Image.node().addLocalFile("conf/app.yaml", "/etc/app/").toSpec().steps[0] as unknown as { remote: string; local: string };
    expect(step.remote).toBe("/etc/app/app.yaml");
    expect(step.local).toMatch(/\/conf\/app\.yaml$/);
    expect((Image.node().addLocalFile("conf/app.yaml", "/etc/other.yaml").toSpec().steps[0] as { remote: string }).remote).toBe("/etc/other.yaml");
  });

  it("wants absolute paths in the image", () => {
    expect(Image.node().workdir("/srv/app").toSpec().steps).toEqual([{ kind: "workdir", path: "/srv/app" }]);
    expect(() => Image.node().workdir("srv/app")).toThrow(/workdir: the path in the image must be absolute, got "srv\/app"/);
    expect(() => Image.node().addLocalDir(tmp, "data")).toThrow(InvalidArgumentError);
    expect(() => Image.node().addLocalFile(join(tmp, "f"), "f")).toThrow(InvalidArgumentError);
  });

  it("is immutable: each step returns a new Image, and toSpec is a copy", () => {
    const a = Image.node();
    const b = a.aptInstall("curl");
    expect(a.toSpec().steps).toEqual([]);
    const spec = b.toSpec();
    (spec.steps[0] as { packages: string[] }).packages.push("evil");
    expect(b.toSpec().steps).toEqual([{ kind: "apt", packages: ["curl"] }]);
  });

  it("keeps its own copy of the env vars and ignore patterns it was given", () => {
    const vars = { MODEL: "small" };
    const ignore = ["*.log"];
    const image = Image.node().env(vars).addLocalDir(tmp, "/d", { ignore });
    vars.MODEL = "changed";
    ignore.push("*");
    expect(image.toSpec().steps).toEqual([
      { kind: "env", vars: { MODEL: "small" } },
      { kind: "dir", local: tmp, remote: "/d", copy: false, ignore: ["*.log"] },
    ]);
  });

  it("resolves fromDockerfile's paths, the context defaulting to the current folder", () => {
    expect(Image.fromDockerfile("Dockerfile").toSpec().base).toEqual({ kind: "dockerfile", local: join(process.cwd(), "Dockerfile"), contextDir: process.cwd() });
  });
});

describe("imageSpecSchema", () => {
  const H = "a".repeat(64);
  const py = (steps: unknown[]) => imageSpecSchema.safeParse({ base: { kind: "python" }, steps });
  const messages = (r: ReturnType<typeof py>) => (r.success ? "" : r.error.issues.map((i) => i.message).join("\n"));

  it("accepts pip requirement specifiers as pip takes them", () => {
    const r = py([{ kind: "pip", packages: ["numpy<3", "fastapi[standard]", 'pandas>=2; python_version >= "3.9"', "torch==2.3.*", "pkg @ https://x.example/p.whl"] }]);
    expect(r.success).toBe(true);
  });

  it("refuses a pip step with no packages and no requirements, and accepts one with requirements only", () => {
    const r = py([{ kind: "pip", packages: [] }]);
    expect(r.success).toBe(false);
    expect(messages(r)).toContain("image step 1: pip_install() names no package");
    expect(py([{ kind: "pip", packages: [], requirements: H }]).success).toBe(true);
  });

  it("refuses a pip requirement that is an option (starts with -), or spans lines", () => {
    for (const bad of ["--index-url=https://evil.example/simple", "-r /etc/passwd", "  -e .", "numpy\n--pre"]) {
      const r = py([{ kind: "pip", packages: ["ok", bad] }]);
      expect(r.success, bad).toBe(false);
    }
    expect(messages(py([{ kind: "pip", packages: ["-e ."] }]))).toContain("extra_options");
  });

  it("refuses option values that would leave their shell word", () => {
    expect(py([{ kind: "pip", packages: ["x"], options: { indexUrl: "https://ok.example/simple'; rm -rf /" } }]).success).toBe(false);
    expect(py([{ kind: "pip", packages: ["x"], options: { indexUrl: "/local/folder" } }]).success).toBe(false);
    expect(py([{ kind: "pip", packages: ["x"], options: { unknown: true } }]).success).toBe(false);
    expect(py([{ kind: "pip", packages: ["x"], options: { indexUrl: "https://ok.example/simple", extraIndexUrls: ["https://b.example/simple"], pre: true, extraOptions: "--no-deps" } }]).success).toBe(true);
  });

  it("refuses a build step after a copy=false dir step, naming the step and the fix", () => {
    const r = py([{ kind: "apt", packages: ["curl"] }, { kind: "dir", remote: "/data", hash: H, copy: false }, { kind: "run", commands: ["ls"] }]);
    expect(r.success).toBe(false);
    expect(messages(r)).toMatch(/image step 3 comes after a local file or folder added without copy \(step 2\).*copy=True/);
    // copy left out is copy=false.
    expect(py([{ kind: "file", remote: "/f", hash: H }, { kind: "env", vars: { A: "1" } }]).success).toBe(false);
  });

  it("accepts local files after local files, and build steps after copy=true", () => {
    expect(py([{ kind: "dir", remote: "/data", hash: H, copy: true }, { kind: "run", commands: ["ls /data"] }, { kind: "dir", remote: "/late", hash: H }, { kind: "file", remote: "/late.txt", hash: H, copy: false }]).success).toBe(true);
  });

  it("refuses a relative remote path and a hash that is not one", () => {
    expect(py([{ kind: "dir", remote: "data", hash: H }]).success).toBe(false);
    expect(py([{ kind: "dir", remote: "/data", hash: "../../etc" }]).success).toBe(false);
    expect(py([{ kind: "workdir", path: "relative" }]).success).toBe(false);
  });
});
