/**
 * Image definitions as the SDKs send them (DESIGN 1.1, 1.11): a base and Modal's build steps, in
 * order. Local files travel beside the spec as assets named by their content hash, so the spec
 * stays plain data and an unchanged image hashes the same on every deploy.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/** apt package names: Debian's rules, nothing a shell would read. */
const aptPackage = z.string().min(1).max(214).regex(/^[a-z0-9][a-z0-9.+:~=_-]*$/i, "apt package names are letters, digits and . + : ~ = _ -");
/** npm specs (name, name@range, @scope/name): no spaces or shell characters. */
const npmPackage = z.string().min(1).max(214).regex(/^[^\s;&|`$<>\\'"]+$/, "npm package names may not contain spaces or shell characters");
/**
 * pip requirement specifiers as pip takes them ("numpy<2", "fastapi[standard]", markers too);
 * each is quoted for the shell, so only line breaks and a leading "-" (an option) are refused.
 */
const pipRequirement = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[^\0\n\r]*$/, "a pip requirement is one line")
  .refine((s) => !s.trimStart().startsWith("-"), "a pip requirement may not start with - (pass options with extra_options)");
const url = z.string().min(1).max(2048).regex(/^[a-z][a-z0-9+.-]*:\/\/[^\s'"\\]+$/i, "index and find-links URLs look like https://host/path");
const hash = z.string().regex(/^[0-9a-f]{64}$/, "an asset's hash is 64 hex digits");
const absolutePath = (what: string) => z.string().max(1024).regex(/^\/[^\0\n\r]*$/, `${what} must be an absolute path`);

export const pipOptionsSchema = z
  .object({
    indexUrl: url.optional(),
    extraIndexUrls: z.array(url).max(10).optional(),
    /** A URL pip reads, or (findLinksHash) a folder of the deploying machine sent as an asset. */
    findLinks: url.optional(),
    findLinksHash: hash.optional(),
    pre: z.boolean().optional(),
    /** Passed to the installer as written (Modal's extra_options). */
    extraOptions: z.string().max(2000).regex(/^[^\0\n\r]*$/, "extra_options is one line").optional(),
  })
  .strict();
export type PipOptions = z.infer<typeof pipOptionsSchema>;

export const imageStepSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("apt"), packages: z.array(aptPackage).min(1) }),
  z.object({ kind: z.literal("npm"), packages: z.array(npmPackage).min(1) }),
  /**
   * pip_install / uv_pip_install (installer "uv"); pip_install_from_requirements sends the file as
   * the asset `requirements` (one file, requirements.txt). pip_install_from_pyproject arrives as
   * plain packages: the SDK reads the pyproject's dependencies.
   */
  z.object({
    kind: z.literal("pip"),
    installer: z.enum(["pip", "uv"]).optional(),
    packages: z.array(pipRequirement).max(500),
    requirements: hash.optional(),
    options: pipOptionsSchema.optional(),
  }),
  /** A folder (dir) or one file (file) of the deploying machine, sent as the asset `hash`. */
  z.object({ kind: z.literal("dir"), remote: absolutePath("remote_path"), hash, copy: z.boolean().optional() }),
  z.object({ kind: z.literal("file"), remote: absolutePath("remote_path"), hash, copy: z.boolean().optional() }),
  z.object({ kind: z.literal("run"), commands: z.array(z.string().min(1).max(10_000)).min(1) }),
  z.object({
    kind: z.literal("env"),
    vars: z.record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _"),
      z.string().regex(/^[^\n\r]*$/, "image env values may not contain line breaks (use the function's env option)"),
    ),
  }),
  z.object({ kind: z.literal("workdir"), path: absolutePath("workdir") }),
]);
export type ImageStep = z.infer<typeof imageStepSchema>;

/** Steps that add local files at container start (copy=False): they come last, after every build step. */
export const isLateAdd = (s: ImageStep): boolean => (s.kind === "dir" || s.kind === "file") && s.copy !== true;

/** What a step is called in the SDKs, for messages: `pip_install("numpy")`. */
export function describeStep(step: ImageStep, runtime: "node" | "python"): string {
  const py = runtime === "python";
  const args = (xs: string[]) => {
    const shown = xs.slice(0, 4).map((x) => JSON.stringify(x));
    return xs.length > 4 ? `${shown.join(", ")}, … ${xs.length - 4} more` : shown.join(", ");
  };
  switch (step.kind) {
    case "apt":
      return `${py ? "apt_install" : "aptInstall"}(${args(step.packages)})`;
    case "npm":
      return `npmInstall(${args(step.packages)})`;
    case "pip": {
      const name = step.installer === "uv" ? "uv_pip_install" : "pip_install";
      if (step.requirements) return `${name === "pip_install" ? "pip_install_from_requirements" : name}(requirements.txt${step.packages.length ? `, ${args(step.packages)}` : ""})`;
      return `${name}(${args(step.packages)})`;
    }
    case "dir":
      return `${py ? "add_local_dir" : "addLocalDir"}(…, ${JSON.stringify(step.remote)})`;
    case "file":
      return `${py ? "add_local_file" : "addLocalFile"}(…, ${JSON.stringify(step.remote)})`;
    case "run":
      return `${py ? "run_commands" : "runCommands"}(${args(step.commands)})`;
    case "env":
      return `env(${Object.keys(step.vars).join(", ")})`;
    case "workdir":
      return `workdir(${JSON.stringify(step.path)})`;
  }
}

export const imageBaseSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("node") }),
  z.object({ kind: z.literal("python"), version: z.string().regex(/^3\.\d{1,2}$/, 'python_version looks like "3.11"').optional() }),
  z.object({ kind: z.literal("registry"), ref: z.string().min(1).max(512).regex(/^[a-z0-9][a-z0-9._\/:@-]*$/i, "an image reference like node:20-slim") }),
  /** Image.from_dockerfile: the Dockerfile's text, and the files its COPY/ADD lines name (asset `context`). */
  z.object({
    kind: z.literal("dockerfile"),
    dockerfile: z.string().min(1).max(256 * 1024),
    context: hash,
    /** Where it came from, for messages only. */
    path: z.string().max(1024).optional(),
  }),
]);
export type ImageBase = z.infer<typeof imageBaseSchema>;

export const imageSpecSchema = z
  .object({ base: imageBaseSchema, steps: z.array(imageStepSchema).max(100) })
  .superRefine((spec, ctx) => {
    spec.steps.forEach((s, i) => {
      if (s.kind === "pip" && s.packages.length === 0 && !s.requirements) {
        ctx.addIssue({ code: "custom", path: ["steps", i], message: `image step ${i + 1}: ${describeStep(s, "python")} names no package` });
      }
    });
    const late = spec.steps.findIndex(isLateAdd);
    if (late < 0) return;
    const after = spec.steps.slice(late).findIndex((s) => !isLateAdd(s));
    if (after >= 0) {
      ctx.addIssue({
        code: "custom",
        path: ["steps", late + after],
        message:
          `image step ${late + after + 1} comes after a local file or folder added without copy (step ${late + 1}), ` +
          "which is added when a container starts: pass copy=True (copy: true) to add it as a build step",
      });
    }
  });
export type ImageSpec = z.infer<typeof imageSpecSchema>;

/** A folder's (or one file's) files, by relative path: content (base64) and mode. */
export type AssetFiles = Record<string, { data: string; mode: number }>;

/** The hash an asset is sent under: of each file's path, mode and content, in path order. */
export function assetHash(asset: AssetFiles): string {
  const h = createHash("sha256");
  for (const path of Object.keys(asset).sort()) {
    const data = Buffer.from(asset[path]!.data, "base64");
    h.update(path).update("\0").update(String(asset[path]!.mode)).update("\0").update(String(data.length)).update("\0").update(data);
  }
  return h.digest("hex");
}
