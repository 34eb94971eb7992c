/**
 * How an app module announces its functions. The SDK copy bundled into the user's module and the
 * runtime agent (or the deploying CLI) meet here, through a global keyed by a registered symbol, so
 * that two copies of the SDK code still see the same registry.
 *
 * A function may be defined with an anonymous handler (`export const f = app.function({}, async (x) => …)`):
 * it is named by its export once the module has loaded. `nameFunctionsByExport` does that, in the
 * one place both the CLI (reading the app at deploy) and the agent (finding its function in the
 * container) use, so both see the same names.
 */
export interface RegisteredFunction {
  /** The function's name; "" until `nameFunctionsByExport` names an anonymous one by its export. */
  name: string;
  options: unknown;
  handler: (...args: unknown[]) => unknown;
  /** What `app.function`/`app.webEndpoint` returned: the value an export of the module holds. */
  exported?: unknown;
  /** The name was given explicitly (`webEndpoint({ name })`): exports do not have to match it. */
  explicitName?: boolean;
  /** Where the app file defines it, as "file:line:column", when known. */
  definedAt?: string;
}

export interface RegisteredApp {
  name: string;
  /** The named functions, by name. */
  functions: Map<string, RegisteredFunction>;
  /** Every definition in the order of the app file, named or not yet. */
  definitions?: RegisteredFunction[];
}

const KEY = Symbol.for("gantry.app-registry");

export function appRegistry(): Map<string, RegisteredApp> {
  const g = globalThis as unknown as Record<symbol, Map<string, RegisteredApp> | undefined>;
  let reg = g[KEY];
  if (!reg) {
    reg = new Map();
    g[KEY] = reg;
  }
  return reg;
}

/** A function's name and its export disagree, or an anonymous function has no export to name it. */
export class FunctionNameError extends Error {
  override name = "FunctionNameError";
}

/**
 * Names the app's anonymous functions by the module export that holds them, and checks that a
 * named function is exported under its own name. Afterwards `app.functions` holds every function,
 * in the order the app file defines them. Throws `FunctionNameError` listing every problem.
 */
export function nameFunctionsByExport(app: RegisteredApp, moduleExports: Record<string, unknown>): void {
  const definitions = app.definitions ?? [...app.functions.values()];
  const exportNames = new Map<unknown, string[]>();
  for (const [key, value] of Object.entries(moduleExports)) {
    if (key === "default" || (typeof value !== "function" && (typeof value !== "object" || value === null))) continue;
    exportNames.set(value, [...(exportNames.get(value) ?? []), key]);
  }
  const problems: string[] = [];
  for (const def of definitions) {
    const names = def.exported === undefined ? [] : exportNames.get(def.exported) ?? [];
    const at = def.definedAt ? ` at ${def.definedAt}` : "";
    const kind = isWeb(def) ? "app.webEndpoint" : "app.function";
    if (!def.name) {
      if (names.length === 1) def.name = names[0]!;
      else if (names.length === 0) {
        problems.push(
          `the ${kind}(...)${at ? ` defined${at}` : ""} has an anonymous handler and no export to name it: ` +
            `export it (export const process_job = ${kind}(...)) or name its handler (async function process_job(...) {...})` +
            (isWeb(def) ? `, or give it { name: "api" }` : ""),
        );
      } else {
        problems.push(`the ${kind}(...)${at ? ` defined${at}` : ""} is exported under several names (${names.join(", ")}): keep one export, or name its handler`);
      }
    } else if (!def.explicitName && names.length > 0 && !names.includes(def.name)) {
      const as = names[0]!;
      problems.push(
        `function ${JSON.stringify(def.name)}${at ? ` (defined${at})` : ""} is exported as ${JSON.stringify(as)}: a function deploys under one name, so use the same for both ` +
          `(export const ${as} = ${kind}(..., async function ${as}(...) {...}), or export const ${def.name} = ${kind}(..., async function ${def.name}(...) {...})), ` +
          `or make the handler anonymous to deploy it as ${JSON.stringify(as)}`,
      );
    }
  }
  const named = new Map<string, RegisteredFunction>();
  for (const def of definitions) {
    if (!def.name) continue;
    const first = named.get(def.name);
    if (first) {
      const where = [first.definedAt, def.definedAt].filter(Boolean).join(" and ");
      problems.push(`app ${app.name} defines two functions named ${JSON.stringify(def.name)}${where ? ` (${where})` : ""}: give each its own name`);
    } else named.set(def.name, def);
  }
  if (problems.length) throw new FunctionNameError(problems.join("\n"));
  app.functions.clear();
  for (const [name, def] of named) app.functions.set(name, def);
}

const isWeb = (def: RegisteredFunction) => (def.options as { web?: unknown } | undefined)?.web !== undefined;
