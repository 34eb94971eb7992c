import type { Command } from "commander";
import { GantryError, RemoteError } from "../sdk/errors.js";
import { AppFileError } from "./app-file-error.js";
import type { GlobalOptions } from "./context.js";
import { exitCodeFor } from "./exit-codes.js";

/** Wraps a verb: gives it its options (global ones included) and positional arguments, and turns
 * any error into one `Error: …` line on stderr (JSON with --json) and the documented exit code. */
export type Runner = <O = object>(
  fn: (opts: O & GlobalOptions, ...args: string[]) => Promise<void>,
) => (...a: unknown[]) => Promise<void>;

export const run: Runner = (fn) => async (...a) => {
  const cmd = a[a.length - 1] as Command;
  const opts = cmd.optsWithGlobals();
  const positional = a.slice(0, -2).flat().filter((x): x is string => typeof x === "string"); // variadic arguments arrive as an array
  try {
    await fn(opts as never, ...positional);
  } catch (err) {
    report(err, Boolean(opts.json), Boolean(opts.verbose));
    process.exitCode = exitCodeFor(err);
  }
};

function report(err: unknown, json: boolean, verbose: boolean): void {
  // An app file's error shows the app's frames only; --verbose shows gantry's too.
  const message = (e: Error) => (verbose && e instanceof AppFileError ? e.verboseMessage : e.message);
  if (json) {
    const e = err as GantryError;
    const body: Record<string, unknown> = { code: e instanceof GantryError ? e.code : "error", message: e instanceof Error ? message(e) : String(err) };
    if (err instanceof RemoteError) Object.assign(body, { type: err.remoteType, traceback: err.traceback });
    process.stdout.write(JSON.stringify({ error: body }, null, 2) + "\n");
    return;
  }
  if (err instanceof RemoteError) {
    process.stderr.write(`Error: ${err.message}\n${err.traceback ? err.traceback.replace(/^/gm, "  ") + "\n" : ""}`);
  } else if (err instanceof GantryError) {
    process.stderr.write(`Error: ${message(err)}\n`);
  } else {
    process.stderr.write(`Error: ${(err as Error)?.stack ?? String(err)}\n`);
  }
}
