import type { ImageSpec, ImageStep } from "../protocol/function-spec.js";

/**
 * An image definition, built up immutably like Modal's: `Image.node().aptInstall("curl").env({...})`.
 * The daemon turns it into a generated Dockerfile and tags the result by its content hash.
 */
export class Image {
  private constructor(private readonly spec: ImageSpec) {}

  /** The default Node.js runtime image (gantry's base, or the official `node` image). */
  static node(): Image {
    return new Image({ base: { kind: "node" }, steps: [] });
  }

  /** Any image with Node.js >= 18 on PATH; gantry adds its agent on top. */
  static fromRegistry(ref: string): Image {
    return new Image({ base: { kind: "registry", ref }, steps: [] });
  }

  aptInstall(...packages: string[]): Image {
    return this.with({ kind: "apt", packages: packages.flat() });
  }

  /** Installs npm packages into the image; imports of them stay external to the app bundle. */
  npmInstall(...packages: string[]): Image {
    return this.with({ kind: "npm", packages: packages.flat() });
  }

  runCommands(...commands: string[]): Image {
    return this.with({ kind: "run", commands: commands.flat() });
  }

  env(vars: Record<string, string>): Image {
    return this.with({ kind: "env", vars });
  }

  /** The plain-data form sent to the daemon. */
  toSpec(): ImageSpec {
    return structuredClone(this.spec);
  }

  private with(step: ImageStep): Image {
    return new Image({ base: this.spec.base, steps: [...this.spec.steps, step] });
  }
}
