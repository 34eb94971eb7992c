/**
 * Bundles an app file with esbuild and reads its function definitions without running any
 * function. `import ... from "gantry"` resolves to this package's SDK, so an app file anywhere
 * on disk needs nothing installed beside it. Packages named in Image.npmInstall() may be absent
 * locally: they stay external and resolve inside the image.
 *
 * The bundle carries an inline source map (paths of the user's files, no contents): with source
 * maps on (here while reading, and in the agent), errors name the user's file and line. Functions
 * with an anonymous handler are named by their export (nameFunctionsByExport), as in the agent.
 *
 * A deploy imports the app in a worker thread that is stopped if it has not loaded within the load
 * timeout (cli/app-worker.ts says why a worker); `gantry run` imports it here, after a worker saw it load.
 */
import { build, formatMessages, type Message, type Plugin } from "esbuild";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { resolveFunctionSpec, type ImageSpec } from "../protocol/function-spec.js";
import { appRegistry, FunctionNameError, nameFunctionsByExport, type RegisteredApp, type RegisteredFunction } from "../protocol/registry.js";
import { InvalidArgumentError } from "../sdk/errors.js";
import { loadingFailed } from "./app-file-error.js";
import { loadInWorker } from "./app-worker.js";
import { loadTimedOut, loadTimeoutSeconds } from "./load-timeout.js";
import { imageLocalPaths, packImages } from "./image-assets.js";
import type { AssetFiles } from "../protocol/image-spec.js";

export interface BundledApp {
  app: string;
  functions: Array<{ name: string; options: unknown }>;
  bundle: string;
  /** Local files the images copy, by hash (cli/image-assets.ts). */
  assets: Record<string, AssetFiles>;
  /** The files the bundle was made from (absolute paths; the SDK's and packages' too): what `gantry serve` watches. */
  sources: string[];
  /** The local files and folders its images copy (absolute paths). */
  localPaths: string[];
}

const SUPPORTED = new Set([".ts", ".mts", ".js", ".mjs"]);

function sdkEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of ["../sdk/index.js", "../sdk/index.ts"]) {
    const p = resolve(here, candidate);
    if (existsSync(p)) return p;
  }
  throw new Error(`gantry's SDK entry is missing beside ${here}: run npm run build`);
}

const isBare = (p: string) => !p.startsWith(".") && !p.startsWith("/") && !p.startsWith("node:") && p !== "gantry";

/** Resolves "gantry" to the SDK; a bare import that cannot be resolved goes to `missing`. */
function resolvePlugin(missing: Set<string>, external: Set<string>, stubMissing: boolean): Plugin {
  return {
    name: "gantry-resolve",
    setup(b) {
      b.onResolve({ filter: /^gantry$/ }, () => ({ path: sdkEntry() }));
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === "gantry-inner" || !isBare(args.path) || args.kind === "entry-point") return undefined;
        const pkg = args.path.startsWith("@") ? args.path.split("/").slice(0, 2).join("/") : args.path.split("/")[0]!;
        if (external.has(pkg)) return { path: args.path, external: true };
        const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: "gantry-inner" });
        if (r.errors.length === 0) return r;
        missing.add(pkg);
        return stubMissing ? { path: args.path, namespace: "gantry-missing" } : undefined;
      });
      // Stand-in for a package only the image will have: any property access yields another stand-in.
      b.onLoad({ filter: /.*/, namespace: "gantry-missing" }, () => ({
        contents:
          "const h={get:(t,k)=>k==='__esModule'?false:k===Symbol.toPrimitive?()=>'':stub,apply:()=>stub,construct:()=>stub};" +
          "const stub=new Proxy(function(){},h);module.exports=stub;",
        loader: "js",
      }));
    },
  };
}

interface Bundle {
  code: string;
  /** The files it was made from (absolute paths), as its source map names them. */
  sources: Set<string>;
}

