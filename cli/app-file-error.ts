/**
 * An error raised while loading a user's app file, shown the way the user needs it: the stack
 * source-mapped to their files, without gantry's own frames (the SDK, the CLI, node internals,
 * the temp bundle). `gantry --verbose` shows every frame.
 */
import { join, sep } from "node:path";
import { packageRoot } from "../daemon/config.js";
import { InvalidArgumentError } from "../sdk/errors.js";

export class AppFileError extends InvalidArgumentError {
  constructor(
    message: string,
    /** The same error with every stack frame, for --verbose. */
    readonly verboseMessage: string,
  ) {
    super(message);
  }
}

/** gantry's own folders: a frame in one of these is the SDK's, the CLI's or the daemon's. */
function ownFolders(): string[] {
  const root = packageRoot();
  return ["sdk", "protocol", "cli", "daemon", "dist", "node_modules", "runtime-images"].map((d) => join(root, d) + sep);
}

/** Where a stack line points ("/path/file.ts:3:7"), or null for a frame without a file. */
function frameLocation(line: string): string | null {
  const m = /^\s*at (?:.*? \()?(.+?):\d+:\d+\)?$/.exec(line);
  return m ? m[1]! : null;
}

/**
 * The stack with only the user's frames: those in the bundle's `sources` (its source map's, so
 * not the process that loads it) outside gantry's own folders (the SDK bundled with the app).
 * When no frame is left (the error came from inside gantry), the whole stack.
 */
export function userStack(stack: string, sources: ReadonlySet<string>, own = ownFolders()): string {
  const lines = stack.split("\n");
  const firstFrame = lines.findIndex((l) => /^\s+at /.test(l));
  if (firstFrame < 0) return stack;
  const kept = lines.slice(firstFrame).filter((line) => {
    const where = frameLocation(line)?.replace(/^file:\/\//, "");
    return where !== undefined && where !== null && sources.has(where) && !own.some((dir) => where.startsWith(dir));
  });
  return kept.length ? [...lines.slice(0, firstFrame), ...kept].join("\n") : stack;
}

/** The error thrown while importing an app file's bundle (made of `sources`), as an AppFileError. */
export function loadingFailed(entry: string, err: unknown, sources: ReadonlySet<string>): AppFileError {
  const stack = (err as Error)?.stack ?? String(err);
  return new AppFileError(`loading ${entry} failed: ${userStack(stack, sources)}`, `loading ${entry} failed: ${stack}`);
}
