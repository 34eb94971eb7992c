/**
 * `gantry run [--detach] [--no-deploy] FILE[::NAME] [options]`, as Modal's `modal run`: deploys the
 * app file (nothing is rebuilt if unchanged), then runs its local entrypoint here with the options
 * after the file, or, for `::NAME` naming a function, calls that function remotely and prints its
 * result. The name and the options are checked before anything deploys.
 *
 * A Python file runs in python3 (python/gantry/_run.py); a TypeScript or JavaScript one in this
 * process (its entrypoints' options are declared: sdk/app.ts `localEntrypoint`). Ctrl-C ends the run;
 * without --detach it first cancels the calls the run spawned that may still run (the app stays
 * deployed: a run that ends by itself leaves its calls as they are).
 */
import type { Command } from "commander";
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { extname } from "node:path";
import type { RegisteredApp } from "../../protocol/registry.js";
import type { LocalEntrypointDefinition } from "../../sdk/app.js";
import type { GantryClient } from "../../sdk/client.js";
import { GantryError } from "../../sdk/errors.js";
import { gantryHome } from "../../sdk/transport.js";
import { clientCaFile, clientToken, makeContext, type GlobalOptions } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { killAtDeadline, LOAD_TIMEOUT_HELP, LOAD_TIMEOUT_OPTION, loadTimedOut, loadTimeoutOption, loadTimeoutSeconds } from "../load-timeout.js";
import type { Output } from "../output.js";
import type { Runner } from "../runner.js";
import {
  entrypointHelp,
  formatResult,
  jsonArguments,
  parseEntrypointOptions,
  runFlags,
  splitRunArgv,
  splitTarget,
  wantsHelp,
  type RunFlags,
} from "../run-options.js";
import { deployFile } from "./deploy.js";

const SCRIPT_EXTENSIONS = new Set([".ts", ".mts", ".js", ".mjs"]);
type LoadTimeout = { loadTimeoutS: number };
const EXIT_INTERRUPTED = 130;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

const HELP = `
The options after the app file are the entrypoint's (or the function's): gantry run FILE --help lists
them. Python: the parameters of the @app.local_entrypoint() (or @app.function()), typed by their
annotations or defaults: --n 4, --label x, --flag / --no-flag. TypeScript: the params declared in
app.localEntrypoint({ params: { n: { type: "int", default: 1 } } }, main); a TypeScript function
(FILE::NAME) takes its arguments in order, as JSON.

FILE::NAME picks a local entrypoint, or a function: it runs remotely and its result is printed.
Without ::NAME: the file's one local entrypoint, else its one function.

Ctrl-C cancels the calls this run spawned that may still run, unless --detach. A run that ends by
itself leaves its calls as they are (the app stays deployed; gantry apps stop ends it).`;

export function registerRun(program: Command, run: Runner): void {
  const cmd = program
    .command("run")
    .usage("[--detach] [--no-deploy] FILE[::NAME] [options of the entrypoint]")
    .argument("[file]", "an app file (.py, .ts, .mts, .js, .mjs), or FILE::NAME: a local entrypoint or a function")
    .argument("[args...]", "the entrypoint's options, after the file")
    .option("--detach", "on Ctrl-C, leave the calls this run spawned running (without it they are cancelled)")
    .option("--no-deploy", "run against the app as it is deployed, without deploying the file first")
    .option(`${LOAD_TIMEOUT_OPTION} <seconds>`, LOAD_TIMEOUT_HELP)
    .helpOption(false)
    .option("-h, --help", "this help; after the file: the entrypoint's options")
    .allowUnknownOption()
    .allowExcessArguments()
    .description("deploy an app file (nothing is rebuilt if unchanged), then run its local entrypoint here, or one of its functions")
    .addHelpText("after", HELP);
  cmd.action(
    run(async (o) => {
      // Commander reads options anywhere; gantry run's own come before the file, the rest is the entrypoint's as written.
      const valued = new Set(program.options.filter((x) => x.required || x.optional).flatMap((x) => [x.long, x.short].filter((f): f is string => !!f)));
      const globals = new Set(program.options.flatMap((x) => [x.long, x.short].filter((f): f is string => !!f)));
      valued.add(LOAD_TIMEOUT_OPTION); // run's own option with a value, read here (runFlags passes it over)
      globals.add(LOAD_TIMEOUT_OPTION);
      const argv = splitRunArgv(process.argv.slice(2), valued);
      const flags = { ...runFlags(argv.own, globals, valued), loadTimeoutS: loadTimeoutSeconds(loadTimeoutOption(argv.own)) };
      if (flags.help) {
        cmd.outputHelp();
        return;
      }
      if (!argv.target) throw new UsageError("gantry run needs an app file: gantry run FILE[::NAME] [options] (gantry run --help)");
      const [file, name] = splitTarget(argv.target);
      const ext = extname(file);
      if (ext === ".py") {
        process.exitCode = await runPythonFile(argv.target, file, argv.rest, flags, o);
      } else if (SCRIPT_EXTENSIONS.has(ext)) {
        await runScriptFile(file, name, argv.rest, flags, o);
      } else {
        throw new UsageError(`gantry run takes an app file ending in .py, .ts, .mts, .js or .mjs, not ${file}`);
      }
    }),
  );
}

