/**
 * Which container sent a request: its app, and the volumes it mounts. Set by the container's own
 * endpoint (its socket, or its token on the Swarm hub) before the API sees the request, never read
 * from anything the container sends. Requests from the daemon's socket or TCP clients have none.
 */
import type http from "node:http";

/** What the daemon knows of a container when it launches it; its requests carry it. */
export interface CallerContainer {
  app: string;
  /** The volumes its function mounts, as launched (a later redeploy does not widen them). */
  volumes: ReadonlyArray<{ name: string; readOnly: boolean }>;
}

const callers = new WeakMap<http.IncomingMessage, CallerContainer>();

export function markCaller(req: http.IncomingMessage, caller: CallerContainer): void {
  callers.set(req, caller);
}

/** The app whose container sent the request, or null for any other client. */
export function callerApp(req: http.IncomingMessage): string | null {
  return callers.get(req)?.app ?? null;
}

/** The container that sent the request, or null for any other client. */
export function callerContainer(req: http.IncomingMessage): CallerContainer | null {
  return callers.get(req) ?? null;
}
