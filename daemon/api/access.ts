/**
 * Who may use the API over TCP when the daemon has a token: a request with
 * `Authorization: Bearer <token>` (CLI, SDK, scripts), or a browser holding the dashboard's session
 * cookie. The cookie is not the token but an HMAC of it (so it survives a daemon restart and dies
 * with a new token); it is HttpOnly and SameSite=Strict, and a request it authorises must come
 * from the daemon's own origin when the browser says where it comes from (Origin).
 */
import { createHmac } from "node:crypto";
import type http from "node:http";
import { hasBearer, tokenMatches } from "./token.js";

export const SESSION_COOKIE = "gantry_session";
/** A dashboard session lasts this long before the token is asked again. */
const SESSION_MAX_AGE_S = 30 * 24 * 3600;

export class Access {
  private readonly session: string | null;

  constructor(private readonly token: string | null) {
    this.session = token === null ? null : createHmac("sha256", token).update("gantry dashboard session v1").digest("base64url");
  }

  /** Whether a token guards TCP at all. */
  get guarded(): boolean {
    return this.token !== null;
  }

  /** Whether a TCP request may use the API (always, without a token). */
  allows(req: http.IncomingMessage): boolean {
    if (this.token === null) return true;
    if (hasBearer(req, this.token)) return true;
    const cookie = readCookie(req, SESSION_COOKIE);
    return cookie !== null && tokenMatches(cookie, this.session!) && sameOrigin(req);
  }

  /** Whether `given` is the daemon's token. */
  isToken(given: string): boolean {
    return this.token !== null && tokenMatches(given, this.token);
  }

  /** The Set-Cookie header that opens a dashboard session. */
  openSession(): string {
    return `${SESSION_COOKIE}=${this.session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}`;
  }

  /** The Set-Cookie header that ends it. */
  static closeSession(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}

function readCookie(req: http.IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** A request without an Origin (same-origin GETs, non-browsers) passes; one with an Origin must be the daemon's. */
function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
