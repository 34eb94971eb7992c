/**
 * How an app module announces its functions. The SDK copy bundled into the user's module and the
 * runtime agent (or the deploying CLI) meet here, through a global keyed by a registered symbol, so
 * that two copies of the SDK code still see the same registry.
 */
export interface RegisteredFunction {
  name: string;
  options: unknown;
  handler: (...args: unknown[]) => unknown;
}

export interface RegisteredApp {
  name: string;
  functions: Map<string, RegisteredFunction>;
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
