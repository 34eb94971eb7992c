/**
 * Who may use the API over TCP when the daemon has a token: a request with the token
 * (`Authorization: Bearer <token>`: CLI, SDK, scripts), or a browser holding an open dashboard
 * session (the `gantry_session` cookie: a random id the daemon keeps, hashed, until sign-out, 30
 * days, or a new token). The cookie is HttpOnly and SameSite=Strict, and a request it authorises
 * must come from the daemon's own origin when the browser says where it comes from (Origin).
 *
 * Guessing is limited per client address (DESIGN 1.12): an address that presented 10 wrong tokens
 * within a minute (on /v1, the status stream, web endpoints or the sign-in) is answered 429 with
 * Retry-After for every token it presents until then, the right one too, so that guessing cannot
 * go on. Other addresses are unaffected; the unix socket never comes here. A session cookie that
 * is not (or no longer) open is refused (401) without counting: its id is 256 random bits, not
 * something to guess, and a browser left open on a dead session must not lock its own address out.
 */
import type http from "node:http";
import type { TLSSocket } from "node:tls";
import { addressKey, AttemptLimiter } from "../core/attempt-limit.js";
import type { Sessions } from "../service/sessions.js";
import { ApiError } from "./errors.js";
import { tokenMatches } from "./token.js";

export const SESSION_COOKIE = "gantry_session";
const TOKEN_HEADER = "x-gantry-token";

export interface AccessOptions {
  /** The daemon's token; null: TCP is open to whoever reaches it (loopback only). */
  token: string | null;
  /** The dashboard's sessions (needed with a token). */
  sessions: Pick<Sessions, "open" | "verify" | "close" | "ttlMs"> | null;
  /** Wrong tokens per address (default: 10 a minute). */
  limiter?: AttemptLimiter;
  clock?: () => number;
}

/** What a request presented that could open the API. */
interface Presented {
  bearer: string | null;
  header: string | null;
  cookie: string | null;
}

/** The credentials a place takes: /v1 and the status stream ("api"), or web endpoints ("token"). */
type Takes = "api" | "token";

export class Access {
  private readonly token: string | null;
  private readonly limiter: AttemptLimiter;
  private readonly now: () => number;

  constructor(private readonly o: AccessOptions) {
    this.token = o.token;
    if (o.token !== null && o.sessions === null) throw new Error("Access: a daemon with a token needs its sessions");
    this.limiter = o.limiter ?? new AttemptLimiter();
    this.now = o.clock ?? Date.now;
  }

  /** Whether a token guards TCP at all. */
  get guarded(): boolean {
    return this.token !== null;
  }

  /**
   * Lets a TCP request to /v1 (or the status stream) through, or throws: 429 while its address is
   * limited and it presents a token, else 401 (a missing or wrong token, a session that has ended).
   */
  authorize(req: http.IncomingMessage): void {
    const refusal = this.check(req, "api");
    if (refusal) throw refusal;
  }

  /**
   * Lets a TCP request to a web endpoint that is not public through (the token by
   * `Authorization: Bearer` or `X-Gantry-Token`; no cookie), or throws 401 or 429 as `authorize`.
   * Returns whether Authorization carried the token (the function must not see it then).
   */
  authorizeToken(req: http.IncomingMessage): { viaAuthorization: boolean } {
    const refusal = this.check(req, "token");
    if (refusal) throw refusal;
    const bearer = presented(req, "token").bearer;
    return { viaAuthorization: bearer !== null && this.token !== null && tokenMatches(bearer, this.token) };
  }

  /** Whether the request is signed in (GET /v1/session); a wrong token still counts, and a limited address gets 429. */
  signedIn(req: http.IncomingMessage): boolean {
    const refusal = this.check(req, "api");
    if (refusal?.status === 429) throw refusal;
    return refusal === null;
  }

