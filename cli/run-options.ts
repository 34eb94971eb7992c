/**
 * The command line of `gantry run`, read without a daemon: where its own options end and the app
 * file's begin, a TypeScript local entrypoint's options (declared with `app.localEntrypoint({ params })`)
 * converted by their types, `--help` for them, and a TypeScript function's arguments (JSON, in
 * order). The Python side reads its entrypoints' options the same way (python/gantry/_run.py).
 */
import type { EntrypointParamType } from "../sdk/app.js";
import { UsageError } from "./exit-codes.js";

/** One option of an entrypoint: its parameter's name, type and default (none: required). */
export interface OptionSpec {
  name: string;
  type: EntrypointParamType;
  default?: number | string | boolean;
}

/** gantry's command line split around the app file: `gantry [global] run [own] FILE[::NAME] [rest]`. */
export interface RunArgv {
  /** The options between `run` and the file (gantry run's own, and gantry's global ones with their values). */
  own: string[];
  target?: string;
  /** Everything after the file: the entrypoint's options, given to it as they are. */
  rest: string[];
}

/**
 * Splits gantry's arguments (process.argv without node and the script) at `run` and at the app
 * file: the first argument after `run` that is not an option (or the one after `--`). `valued`:
 * the options that take a value (`--url URL`), so that a value is not read as the file.
 */
export function splitRunArgv(argv: readonly string[], valued: ReadonlySet<string>): RunArgv {
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "run") break;
    if (valued.has(a)) i++;
  }
  const own: string[] = [];
  for (i++; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    own.push(a);
    if (valued.has(a) && i + 1 < argv.length) own.push(argv[++i]!);
  }
  return { own, ...(i < argv.length ? { target: argv[i]! } : {}), rest: argv.slice(i + 1) };
}

export interface RunFlags {
  detach: boolean;
  deploy: boolean;
  help: boolean;
}

/** gantry run's own options (before the file); gantry's global ones (`globals`, read by commander) are passed over. */
export function runFlags(own: readonly string[], globals: ReadonlySet<string>, valued: ReadonlySet<string>): RunFlags {
  const flags: RunFlags = { detach: false, deploy: true, help: false };
  for (let i = 0; i < own.length; i++) {
    const a = own[i]!;
    if (a === "--detach") flags.detach = true;
    else if (a === "--no-deploy") flags.deploy = false;
    else if (a === "-h" || a === "--help") flags.help = true;
    else if (valued.has(a)) i++;
    else if (!globals.has(a.split("=")[0]!)) {
      throw new UsageError(`gantry run has no option ${a} (its own: --detach, --no-deploy); the entrypoint's options go after the app file`);
    }
  }
  return flags;
}

/** `FILE::NAME` as [FILE, NAME]; NAME is "" when not given. */
export function splitTarget(target: string): [string, string] {
  const at = target.lastIndexOf("::");
  return at < 0 ? [target, ""] : [target.slice(0, at), target.slice(at + 2)];
}

/** `--help` or `-h` among the entrypoint's options (before a `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

export const flagOf = (name: string) => `--${name.replace(/_/g, "-")}`;

const RUN_OWN = new Set(["detach", "deploy", "no-deploy", "json", "verbose", "url", "token-file", "ca-cert", "token"]);
const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);
const article = (type: string) => (type === "int" ? "an" : "a");

function takes(specs: readonly OptionSpec[]): string {
  return specs.map((s) => `${flagOf(s.name)} (${s.type})`).join(", ") || "none";
}

function convert(spec: OptionSpec, text: string): number | string | boolean {
  const flag = flagOf(spec.name);
  switch (spec.type) {
    case "bool": {
      const t = text.toLowerCase();
      if (TRUE.has(t)) return true;
      if (FALSE.has(t)) return false;
      throw new UsageError(`${flag} is a bool flag: give ${flag} or --no-${flag.slice(2)}, not ${JSON.stringify(text)}`);
    }
    case "int": {
      const n = Number(text);
      if (!/^\s*[+-]?\d+\s*$/.test(text) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} takes an int, got ${JSON.stringify(text)}`);
      return n;
    }
    case "float": {
      const n = Number(text);
      if (!text.trim() || !Number.isFinite(n)) throw new UsageError(`${flag} takes a float, got ${JSON.stringify(text)}`);
      return n;
    }
    default:
      return text;
  }
}

/**
 * The entrypoint's options object from its command line (`--name value`, `--name=value`, `--flag`,
 * `--no-flag`; `--batch-size` or `--batch_size` for batch_size), each converted to its type and the
 * defaults filled in. `what` names it in errors ("the entrypoint main"): an unknown option, a bad
 * value or a missing required one throws a UsageError naming the option and its type.
 */
