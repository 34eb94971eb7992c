/**
 * Sandboxes' answer shapes (protocol/sandboxes.ts has the routes and the request schemas), apart
 * from them so that the dashboard reads them too: nothing here needs Node or zod.
 */
export type SandboxState =
  /** Its image is being built or its container started. */
  | "pending"
  | "running"
  /** Its main command exited by itself (returncode is its exit code). */
  | "finished"
  /** Its timeout or idle timeout ended it (returncode 124). */
  | "timed_out"
  /** terminate(), a daemon restart or stop ended it (returncode 137). */
  | "terminated"
  /** It never started: its image did not build, a secret or volume is missing… (`error` says). */
  | "failed";

export const ENDED_STATES: ReadonlySet<SandboxState> = new Set(["finished", "timed_out", "terminated", "failed"]);

export interface SandboxView {
  id: string;
  app: string;
  name: string | null;
  state: SandboxState;
  /** null while it runs (or when it failed to start). */
  returncode: number | null;
  /** Why it failed, timed out or was terminated, in words; null otherwise. */
  error: string | null;
  /** "idle" when its idle timeout ended it; "timeout" for its timeout; null otherwise. */
  timeout_kind: "timeout" | "idle" | null;
  command: string[];
  image: string | null;
  tags: Record<string, string>;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  timeout: number;
  idle_timeout: number | null;
  block_network: boolean;
  pty: boolean;
  /** Execs running now. */
  running_execs: number;
}

export interface ProcessView {
  id: string;
  sandbox_id: string;
  command: string[];
  running: boolean;
  returncode: number | null;
  pty: boolean;
  started_at: string;
  ended_at: string | null;
  /** Bytes written so far to each stream, and whether some were dropped past the limit. */
  stdout_bytes: number;
  stderr_bytes: number;
  dropped: boolean;
}

export interface SandboxEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  mtime: number;
}
