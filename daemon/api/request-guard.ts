/**
 * What a web page must not be able to do to a daemon on TCP (SECURITY.md): reach it under a name
 * that rebinds to this machine (Host), write to it or open its WebSockets from another origin
 * (Origin, Sec-Fetch-Site), or slip JSON past a browser's "simple request" rules (Content-Type).
 * The unix socket is none of a browser's business and is never checked.
 */
import type http from "node:http";
import { isIP } from "node:net";
import { ApiError } from "./errors.js";

export interface GuardOptions {
  /** HOST or HOST:PORT (an IPv6 address in brackets) the daemon answers to beyond loopback's names. */
  allowedHosts: readonly string[];
  /** Origins (scheme://host[:port]) other than the daemon's own that may write and open WebSockets. */
  allowedOrigins: readonly string[];
}

/** One TCP listener's view of the rules: its scheme and port decide what "its own" is. */
export interface Listener {
  scheme: "http" | "https";
  port: number;
}

/** Methods that read; every other one changes state and needs the daemon's own origin. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

export class RequestGuard {
  private readonly hosts: ReadonlySet<string>;
  private readonly origins: ReadonlySet<string>;

  constructor(o: GuardOptions) {
    this.hosts = new Set(o.allowedHosts.map((h) => h.toLowerCase()));
    this.origins = new Set(o.allowedOrigins.map((x) => normalOrigin(x) ?? x));
  }

  /**
   * The Host a request names must be this listener's: a loopback name or any IP address (neither
   * can be rebound) with the listener's port, or an allowed host. Throws 421 otherwise.
   */
  checkHost(req: http.IncomingMessage, l: Listener): void {
    const raw = req.headers.host;
    if (raw === undefined) return; // HTTP/1.0 without Host: no browser sends that
    const host = raw.toLowerCase();
    const parsed = splitHost(host);
    if (parsed) {
      const port = parsed.port ?? (l.scheme === "https" ? 443 : 80);
      const literal = LOOPBACK_NAMES.has(parsed.name) || isIP(parsed.name.replace(/^\[|\]$/g, "")) !== 0;
      if (literal && port === l.port) return;
      if (this.hosts.has(parsed.name) || this.hosts.has(host)) return;
    }
    throw new ApiError(
      421,
      "host_not_allowed",
      `Host ${JSON.stringify(raw)} is not a name this daemon answers to (a page on a name that resolves here could read and write it): ` +
        `it answers to localhost:${l.port}, 127.0.0.1:${l.port}, [::1]:${l.port} and IP addresses; ` +
        `to serve another name, start it with --allowed-host ${parsed?.name ?? "NAME"} (or GANTRY_ALLOWED_HOSTS)`,
      { rule: "host", allowed: [`localhost:${l.port}`, `127.0.0.1:${l.port}`, `[::1]:${l.port}`, ...this.hosts] },
    );
  }

  /**
   * A request that changes state (or opens a WebSocket) and says it comes from a page must come
   * from the daemon's own origin or an allowed one. Requests that name no origin (curl, the
   * clients, agents) pass. Throws 403 otherwise.
   */
  checkOrigin(req: http.IncomingMessage, l: Listener, upgrade = false): void {
    if (!upgrade && SAFE_METHODS.has(req.method ?? "GET")) return;
    const origin = req.headers.origin;
    const site = req.headers["sec-fetch-site"];
    const own = req.headers.host ? `${l.scheme}://${req.headers.host.toLowerCase()}` : null;
    if (origin !== undefined) {
      const o = normalOrigin(origin);
      if (o !== null && (o === own || this.origins.has(o))) return;
      throw foreignOrigin(origin, own);
    }
    // A browser that sends no Origin still says whether the request is cross-site.
    if (site === "cross-site" || site === "same-site") throw foreignOrigin(`(a ${site} page)`, own);
  }
}

function foreignOrigin(origin: string, own: string | null): ApiError {
  return new ApiError(
    403,
    "origin_not_allowed",
    `requests from ${origin} may not change this daemon or open its streams (only ${own ?? "its own origin"} may): ` +
      `to allow that origin, start the daemon with --allowed-origin ORIGIN (or GANTRY_ALLOWED_ORIGINS)`,
    { rule: "origin" },
  );
}

/** scheme://host[:port] in lower case with default ports left out; null for anything else ("null", paths). */
export function normalOrigin(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.pathname !== "/" || u.search || u.hash || u.username) return null;
  return `${u.protocol}//${u.host}`.toLowerCase();
}

/** "name:port" or "[v6]:port" → parts; null when it is not a host at all. */
function splitHost(host: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/.exec(host);
  if (!m) return null;
  return { name: m[1]!, port: m[2] === undefined ? null : Number(m[2]) };
}
