import { resolve } from "node:path";
import type { ImageSpec, ImageStep } from "../protocol/function-spec.js";
import { isLateAdd } from "../protocol/image-spec.js";
import { InvalidArgumentError } from "./errors.js";

/** A step or base that still names local paths: `gantry deploy` reads them and sends the files (cli/image-assets.ts). */
export type LocalImageStep =
  | ImageStep
  | { kind: "dir"; local: string; remote: string; copy: boolean; ignore?: string[] }
  | { kind: "file"; local: string; remote: string; copy: boolean };
export type LocalImageBase = ImageSpec["base"] | { kind: "dockerfile"; local: string; contextDir: string };
export interface LocalImageSpec {
  base: LocalImageBase;
  steps: LocalImageStep[];
}

const absolute = (what: string, p: string) => {
  if (typeof p !== "string" || !p.startsWith("/")) throw new InvalidArgumentError(`${what}: the path in the image must be absolute, got ${JSON.stringify(p)}`);
  return p;
};

/**
 * An image definition, built up immutably like Modal's: `Image.node().aptInstall("curl").env({...})`.
 * The daemon turns it into a generated Dockerfile and tags the result by its content hash, so an
 * unchanged image builds nothing and a changed step rebuilds only what follows it.
 */
export class Image {
  private constructor(private readonly spec: LocalImageSpec) {}

  /** The default Node.js runtime image (gantry's base with npm, or the official `node` image). */
  static node(): Image {
    return new Image({ base: { kind: "node" }, steps: [] });
  }

  /** Any image with Node.js >= 18 on PATH (on this machine, or pulled); gantry adds its agent on top. */
  static fromRegistry(ref: string): Image {
    return new Image({ base: { kind: "registry", ref }, steps: [] });
  }

  /**
   * An image built from your Dockerfile (its final image needs Node.js >= 18). Its COPY and ADD
   * sources are read from `contextDir` (default: the current folder) and sent with the deploy.
   */
  static fromDockerfile(path: string, options: { contextDir?: string } = {}): Image {
    return new Image({ base: { kind: "dockerfile", local: resolve(path), contextDir: resolve(options.contextDir ?? ".") }, steps: [] });
  }

  aptInstall(...packages: string[]): Image {
    return this.with({ kind: "apt", packages: packages.flat() });
  }

  /** Installs npm packages into the image (from the host's npm registry settings); imports of them stay external to the app bundle. */
  npmInstall(...packages: string[]): Image {
    return this.with({ kind: "npm", packages: packages.flat() });
  }

  runCommands(...commands: string[]): Image {
    return this.with({ kind: "run", commands: commands.flat() });
  }

  env(vars: Record<string, string>): Image {
    return this.with({ kind: "env", vars: { ...vars } });
  }

  /** The working folder of later build steps and of the function. */
  workdir(path: string): Image {
    return this.with({ kind: "workdir", path: absolute("workdir", path) });
  }

  /**
   * Puts a folder of this machine at `remote`: as a build step with `copy: true`, otherwise as the
   * image's last layer (no build step may follow; a changed file rebuilds only that layer).
   * `ignore` takes glob patterns of relative paths (`"*.log"`, `"data/**"`).
   */
  addLocalDir(local: string, remote: string, options: { copy?: boolean; ignore?: string[] } = {}): Image {
    return this.with({ kind: "dir", local: resolve(local), remote: absolute("addLocalDir", remote), copy: options.copy ?? false, ...(options.ignore ? { ignore: [...options.ignore] } : {}) });
  }

  /** Puts one file of this machine at `remote` (a path ending in / keeps the file's name). */
  addLocalFile(local: string, remote: string, options: { copy?: boolean } = {}): Image {
    const full = resolve(local);
    const target = absolute("addLocalFile", remote).endsWith("/") ? `${remote}${full.slice(full.lastIndexOf("/") + 1)}` : remote;
    return this.with({ kind: "file", local: full, remote: target, copy: options.copy ?? false });
  }

  /** The plain-data form sent to the daemon (local paths are read and replaced at deploy). */
  toSpec(): ImageSpec {
    return structuredClone(this.spec) as ImageSpec;
  }

  private with(step: LocalImageStep): Image {
    const late = this.spec.steps.find((s) => isLateAdd(s as ImageStep));
    if (late && !isLateAdd(step as ImageStep)) {
      throw new InvalidArgumentError(
        `an image build step (${step.kind}) comes after a local ${late.kind === "dir" ? "folder" : "file"} added without copy (${(late as { remote: string }).remote}), ` +
          "which is added when the container starts: pass { copy: true } to it, or move it to the end",
      );
    }
    return new Image({ base: this.spec.base, steps: [...this.spec.steps, step] });
  }
}