export function parseEntrypointOptions(what: string, specs: readonly OptionSpec[], args: readonly string[]): Record<string, unknown> {
  const byFlag = new Map<string, OptionSpec>();
  for (const s of specs) byFlag.set(flagOf(s.name).slice(2), s);
  for (const s of specs) if (!byFlag.has(s.name)) byFlag.set(s.name, s);
  const given: Record<string, unknown> = {};
  for (let i = 0; i < args.length; ) {
    const arg = args[i++]!;
    if (arg === "--") continue;
    if (!arg.startsWith("--")) {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}: ${what} takes options by name (--name value; it takes: ${takes(specs)})`);
    }
    const eq = arg.indexOf("=");
    const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let spec = byFlag.get(key);
    let negated = false;
    if (!spec && key.startsWith("no-") && byFlag.get(key.slice(3))?.type === "bool") {
      spec = byFlag.get(key.slice(3));
      negated = true;
    }
    if (!spec) {
      const hint = RUN_OWN.has(key) ? "; gantry run's own options (--detach, --no-deploy) and gantry's (--json, --url …) go before the file" : "";
      throw new UsageError(`${what} has no option --${key} (it takes: ${takes(specs)})${hint}`);
    }
    if (spec.type === "bool" && eq < 0) {
      given[spec.name] = !negated;
      continue;
    }
    if (negated) throw new UsageError(`--no-${flagOf(spec.name).slice(2)} takes no value`);
    let text: string;
    if (eq >= 0) text = arg.slice(eq + 1);
    else if (i < args.length) text = args[i++]!;
    else throw new UsageError(`${flagOf(spec.name)} needs a value (${spec.type})`);
    given[spec.name] = convert(spec, text);
  }
  const missing = specs.filter((s) => s.default === undefined && !(s.name in given));
  if (missing.length) throw new UsageError(`${what} needs ${missing.map((s) => `${flagOf(s.name)} (${s.type})`).join(", ")}`);
  return Object.fromEntries(specs.map((s) => [s.name, s.name in given ? given[s.name] : s.default]));
}

function describe(s: OptionSpec): string {
  const flag = flagOf(s.name);
  return s.type === "bool" ? `${flag} / --no-${flag.slice(2)}` : `${flag} ${s.type.toUpperCase()}`;
}

/** What `gantry run FILE --help` prints: the usage, what the target does, and each option with its type and default. */
export function entrypointHelp(usage: string, what: string, description: string | undefined, specs: readonly OptionSpec[]): string {
  const parts = specs.map((s) => (s.default === undefined ? describe(s) : `[${describe(s)}]`));
  const lines = [`usage: gantry run ${usage}${parts.length ? " " : ""}${parts.join(" ")}`, "", what];
  if (description) lines.push("", description);
  if (specs.length) {
    const width = Math.max(...specs.map((s) => describe(s).length));
    lines.push("", "options:");
    for (const s of specs) lines.push(`  ${describe(s).padEnd(width)}  ${s.type}, ${s.default === undefined ? "required" : `default ${JSON.stringify(s.default)}`}`);
  }
  return lines.join("\n");
}

/** A TypeScript function's arguments from the command line: each a JSON value, in order. */
export function jsonArguments(fn: string, args: readonly string[]): unknown[] {
  return args
    .filter((a) => a !== "--")
    .map((a) => {
      if (/^--[a-zA-Z]/.test(a)) {
        throw new UsageError(`${fn} is a TypeScript function: it takes its arguments in order, each as JSON (gantry run FILE::${fn} 3 '"text"'), not options like ${a.split("=")[0]}`);
      }
      try {
        return JSON.parse(a) as unknown;
      } catch (err) {
        throw new UsageError(`the argument ${JSON.stringify(a)} of ${fn} is not valid JSON (${(err as Error).message}); quote strings, e.g. '"hi"'`);
      }
    });
}

/** A function's result as `gantry run FILE::NAME` prints it: a string as it is, anything else as JSON; nothing for none. */
export function formatResult(value: unknown): string {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}
