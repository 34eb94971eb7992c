/**
 * Which app's container sent a request: set by the container's own endpoint (its socket, or its
 * token on the Swarm hub) before the API sees the request, never read from anything the container
 * sends. Requests from the daemon's socket or TCP clients have none.
 */
import type http from "node:http";

const callers = new WeakMap<http.IncomingMessage, string>();

export function markCaller(req: http.IncomingMessage, app: string): void {
  callers.set(req, app);
}

/** The app whose container sent the request, or null for any other client. */
export function callerApp(req: http.IncomingMessage): string | null {
  return callers.get(req) ?? null;
}
