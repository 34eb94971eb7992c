/**
 * Local files a TypeScript app's images name (addLocalDir, addLocalFile, fromDockerfile's context),
 * read at deploy: each becomes an asset named by its hash, and the step names the hash instead of
 * the path (python/gantry/_assets.py does the same for Python apps).
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { assetHash, type AssetFiles } from "../protocol/image-spec.js";
import { InvalidArgumentError } from "../sdk/errors.js";
import type { LocalImageBase, LocalImageSpec, LocalImageStep } from "../sdk/image.js";

export const MAX_ASSET_BYTES = 40 * 1024 * 1024;
const MAX_DOCKERFILE_BYTES = 256 * 1024;

class Packer {
  files: AssetFiles = {};
  private total = 0;
  constructor(private readonly what: string) {}

  add(path: string, name: string): void {
    const data = readFileSync(path);
    this.total += data.length;
    if (this.total > MAX_ASSET_BYTES) throw new InvalidArgumentError(`${this.what}: the files are over the limit of ${MAX_ASSET_BYTES} bytes`);
    this.files[name] = { data: data.toString("base64"), mode: statSync(path).mode & 0o111 ? 0o755 : 0o644 };
  }
}

// A glob of relative paths: * within a name, ** across folders, ? one character; "**/" also
// matches no folder, so "**/*.log" takes a top-level a.log too (as .dockerignore does).
function globRegExp(pattern: string): RegExp {
  const part = (p: string) => p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  const body = pattern
    .split("**/")
    .map((p) => p.split("**").map(part).join(".*"))
    .join("(?:.*/)?");
  return new RegExp(`^${body}$`);
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) {
      if (name !== "node_modules" && name !== ".git") yield* walk(path);
    } else if (st.isFile()) yield path; // links are not followed out of the folder
  }
}

export function packFolder(local: string, what: string, ignore: string[] = []): AssetFiles {
  if (!statSync(local, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidArgumentError(`${what}: ${local} is not a folder`);
  const patterns = ignore.map(globRegExp);
  const p = new Packer(what);
  for (const file of walk(local)) {
    const rel = relative(local, file).split(sep).join("/");
    if (!patterns.some((re) => re.test(rel) || re.test(rel.slice(rel.lastIndexOf("/") + 1)))) p.add(file, rel);
  }
  return p.files;
}

export function packFile(local: string, name: string, what: string): AssetFiles {
  if (!statSync(local, { throwIfNoEntry: false })?.isFile()) throw new InvalidArgumentError(`${what}: ${local} is not a file`);
  const p = new Packer(what);
  p.add(local, name);
  return p.files;
}

/** The local sources of a Dockerfile's COPY and ADD lines (not --from=, not URLs). */
export function copySources(dockerfile: string): string[] {
  const out: string[] = [];
  for (const line of dockerfile.replace(/\\\r?\n/g, " ").split(/\r?\n/)) {
    const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const flags = /^((?:--\S+\s+)*)(.*)$/.exec(m[2]!.trim())!;
    if (/--from[=\s]/.test(flags[1]!)) continue;
    const rest = flags[2]!;
    let parts: string[];
    try {
      parts = rest.startsWith("[") ? (JSON.parse(rest) as string[]).map(String) : rest.split(/\s+/);
    } catch {
      parts = rest.split(/\s+/);
    }
    if (parts.some((p) => p.startsWith("--from"))) continue;
    const args = parts.filter((p) => !p.startsWith("--"));
    out.push(...args.slice(0, -1).filter((s) => !s.includes("://")));
  }
  return out;
}

/** The files of `context` that the Dockerfile's COPY/ADD lines name; none may leave it. Globs in sources are not expanded. */
export function packDockerfileContext(dockerfile: string, context: string, path: string): AssetFiles {
  const what = `Image.fromDockerfile(${JSON.stringify(path)})`;
  const root = realpathSync(context);
  const p = new Packer(what);
  for (const src of copySources(dockerfile)) {
    const full = resolve(root, src.replace(/^\/+/, ""));
    if (full !== root && !full.startsWith(root + sep)) throw new InvalidArgumentError(`${what}: COPY source ${JSON.stringify(src)} leaves the context folder ${context}`);
    const st = statSync(full, { throwIfNoEntry: false });
    if (!st) throw new InvalidArgumentError(`${what}: COPY source ${JSON.stringify(src)} is not in the context folder ${context} (pass { contextDir })`);
    const files = st.isDirectory() ? [...walk(full)] : [full];
    for (const f of files) {
      if (!realpathSync(f).startsWith(root + sep)) throw new InvalidArgumentError(`${what}: ${f} leads out of the context folder ${context}`);
      p.add(f, relative(root, f).split(sep).join("/"));
    }
  }
  return p.files;
}

function store(assets: Record<string, AssetFiles>, files: AssetFiles): string {
  const hash = assetHash(files);
  assets[hash] = files;
  return hash;
}

function packStep(step: LocalImageStep, assets: Record<string, AssetFiles>): LocalImageStep {
  if (step.kind === "dir" && "local" in step) {
    return { kind: "dir", remote: step.remote, copy: step.copy, hash: store(assets, packFolder(step.local, `addLocalDir(${JSON.stringify(step.local)})`, step.ignore)) };
  }
  if (step.kind === "file" && "local" in step) {
    const name = step.remote.slice(step.remote.lastIndexOf("/") + 1);
    return { kind: "file", remote: step.remote, copy: step.copy, hash: store(assets, packFile(step.local, name, `addLocalFile(${JSON.stringify(step.local)})`)) };
  }
  return step;
}

function packBase(base: LocalImageBase, assets: Record<string, AssetFiles>): LocalImageBase {
  if (base.kind !== "dockerfile" || !("local" in base)) return base;
  const st = statSync(base.local, { throwIfNoEntry: false });
  if (!st?.isFile()) throw new InvalidArgumentError(`Image.fromDockerfile: ${base.local} is not a file`);
  if (st.size > MAX_DOCKERFILE_BYTES) throw new InvalidArgumentError(`Image.fromDockerfile: ${base.local} is over the limit of ${MAX_DOCKERFILE_BYTES} bytes`);
  const text = readFileSync(base.local, "utf8");
  return { kind: "dockerfile", dockerfile: text, context: store(assets, packDockerfileContext(text, base.contextDir, base.local)), path: base.local };
}

/** The local files and folders the functions' images copy, by path (read before packImages replaces them): what `gantry serve` watches. */
export function imageLocalPaths(functions: Array<{ options: unknown }>): string[] {
  const paths = new Set<string>();
  for (const f of functions) {
    const image = (f.options as { image?: LocalImageSpec }).image;
    if (!image) continue;
    if (image.base.kind === "dockerfile" && "local" in image.base) paths.add(image.base.local).add(image.base.contextDir);
    for (const step of image.steps) if ((step.kind === "dir" || step.kind === "file") && "local" in step) paths.add(step.local);
  }
  return [...paths].sort();
}

/** Replaces each function's image's local paths with the hashes of the files sent for them. */
export function packImages(functions: Array<{ options: unknown }>): Record<string, AssetFiles> {
  const assets: Record<string, AssetFiles> = {};
  for (const f of functions) {
    const options = f.options as { image?: LocalImageSpec };
    if (!options.image) continue;
    options.image = { base: packBase(options.image.base, assets), steps: options.image.steps.map((s) => packStep(s, assets)) };
  }
  return assets;
}