/** The daemon --url, --token-file and --ca-cert name, as the environment the SDKs read (GANTRY_URL, …). */
function daemonEnv(o: GlobalOptions): Record<string, string> {
  const url = o.url ?? process.env.GANTRY_URL;
  const token = url ? clientToken(o) : undefined;
  const ca = url ? clientCaFile(o) : undefined;
  return { ...(url ? { GANTRY_URL: url } : {}), ...(token ? { GANTRY_TOKEN: token } : {}), ...(ca ? { GANTRY_CA_CERT: ca.path } : {}) };
}

async function deploy(file: string, out: Output, client: GantryClient, loadTimeoutS: number): Promise<void> {
  const d = await deployFile(file, out, client, undefined, { loadTimeoutS });
  out.note(`✓ deployed app ${d.app} (${d.built.length} image(s) built, ${d.cached.length} unchanged)`);
}

/** Runs `python3 -m gantry._run ARGS`; resolves with its exit status. A signal for this process goes to it too. With `deadline`, it is killed then. */
async function python(args: string[], env: NodeJS.ProcessEnv, deadline?: { seconds: number; error: () => Error }): Promise<number> {
  const { pythonCommand } = await import("../python-app.js");
  return new Promise((resolvePromise, reject) => {
    const child = spawn(pythonCommand(), ["-m", "gantry._run", ...args], { env, stdio: "inherit" });
    const killer = deadline ? killAtDeadline(child, deadline.seconds) : null;
    // Ctrl-C on a terminal reaches the child as well: it treats the two copies as one.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const s of SIGNALS) process.on(s, forward);
    const done = () => {
      for (const s of SIGNALS) process.off(s, forward);
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      done();
      reject(
        err.code === "ENOENT"
          ? new GantryError(`Python apps need ${pythonCommand()} (Python >= 3.9), which is not on PATH: install it or set GANTRY_PYTHON`, "python_missing")
          : err,
      );
    });
    child.on("close", (code, signal) => {
      done();
      killer?.cancel();
      if (killer?.expired()) reject(deadline!.error());
      else resolvePromise(code ?? 128 + (signal ? constants.signals[signal] : 1));
    });
  });
}

async function runPythonFile(target: string, file: string, rest: string[], flags: RunFlags & LoadTimeout, o: GlobalOptions): Promise<number> {
  const { pythonEnv } = await import("../python-app.js");
  const env = pythonEnv({ GANTRY_HOME: gantryHome(), ...daemonEnv(o) });
  // Both the help and the check import the app: within the load timeout.
  const loading = { seconds: flags.loadTimeoutS, error: () => loadTimedOut(file, flags.loadTimeoutS) };
  if (wantsHelp(rest)) return python([target, ...rest], env, loading);
  // The name and the options first: a typo is refused before anything is built.
  const checked = await python(["--check", target, ...rest], env, loading);
  if (checked !== 0) return checked;
  if (flags.deploy) {
    const { out, client } = makeContext(o);
    await deploy(file, out, client, flags.loadTimeoutS).finally(() => client.close());
  }
  return python([...(flags.detach ? ["--detach"] : []), target, ...rest], env);
}

type ScriptTarget = { kind: "entrypoint"; entrypoint: LocalEntrypointDefinition } | { kind: "function"; name: string };

/** The entrypoint or function NAME names; without a name, the one entrypoint, else the one function. */
function pickScriptTarget(file: string, app: RegisteredApp, name: string): ScriptTarget {
  const entrypoints = (app as { localEntrypoints?: Map<string, LocalEntrypointDefinition> }).localEntrypoints ?? new Map<string, LocalEntrypointDefinition>();
  const isClass = (n: string) => (app.functions.get(n)?.options as { cls?: unknown } | undefined)?.cls !== undefined;
  const functions = [...app.functions.keys()].filter((n) => !isClass(n)).sort();
  const known = `local entrypoints: ${[...entrypoints.keys()].sort().join(", ") || "none"}; functions: ${functions.join(", ") || "none"}`;
  if (name) {
    const entrypoint = entrypoints.get(name);
    if (entrypoint) return { kind: "entrypoint", entrypoint };
    if (functions.includes(name)) return { kind: "function", name };
    if (app.functions.has(name)) throw new UsageError(`${name} in ${file} is a class: gantry run runs a local entrypoint or a function (${known})`);
    throw new UsageError(`${file} has no local entrypoint or function named ${JSON.stringify(name)} (${known})`);
  }
  if (entrypoints.size === 1) return { kind: "entrypoint", entrypoint: [...entrypoints.values()][0]! };
  if (entrypoints.size > 1) {
    const names = [...entrypoints.keys()].sort();
    throw new UsageError(`${file} has ${names.length} local entrypoints (${names.join(", ")}): name one, e.g. gantry run ${file}::${names[0]}`);
  }
  if (functions.length === 1) return { kind: "function", name: functions[0]! };
  if (functions.length) {
    throw new UsageError(`${file} has no local entrypoint and ${functions.length} functions (${functions.join(", ")}): name one, e.g. gantry run ${file}::${functions[0]}`);
  }
  throw new UsageError(`${file} has no local entrypoint: add one with app.localEntrypoint(async function main() {…})`);
}

