import type { Command } from "commander";
import { dirname, extname, resolve } from "node:path";
import type { DeployEvent } from "../../protocol/api.js";
import type { GantryClient } from "../../sdk/client.js";
import { GantryError, InvalidArgumentError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import { LOAD_TIMEOUT_HELP, LOAD_TIMEOUT_OPTION, loadTimeoutSeconds } from "../load-timeout.js";
import type { Output } from "../output.js";
import type { Runner } from "../runner.js";

function bar(step: number, total: number, width = 12): string {
  const done = total ? Math.round((step / total) * width) : 0;
  return `[${"█".repeat(done)}${"░".repeat(width - done)}]`;
}

/** An app file as read for a deploy: the app's name, the daemon's request, and the local files it was made from. */
export interface ReadApp {
  name: string;
  body: Record<string, unknown>;
  /** Absolute paths of the files and folders the deploy read (the app's modules, its images' local files): what `gantry serve` watches. */
  inputs: string[];
}

/** What the daemon's deploy route takes, read from a TypeScript/JavaScript or a Python app file (within `loadTimeoutS`: cli/load-timeout.ts). */
export async function readApp(file: string, out: Output, opts: { loadTimeoutS?: number } = {}): Promise<ReadApp> {
  out.progress(`reading ${file} …`);
  if (extname(file) === ".py") {
    const { readPythonApp } = await import("../python-app.js");
    const app = await readPythonApp(file, opts);
    const standins = app.standins.length ? `; not importable here, read as stand-ins (the image must have them): ${app.standins.join(", ")}` : "";
    out.note(`✓ read ${file}: app ${app.app}, ${app.functions.length} function(s), ${Object.keys(app.files).length} Python file(s)${standins}`);
    const { app: name, functions, files, module, assets } = app;
    const inputs = [...Object.keys(files).map((f) => resolve(dirname(resolve(file)), f)), ...(app.local_paths ?? [])];
    return { name, body: { app: name, runtime: "python", functions, files, module, assets, source: file }, inputs };
  }
  const { bundleApp } = await import("../bundle-app.js"); // esbuild loads only for deploys
  const app = await bundleApp(file, opts);
  out.note(`✓ bundled ${file}: app ${app.app}, ${app.functions.length} function(s), ${(app.bundle.length / 1024).toFixed(1)} KiB`);
  const assets = Object.keys(app.assets).length ? { assets: app.assets } : {};
  return { name: app.app, body: { app: app.app, functions: app.functions, bundle: app.bundle, ...assets, source: file }, inputs: [...app.sources, ...app.localPaths] };
}

/** Deploys an app file with progress (`read`: the file as readApp read it already); resolves with the daemon's answer. */
export async function deployFile(
  file: string,
  out: Output,
  client: GantryClient,
  read?: ReadApp,
  opts: { ephemeral?: boolean; loadTimeoutS?: number } = {},
): Promise<Extract<DeployEvent, { type: "done" }>> {
  const { name, body: readBody } = read ?? (await readApp(file, out, { loadTimeoutS: opts.loadTimeoutS }));
  // Ephemeral (gantry serve): the daemon stops the app unless its client keeps heartbeating.
  const body = opts.ephemeral ? { ...readBody, ephemeral: true } : readBody;
  let done: Extract<DeployEvent, { type: "done" }> | null = null;
  let failure: Extract<DeployEvent, { type: "error" }> | null = null;
  const buildStart = new Map<string, number>();
  let stepText = "";
  /** The build's latest output lines, shown when it fails. */
  const recent: string[] = [];
  try {
    await client.transport.stream("POST", "/v1/apps/deploy", body, (line) => {
      const e = line as DeployEvent;
      switch (e.type) {
        case "image":
          if (e.status === "cached") out.note(`✓ image ${e.image} unchanged (${e.functions.join(", ")})`);
          else if (e.status === "building") {
            buildStart.set(e.image, Date.now());
            out.progress(`building image ${e.image} for ${e.functions.join(", ")} …`);
          } else out.note(`✓ built image ${e.image} in ${((Date.now() - buildStart.get(e.image)!) / 1000).toFixed(1)} s`);
          break;
        case "build": {
          const line = e.line.trim();
          const step = /^Step \d+\/\d+ : (.*)$/.exec(line);
          if (step) {
            stepText = step[1]!;
            // gantry's own ARG lines (the host's index settings) say nothing a reader needs.
            if (!process.stderr.isTTY && !/^ARG /.test(stepText)) out.note(`  [${e.step}/${e.total}] ${stepText}`);
          } else if (line && !/^(---> |Removing intermediate container|Successfully (built|tagged))/.test(line)) {
            recent.push(line);
            if (recent.length > 30) recent.shift();
          }
          if (process.stderr.isTTY) {
            const latest = step ? "" : recent.at(-1) ?? "";
            out.progress(`building ${e.image.slice(0, 26)} ${bar(e.step, e.total)} ${e.step}/${e.total} ${stepText}${latest ? ` · ${latest}` : ""}`);
          }
          break;
        }
        case "log":
          out.note(e.line);
          break;
        case "done":
          done = e;
          break;
        case "error":
          failure = e;
          break;
      }
    });
  } finally {
    out.endProgress();
  }
  const quoted = (failure as Extract<DeployEvent, { type: "error" }> | null)?.error.message.includes("last lines of the build") ?? false;
  if (failure && recent.length && !out.json && !quoted) out.note(`last build output:\n${recent.map((l) => `  ${l}`).join("\n")}`);
  if (failure) {
    const error = (failure as Extract<DeployEvent, { type: "error" }>).error;
    const message = extname(file) === ".py" ? (await import("../python-app.js")).inPythonTerms(error.message) : error.message;
    if (error.code === "invalid_argument") throw new InvalidArgumentError(`deploy of ${name} failed: ${message}`);
    throw new GantryError(`deploy of ${name} failed: ${message}`, "deploy_failed");
  }
  if (!done) throw new GantryError(`the daemon ended the deploy of ${name} without an answer; see its log`);
  return done;
}

export function registerDeploy(program: Command, run: Runner): void {
  program
    .command("deploy")
    .argument("<file>", "app file: .ts, .mts, .js, .mjs or .py")
    .description("read an app file, build its images (with progress) and register its functions")
    .option(`${LOAD_TIMEOUT_OPTION} <seconds>`, LOAD_TIMEOUT_HELP)
    .action(run<{ loadTimeout?: string }>(async (g, file) => {
      const loadTimeoutS = loadTimeoutSeconds(g.loadTimeout);
      const { out, client } = makeContext(g);
      const started = Date.now();
      const d = await deployFile(file!, out, client, undefined, { loadTimeoutS }).finally(() => client.close());
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      out.result(d, () =>
        `✓ deployed app ${d.app}${d.version ? ` v${d.version}` : ""} in ${secs} s (${d.built.length} image(s) built, ${d.cached.length} unchanged)\n` +
          d.functions
            .map((f) => {
              const gpu = f.gpu ? `, gpu ${f.gpu.join(" or ")}` : "";
              const onSocket = (url: string) => (url.startsWith("/") ? " (on the daemon's socket; start it with --http-port to serve TCP)" : "");
              const urls = [...(f.web_url ? [["web endpoint", f.web_url]] : []), ...Object.entries(f.web_methods ?? {}).map(([m, url]) => [`${m} (web)`, url])];
              const web = urls.map(([what, url]) => `\n    ${what}: ${url}${onSocket(url!)}`).join("");
              const params = f.params?.length ? `(${f.params.map((p) => `${p.name}: ${p.type}`).join(", ")})` : "";
              const what = f.methods ? `class ${f.name}${params}: ${f.methods.join(", ")}` : f.name;
              return `  ${what}  (max ${f.max_containers} containers × ${f.max_inputs} inputs, timeout ${f.timeout_s} s, retries ${f.retries}${gpu})${web}`;
            })
            .join("\n"),
      );
    }));
}
