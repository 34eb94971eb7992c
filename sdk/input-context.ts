/**
 * Inside a function: the input it runs. `currentInput()?.signal` is aborted when the input is asked
 * to stop (its call cancelled, past its timeout, its app stopped); pass it to fetch, timers or
 * child processes so they stop with it:
 *
 *   export const work = app.function({ maxInputs: 4 }, async function work(url: string) {
 *     const res = await fetch(url, { signal: currentInput()?.signal });
 *     …
 *   });
 *
 * Undefined outside a function's container (or outside an input: at import, in a class's enter()).
 */
import { INPUT_CONTEXT_KEY, type InputContext } from "../protocol/input-context.js";

export type { InputContext };

export function currentInput(): InputContext | undefined {
  const get = (globalThis as Record<symbol, unknown>)[INPUT_CONTEXT_KEY] as (() => InputContext | undefined) | undefined;
  return get?.();
}