async function runScriptFile(file: string, name: string, rest: string[], flags: RunFlags & LoadTimeout, o: GlobalOptions): Promise<void> {
  const { loadAppLocally } = await import("../bundle-app.js"); // esbuild loads only here
  const { out, client } = makeContext(o);
  Object.assign(process.env, daemonEnv(o)); // the app's `new GantryClient()` reaches the daemon this run deploys to
  try {
    const { app, standins } = await loadAppLocally(file, { loadTimeoutS: flags.loadTimeoutS });
    if (standins.length) out.note(`[gantry] not importable here, read as stand-ins: ${standins.join(", ")}`);
    const target = pickScriptTarget(file, app, name);
    const label = target.kind === "entrypoint" ? target.entrypoint.name : target.name;
    if (wantsHelp(rest)) {
      const help =
        target.kind === "entrypoint"
          ? entrypointHelp(`${file}::${label}`, `Runs the local entrypoint ${label} of app ${app.name} here.`, target.entrypoint.description, target.entrypoint.params)
          : `usage: gantry run ${file}::${label} [JSON ...]\n\nRuns the function ${label} of app ${app.name} remotely, with these arguments (each a JSON value, in order), and prints its result.`;
      process.stdout.write(help + "\n");
      return;
    }
    const input = target.kind === "entrypoint" ? parseEntrypointOptions(`the entrypoint ${label}`, target.entrypoint.params, rest) : jsonArguments(label, rest);
    if (flags.deploy) await deploy(file, out, client, flags.loadTimeoutS);
    await interruptible(client, flags.detach, async () => {
      if (target.kind === "entrypoint") {
        await target.entrypoint.handler(input as Record<string, unknown>);
        return;
      }
      const fn = await client.functions.fromName(app.name, label);
      if (fn.info.generator) {
        for await (const item of fn.remoteGen(...(input as unknown[]))) out.result(item, () => formatResult(item));
        return;
      }
      const result = await fn.remote(...(input as unknown[]));
      out.result(result, () => formatResult(result));
    });
  } finally {
    client.close();
    // The entrypoint may leave handles open (a client's sockets, a timer): the run ends with it.
    setTimeout(() => process.exit(), 100).unref();
  }
}

/**
 * Runs `body`; on Ctrl-C (SIGINT, SIGTERM, SIGHUP) cancels the calls it spawned that may still run,
 * unless `detach`, and exits 130. A second Ctrl-C while cancelling exits at once.
 */
async function interruptible(client: GantryClient, detach: boolean, body: () => Promise<void>): Promise<void> {
  const { cancelCalls, trackSpawnedCalls } = await import("../spawned-calls.js");
  const tracker = trackSpawnedCalls();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      if (signal !== "SIGINT") return;
      process.stderr.write("[gantry] interrupted again: calls not yet cancelled go on\n");
      process.exit(EXIT_INTERRUPTED);
    }
    interrupted = true;
    const n = tracker.calls.size;
    if (detach || n === 0) {
      const left = !detach ? "" : n ? ` (--detach): the ${n} call(s) this run spawned and did not see finish go on` : " (--detach): no call this run spawned is left running";
      process.stderr.write(`\n[gantry] interrupted${left}\n`);
      process.exit(EXIT_INTERRUPTED);
    }
    process.stderr.write(`\n[gantry] interrupted: cancelling the ${n} call(s) this run spawned that may still run (--detach leaves them running) …\n`);
    void cancelCalls(client, tracker.calls).then(
      ({ cancelled, failed }) => {
        process.stderr.write(`[gantry] cancelled ${cancelled} call(s)${failed ? `; ${failed} could not be cancelled (gantry calls ls shows them)` : ""}\n`);
        process.exit(EXIT_INTERRUPTED);
      },
      () => process.exit(EXIT_INTERRUPTED),
    );
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    await body();
  } catch (err) {
    if (!interrupted) throw err;
  } finally {
    if (!interrupted) {
      tracker.stop();
      for (const s of SIGNALS) process.off(s, onSignal);
    }
  }
  // Interrupted: what the entrypoint does now (a cancelled call's error, say) is not the run's end; the cancelling is.
  if (interrupted) await new Promise<never>(() => {});
}