/** Bundles `entry` as if written to `outfile`, with its source map inline (absolute source paths). */
async function bundle(entry: string, outfile: string, missing: Set<string>, external: Set<string>, stubMissing: boolean): Promise<Bundle> {
  try {
    const out = await build({
      entryPoints: [entry],
      outfile,
      sourcemap: "external",
      sourcesContent: false,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node18",
      keepNames: true,
      write: false,
      logLevel: "silent",
      plugins: [resolvePlugin(missing, external, stubMissing)],
      banner: { js: "import { createRequire as __gantryCreateRequire } from 'node:module'; const require = __gantryCreateRequire(import.meta.url);" },
    });
    const code = out.outputFiles.find((f) => !f.path.endsWith(".map"))!.text;
    const map = JSON.parse(out.outputFiles.find((f) => f.path.endsWith(".map"))!.text) as { sources: string[] };
    map.sources = map.sources.map((s) => (/^[a-z-]+:/.test(s) ? s : resolve(dirname(outfile), s)));
    const inline = `//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(map)).toString("base64")}\n`;
    return { code: code + inline, sources: new Set(map.sources) };
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors?.length) throw err;
    const text = (await formatMessages(errors, { kind: "error", color: false })).join("").trim();
    throw new InvalidArgumentError(`${entry} does not build:\n${text}`);
  }
}

/** What importing an app file's bundle left: the registry its App registered in, and the module's exports. */
interface Loaded {
  registry: Map<string, RegisteredApp>;
  moduleExports: Record<string, unknown>;
}

/** Imports the bundle (written to `file`) in this thread, with source maps on: `gantry run` calls what it defines. */
async function evaluate(entry: string, file: string, { sources }: Bundle): Promise<Loaded> {
  appRegistry().clear();
  process.setSourceMapsEnabled(true);
  try {
    return { registry: appRegistry(), moduleExports: (await import(pathToFileURL(file).href)) as Record<string, unknown> };
  } catch (err) {
    throw loadingFailed(entry, err, sources);
  }
}

const notCallable = () => {
  throw new Error("a definition read in a worker thread cannot be called here");
};

/** Imports the bundle (written to `file`) in a worker thread, stopped after `timeoutS`: its definitions, without handlers. */
async function evaluateInWorker(entry: string, file: string, { sources }: Bundle, timeoutS: number): Promise<Loaded> {
  const loaded = await loadInWorker(file, { timeoutS, onTimeout: () => loadTimedOut(entry, timeoutS), output: "show" });
  if (!loaded.ok) throw loadingFailed(entry, { stack: loaded.stack }, sources);
  // The values the app's exports held stand in as tokens: one object per value, as identity is all nameFunctionsByExport asks of them.
  const tokens = new Map<number, object>();
  const token = (id: number) => (id < 0 ? undefined : tokens.get(id) ?? tokens.set(id, {}).get(id));
  const registry = new Map<string, RegisteredApp>();
  for (const app of loaded.apps) {
    const definitions = app.definitions.map(({ named: _, exported, ...d }) => ({ ...d, exported: token(exported), handler: notCallable }));
    const functions = new Map(definitions.filter((_, i) => app.definitions[i]!.named).map((d) => [d.name, d]));
    registry.set(app.name, { name: app.name, functions, definitions });
  }
  return { registry, moduleExports: Object.fromEntries(Object.entries(loaded.exports).map(([key, id]) => [key, token(id)])) };
}

/** Where a definition's problems are reported: its line in the app file, else the file. */
const whereDefined = (f: RegisteredFunction, file: string) => f.definedAt ?? file;

export interface LoadOptions {
  /** Seconds the app file may take to load (default: $GANTRY_LOAD_TIMEOUT, else 60: cli/load-timeout.ts). */
  loadTimeoutS?: number;
}

