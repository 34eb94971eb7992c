/**
 * How long reading an app file's definitions may take (importing it: TypeScript in a worker
 * thread, Python in python3) before gantry gives up on it: an app file that loops or waits
 * forever at import would otherwise leave `gantry deploy`, `serve` and `run` hanging for good.
 */
import type { ChildProcess } from "node:child_process";
import { InvalidArgumentError } from "../sdk/errors.js";
import { UsageError } from "./exit-codes.js";

export const DEFAULT_LOAD_TIMEOUT_S = 60;
/** The longest limit one may ask for (a day): beyond it, a typo rather than a wish. */
const MAX_LOAD_TIMEOUT_S = 24 * 3600;
export const LOAD_TIMEOUT_ENV = "GANTRY_LOAD_TIMEOUT";
export const LOAD_TIMEOUT_OPTION = "--load-timeout";
export const LOAD_TIMEOUT_HELP = `seconds an app file may take to load (import) before gantry gives up on it (default ${DEFAULT_LOAD_TIMEOUT_S}, or ${LOAD_TIMEOUT_ENV})`;

/** The limit in seconds: the option's value, else $GANTRY_LOAD_TIMEOUT, else 60. A bad value is a usage error naming where it came from. */
export function loadTimeoutSeconds(option?: string, env: NodeJS.ProcessEnv = process.env): number {
  const [raw, from] = option !== undefined ? [option, `${LOAD_TIMEOUT_OPTION}`] : [env[LOAD_TIMEOUT_ENV], LOAD_TIMEOUT_ENV];
  if (raw === undefined || raw === "") return DEFAULT_LOAD_TIMEOUT_S;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_LOAD_TIMEOUT_S) {
    throw new UsageError(`${from} must be a number of seconds above 0 and at most ${MAX_LOAD_TIMEOUT_S}, got ${JSON.stringify(raw)}`);
  }
  return seconds;
}

/** The value of `--load-timeout` among options read by hand (gantry run's, before its file), if given. */
export function loadTimeoutOption(args: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === LOAD_TIMEOUT_OPTION) value = args[++i] ?? "";
    else if (a.startsWith(`${LOAD_TIMEOUT_OPTION}=`)) value = a.slice(LOAD_TIMEOUT_OPTION.length + 1);
  }
  return value;
}

/** The error when an app file has not loaded within `seconds` (exit 2), saying how to allow longer. */
export function loadTimedOut(file: string, seconds: number): InvalidArgumentError {
  return new InvalidArgumentError(
    `${file} did not finish loading within ${seconds} s: does it loop or wait forever at import (top-level code)? ` +
      `If it needs longer, raise the limit with ${LOAD_TIMEOUT_OPTION} SECONDS or ${LOAD_TIMEOUT_ENV}=SECONDS`,
  );
}

/**
 * Kills `child` (SIGKILL: a loop at import ignores nothing less reliably) once `seconds` pass;
 * `expired` says whether it did. Call `cancel` when the child has ended.
 */
export function killAtDeadline(child: ChildProcess, seconds: number): { expired: () => boolean; cancel: () => void } {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    child.kill("SIGKILL");
  }, seconds * 1000);
  timer.unref(); // the child keeps the process alive while it runs; the timer alone need not
  return { expired: () => expired, cancel: () => clearTimeout(timer) };
}
