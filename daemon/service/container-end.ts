/**
 * How a container ended, as the calls it was running see it. Whose fault it was decides what
 * happens to them: a container gantry stopped, or one lost without the function's doing, re-runs
 * its calls without using their retries; one killed for its memory limit, or whose process ended
 * by itself, fails their attempts (retries apply).
 */
import { SystemErrorType, type RemoteError } from "../../protocol/remote-error.js";
import type { ContainerExit } from "../docker/types.js";

export type ContainerEnd =
  /** gantry stopped or killed it (scaledown, a redeploy, a timeout, a cancel, shutdown). */
  | { kind: "stopped"; reason: string }
  /** It went away without the function's doing: killed from outside, an engine restart, removed, its agent unreachable. */
  | { kind: "lost"; reason: string }
  /** The kernel killed it for passing its memory limit. */
  | { kind: "out_of_memory"; reason: string; error: RemoteError }
  /** Its process ended by itself: the function's code exited or crashed it. */
  | { kind: "exited"; reason: string; error: RemoteError }
  /** It never became ready: its app failed to load, it crashed or overran its startupTimeout. */
  | { kind: "failed_to_start"; reason: string }
  /** It never ran, for a cause that is not the function's: the engine does not answer, the disk is full. */
  | { kind: "unavailable"; reason: string };

/** Exit codes of a process ended by SIGKILL or SIGTERM (agents exit 143 on SIGTERM): docker kill/stop, an engine stopping. */
const KILLED_FROM_OUTSIDE = new Set([137, 143]);

export interface EndFacts {
  containerId: string;
  /** Why gantry stopped it, when gantry did. */
  stoppedBy: string | null;
  /** What went wrong first, as the launcher saw it (startup deadline, init error, agent gone). */
  failure: string | null;
  exit: ContainerExit;
  /** The engine went away while the container ran. */
  engineRestarted: boolean;
  /** It had not become ready. */
  duringStart: boolean;
  memoryMiB: number | null;
}

export function classifyEnd(f: EndFacts): ContainerEnd {
  if (f.exit.oomKilled) {
    const limit = f.memoryMiB
      ? `its memory limit of ${f.memoryMiB} MiB (the function's memory option; raise it to give the function more)`
      : `the machine's memory (the function sets no memory limit)`;
    const message = `container ${f.containerId} ran out of memory: the kernel killed it at ${limit}`;
    return { kind: "out_of_memory", reason: message, error: { type: SystemErrorType.outOfMemory, message, traceback: "" } };
  }
  if (f.stoppedBy !== null) return { kind: "stopped", reason: f.stoppedBy };
  const said = f.failure ? `${f.failure}; ` : "";
  if (f.exit.vanished) return { kind: "lost", reason: `${said}${f.exit.why ?? "the container is gone"}` };
  if (f.engineRestarted) return { kind: "lost", reason: `${said}the Docker engine went away while it ran (exit code ${f.exit.code})` };
  if (f.duringStart) return { kind: "failed_to_start", reason: f.failure ?? f.exit.why ?? `the container exited with code ${f.exit.code}` };
  if (KILLED_FROM_OUTSIDE.has(f.exit.code)) {
    const what = f.exit.why ?? (f.failure ? `exit code ${f.exit.code}` : `it was killed from outside gantry (exit code ${f.exit.code})`);
    return { kind: "lost", reason: `${said}${what}` };
  }
  const message = `container ${f.containerId}'s process ended by itself with exit code ${f.exit.code} (the function's code exited or crashed it)${f.failure ? `: ${f.failure}` : ""}`;
  return { kind: "exited", reason: f.exit.why ? `${message}; ${f.exit.why}` : message, error: { type: SystemErrorType.containerExit, message, traceback: "" } };
}
