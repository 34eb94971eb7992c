import { spawn } from "node:child_process";
import { join } from "node:path";

export const GANTRY_BIN = join(import.meta.dirname, "..", "..", "bin", "gantry.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end, collecting its output; `input` is its stdin (a pipe, not a terminal), else none. */
export function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs the real CLI binary, as a user would, with its own GANTRY_HOME. */
export function gantry(home: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runProcess(process.execPath, [GANTRY_BIN, ...args], { ...process.env, GANTRY_HOME: home, ...env });
}

/** The gantry Python package's folder (PYTHONPATH for programs that import gantry). */
export const PYTHON_PACKAGE = join(import.meta.dirname, "..", "..", "python");

/** Runs a Python program (Debian's python3) with the gantry package, and `paths`, against the daemon of `home`. */
export function runPython(home: string, code: string, paths: string[] = []): Promise<CliResult> {
  return runProcess("/usr/bin/python3", ["-c", code], { ...process.env, PYTHONPATH: [PYTHON_PACKAGE, ...paths].join(":"), GANTRY_HOME: home });
}
