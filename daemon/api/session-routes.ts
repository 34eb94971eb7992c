/**
 * The dashboard's session (DESIGN 1.10): a browser trades the token for an HttpOnly cookie once,
 * so the token never sits in a URL, in page storage or in the daemon's logs. Wrong tokens are
 * limited to a few a minute, so the token cannot be guessed by trying.
 */
import { Access } from "./access.js";
import { ApiError, invalid } from "./errors.js";
import { readJson, type Router } from "./http-kit.js";

const FAILURES_PER_MINUTE = 10;

export function registerSessionRoutes(r: Router, access: Access, now: () => number = Date.now): void {
  let failures: number[] = [];

  /** Whether this browser must sign in (TCP with a token) and whether it has. */
  r.on("GET", "/v1/session", async ({ req, remote }) => {
    const required = remote && access.guarded;
    return { status: 200, body: { token_required: required, signed_in: !required || access.allows(req) } };
  });

  r.on("POST", "/v1/session", async ({ req, res }) => {
    if (!access.guarded) return { status: 200, body: { token_required: false, signed_in: true } };
    const t = now();
    failures = failures.filter((at) => at > t - 60_000);
    if (failures.length >= FAILURES_PER_MINUTE) {
      throw new ApiError(429, "too_many_attempts", `${FAILURES_PER_MINUTE} wrong tokens within a minute: wait a minute before trying again`);
    }
    const body = (await readJson(req, 4096)) as { token?: unknown } | undefined;
    if (typeof body?.token !== "string" || body.token === "") throw invalid(`the body must be {"token": "…"}`);
    if (!access.isToken(body.token)) {
      failures.push(t);
      throw new ApiError(401, "unauthorized", "wrong token: it is the daemon's --token (or GANTRY_TOKEN)");
    }
    res.setHeader("set-cookie", access.openSession());
    return { status: 200, body: { token_required: true, signed_in: true } };
  });

  r.on("DELETE", "/v1/session", async ({ res }) => {
    res.setHeader("set-cookie", Access.closeSession());
    return { status: 200, body: { token_required: access.guarded, signed_in: !access.guarded } };
  });
}