  /**
   * Trades the token for a session (POST /v1/session): the Set-Cookie header, or 401/429 as
   * `authorize` (`remote`: it came over TCP; the unix socket is never limited).
   */
  signIn(req: http.IncomingMessage, given: string, remote = true): string {
    if (this.token === null) throw new Error("Access.signIn: the daemon has no token");
    const key = addressKey(req.socket.remoteAddress);
    if (remote) this.refuseIfLimited(key);
    if (!tokenMatches(given, this.token)) {
      if (remote) this.limiter.fail(key, this.now());
      throw new ApiError(401, "unauthorized", "wrong token: it is the daemon's token (its --token-file, or GANTRY_TOKEN)");
    }
    const session = this.o.sessions!.open();
    return cookie(req, session.id, Math.floor(this.o.sessions!.ttlMs / 1000));
  }

  /** Ends the session the request's cookie names (DELETE /v1/session); the Set-Cookie header that clears it. */
  signOut(req: http.IncomingMessage): string {
    const id = presented(req, "api").cookie;
    if (id !== null) this.o.sessions?.close(id);
    return cookie(req, "", 0);
  }

  /** Null when the request may pass; otherwise the error that refuses it (a failure counted when it is one). */
  private check(req: http.IncomingMessage, takes: Takes): ApiError | null {
    if (this.token === null) return null;
    const p = presented(req, takes);
    if (p.bearer !== null || p.header !== null) {
      // A token decides, whatever cookie comes with it.
      const key = addressKey(req.socket.remoteAddress);
      const limited = this.limited(key);
      if (limited) return limited;
      if ((p.bearer !== null && tokenMatches(p.bearer, this.token)) || (p.header !== null && tokenMatches(p.header, this.token))) return null;
      this.limiter.fail(key, this.now());
      return new ApiError(401, "unauthorized", `wrong token: ${how(takes)}`);
    }
    if (p.cookie !== null) {
      if (this.o.sessions!.verify(p.cookie) && sameOrigin(req)) return null;
      return new ApiError(
        401,
        "unauthorized",
        "the dashboard session has ended (signed out, 30 days old, or the daemon's token changed): sign in again",
        {},
        { "set-cookie": cookie(req, "", 0) }, // the browser stops sending it
      );
    }
    return new ApiError(401, "unauthorized", `missing token: ${how(takes)}`);
  }

  private refuseIfLimited(key: string): void {
    const limited = this.limited(key);
    if (limited) throw limited;
  }

  private limited(key: string): ApiError | null {
    return tooManyAttempts(this.limiter, key, this.now());
  }
}

/** The 429 (with Retry-After) for an address `limiter` holds back at `now`; null when it may try. */
export function tooManyAttempts(limiter: AttemptLimiter, key: string, now: number): ApiError | null {
  const waitMs = limiter.blockedForMs(key, now);
  if (waitMs <= 0) return null;
  const s = Math.max(1, Math.ceil(waitMs / 1000));
  const { max, windowMs } = limiter.options;
  return new ApiError(
    429,
    "too_many_attempts",
    `${max} wrong tokens from ${key} within ${windowMs / 1000} s: no token is taken from there for ${s} s more; wait, then send the right one`,
    { retry_after_s: s },
    { "retry-after": String(s) },
  );
}

const how = (takes: Takes) =>
  takes === "api"
    ? "send Authorization: Bearer <token>, or sign in to the dashboard"
    : "send Authorization: Bearer <token> or X-Gantry-Token (or make the endpoint public)";

function presented(req: http.IncomingMessage, takes: Takes): Presented {
  const auth = req.headers.authorization;
  const header = req.headers[TOKEN_HEADER];
  return {
    bearer: auth ? auth.replace(/^Bearer /, "") : null,
    header: takes === "token" && typeof header === "string" && header !== "" ? header : null,
    cookie: takes === "api" ? readCookie(req, SESSION_COOKIE) : null,
  };
}

/** The Set-Cookie header for `value` (empty with maxAgeS 0: the browser forgets it); Secure over TLS. */
function cookie(req: http.IncomingMessage, value: string, maxAgeS: number): string {
  const secure = (req.socket as TLSSocket).encrypted ? "; Secure" : "";
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure}`;
}

function readCookie(req: http.IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value === "" ? null : value;
    }
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
