/**
 * A function's error as the caller sees it: `toRemoteError`, with the agent's own frames and
 * Node's internals left out of the traceback, so that it starts and ends in the user's code (the
 * Python agent does the same).
 */
import { toRemoteError, type RemoteError } from "../../protocol/remote-error.js";

/** The agent's bundle (this file is bundled into it): its frames are gantry's, not the function's. */
const AGENT_FILE = typeof __filename === "string" ? __filename : "/opt/gantry/agent.cjs";
const OWN_FRAME = /^\s+at .*(\(node:internal\/|at node:internal\/)/;

export function functionError(err: unknown): RemoteError {
  const e = toRemoteError(err);
  if (!e.traceback) return e;
  const lines = e.traceback.split("\n");
  const kept = lines.filter((line) => !/^\s+at /.test(line) || !(line.includes(AGENT_FILE) || OWN_FRAME.test(line)));
  return { ...e, traceback: kept.join("\n") };
}
