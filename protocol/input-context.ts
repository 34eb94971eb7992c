/**
 * What the Node agent shares with the function running an input (issue 22): its call ID and
 * attempt, and an AbortSignal aborted when the daemon asks the input to stop (the call was
 * cancelled, ran past its timeout, or its app stopped). Reached through globalThis under a
 * registered symbol, so whichever copy of the SDK an app bundle holds finds the agent's.
 */
export const INPUT_CONTEXT_KEY = Symbol.for("gantry.currentInput");

export interface InputContext {
  callId: string;
  attempt: number;
  /** Aborted (its reason an Error named InputCancellation) when the daemon asks this input to stop. */
  signal: AbortSignal;
}