export async function bundleApp(file: string, opts: LoadOptions = {}): Promise<BundledApp> {
  const entry = resolve(file);
  if (!existsSync(entry)) throw new InvalidArgumentError(`app file ${file} does not exist`);
  const ext = extname(entry);
  if (ext === ".py") throw new InvalidArgumentError(`${file} is a Python app file: it is read with python3 (cli/python-app.ts), not bundled`);
  if (!SUPPORTED.has(ext)) throw new InvalidArgumentError(`${file}: an app file must end in .ts, .mts, .js, .mjs or .py`);

  // Pass 1: bundle with stand-ins for missing packages, and read the definitions.
  const timeoutS = opts.loadTimeoutS ?? loadTimeoutSeconds();
  const { app, missing } = await evaluateApp(entry, file, "deploy", (probe, b) => evaluateInWorker(entry, probe, b, timeoutS));
  if (app.functions.size === 0) throw new InvalidArgumentError(`app ${app.name} in ${file} defines no functions: use app.function(...)`);
  const localPaths = imageLocalPaths([...app.functions.values()]);
  const assets = packImages([...app.functions.values()]);
  for (const f of app.functions.values()) {
    try {
      resolveFunctionSpec(f.name, f.options);
    } catch (err) {
      throw new InvalidArgumentError(`${whereDefined(f, file)}: ${(err as Error).message}`);
    }
  }
  const functions = [...app.functions.values()].map((f) => ({ name: f.name, options: f.options }));

  // Pass 2: the real bundle; packages the image installs stay external.
  const imagePackages = new Set<string>();
  for (const f of functions) {
    for (const step of ((f.options as { image?: ImageSpec }).image?.steps ?? [])) {
      if (step.kind === "npm") for (const p of step.packages) imagePackages.add(p.replace(/(?<=.)@.*$/, ""));
    }
  }
  const unresolved = [...missing].filter((p) => !imagePackages.has(p));
  if (unresolved.length) {
    throw new InvalidArgumentError(
      `${file} imports ${unresolved.map((p) => JSON.stringify(p)).join(", ")}, which is neither installed beside the app nor in an Image.npmInstall(...)`,
    );
  }
  appRegistry().clear();
  const { code, sources } = await bundle(entry, join(dirname(entry), "app.mjs"), new Set(), imagePackages, false);
  return { app: app.name, functions, bundle: code, assets, sources: [...sources], localPaths };
}

/**
 * The app file evaluated in this process, as `gantry run` runs its local entrypoint: bundled as for
 * a deploy's first pass, packages only its image installs read as stand-ins (named in `standins`).
 */
export async function loadAppLocally(file: string, opts: LoadOptions = {}): Promise<{ app: RegisteredApp; standins: string[] }> {
  const entry = resolve(file);
  if (!existsSync(entry)) throw new InvalidArgumentError(`app file ${file} does not exist`);
  if (!SUPPORTED.has(extname(entry))) throw new InvalidArgumentError(`${file}: an app file must end in .ts, .mts, .js, .mjs or .py`);
  const timeoutS = opts.loadTimeoutS ?? loadTimeoutSeconds();
  const { app, missing } = await evaluateApp(entry, file, "run", async (probe, b) => {
    // Its entrypoint runs in this thread, so the app is imported here, where a loop at import could not be stopped:
    // a worker imports it first, silently, to see that it finishes loading in time (what it throws, this import shows).
    await loadInWorker(probe, { timeoutS, onTimeout: () => loadTimedOut(entry, timeoutS), output: "discard" });
    return evaluate(entry, probe, b);
  });
  return { app, standins: [...missing] };
}

/**
 * Bundles the app file with stand-ins for packages that are not installed (named in `missing`),
 * imports it with `load`, and returns its one App, its functions named by their exports.
 */
async function evaluateApp(
  entry: string,
  file: string,
  verb: "deploy" | "run",
  load: (probeFile: string, b: Bundle) => Promise<Loaded>,
): Promise<{ app: RegisteredApp; missing: Set<string> }> {
  const missing = new Set<string>();
  const dir = await mkdtemp(join(tmpdir(), `gantry-${verb}-`));
  let loaded: Loaded;
  try {
    const probeFile = join(dir, "app.mjs");
    const b = await bundle(entry, probeFile, missing, new Set(), true);
    await writeFile(probeFile, b.code);
    loaded = await load(probeFile, b);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const { registry, moduleExports } = loaded;
  if (registry.size === 0) throw new InvalidArgumentError(`${file} defines no gantry App: add \`const app = new App("name")\``);
  if (registry.size > 1) throw new InvalidArgumentError(`${file} defines ${registry.size} Apps (${[...registry.keys()].join(", ")}); ${verb} one App per file`);
  const app = [...registry.values()][0]!;
  try {
    nameFunctionsByExport(app, moduleExports);
  } catch (err) {
    if (err instanceof FunctionNameError) throw new InvalidArgumentError(`${file}: ${err.message}`);
    throw err;
  }
  return { app, missing };
}
