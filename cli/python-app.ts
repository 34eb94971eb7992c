/**
 * Reads a Python app file's definitions for `gantry deploy` and runs its local entrypoint for
 * `gantry run`, with the machine's python3 (GANTRY_PYTHON) and this package's `gantry` Python
 * package (python/) first on PYTHONPATH. Reading runs no function.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { packageRoot } from "../daemon/config.js";
import { resolveFunctionSpec, type Asset } from "../protocol/function-spec.js";
import { GantryError, InvalidArgumentError } from "../sdk/errors.js";
import { killAtDeadline, loadTimedOut, loadTimeoutSeconds } from "./load-timeout.js";

export interface PythonApp {
  app: string;
  module: string;
  functions: Array<{ name: string; options: unknown }>;
  entrypoints: string[];
  files: Record<string, string>;
  assets: Record<string, Asset>;
  /** Modules the app file imports that this machine does not have (read as stand-ins). */
  standins: string[];
  /** The local files and folders its images copy, by absolute path (what `gantry serve` watches). */
  local_paths?: string[];
}

/** Option names as Python app files write them (the daemon speaks camelCase). */
const SNAKE: Record<string, string> = {
  maxContainers: "max_containers",
  minContainers: "min_containers",
  bufferContainers: "buffer_containers",
  scaledownWindow: "scaledown_window",
  maxInputs: "max_inputs",
  startupTimeout: "startup_timeout",
  resultTtl: "result_ttl",
  maxRetries: "max_retries",
  backoffCoefficient: "backoff_coefficient",
  initialDelay: "initial_delay",
  maxDelay: "max_delay",
  "Image.node()": "Image.node",
};

/** A daemon message about options, in the names a Python app file uses. */
export function inPythonTerms(message: string): string {
  return message.replace(/\b(maxContainers|minContainers|bufferContainers|scaledownWindow|maxInputs|startupTimeout|resultTtl|maxRetries|backoffCoefficient|initialDelay|maxDelay)\b/g, (w) => SNAKE[w]!);
}

export function pythonCommand(): string {
  return process.env.GANTRY_PYTHON || "python3";
}

/** The environment for python: this package's `gantry` first on PYTHONPATH. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = [join(packageRoot(), "python"), process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { ...process.env, PYTHONPATH: path, PYTHONDONTWRITEBYTECODE: "1", ...extra };
}

/**
 * Runs python with these arguments; resolves with its exit code (stdio as given). With `deadline`,
 * python is killed once its seconds pass and `deadline.error()` is thrown, once it has ended.
 */
export function runPython(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdio: "inherit" | "pipe"; deadline?: { seconds: number; error: () => Error } },
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(pythonCommand(), args, { env: opts.env ?? pythonEnv(), stdio: opts.stdio === "inherit" ? "inherit" : ["ignore", "inherit", "pipe"] });
    const deadline = opts.deadline ? killAtDeadline(child, opts.deadline.seconds) : null;
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "ENOENT"
          ? new GantryError(`Python apps need ${pythonCommand()} (Python >= 3.9), which is not on PATH: install it or set GANTRY_PYTHON`, "python_missing")
          : err,
      ),
    );
    child.on("close", (code, signal) => {
      deadline?.cancel();
      if (deadline?.expired()) reject(opts.deadline!.error());
      else resolvePromise({ code: code ?? (signal ? 128 : 1), stderr });
    });
  });
}

/** Reads the app file's definitions with python3, killed if it has not finished within the load timeout (cli/load-timeout.ts). */
export async function readPythonApp(file: string, opts: { loadTimeoutS?: number } = {}): Promise<PythonApp> {
  const seconds = opts.loadTimeoutS ?? loadTimeoutSeconds();
  const dir = await mkdtemp(join(tmpdir(), "gantry-py-"));
  const out = join(dir, "manifest.json");
  try {
    const deadline = { seconds, error: () => loadTimedOut(file, seconds) };
    const { code, stderr } = await runPython(["-m", "gantry._manifest", resolve(file), out], { stdio: "pipe", deadline });
    const text = await readFile(out, "utf8").catch(() => null);
    if (text === null) throw new GantryError(`reading ${file} with ${pythonCommand()} failed (exit ${code}):\n${stderr.trim()}`);
    const result = JSON.parse(text) as PythonApp | { error: string };
    if ("error" in result) throw new InvalidArgumentError(result.error);
    for (const f of result.functions) {
      try {
        resolveFunctionSpec(f.name, f.options, "python");
      } catch (err) {
        throw new InvalidArgumentError(`${file}: ${inPythonTerms((err as Error).message)}`);
      }
    }
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
