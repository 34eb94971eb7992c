/**
 * The dashboard's session (DESIGN 1.10, 1.12): a browser trades the token for an HttpOnly cookie
 * once, so the token never sits in a URL, in page storage or in the daemon's logs. The cookie names
 * a session the daemon keeps (see Access); signing out ends it there, not only in the browser.
 * Wrong tokens are limited per client address (see Access), so the token cannot be guessed by
 * trying, and one address trying cannot lock the others out.
 */
import type { Access } from "./access.js";
import { invalid } from "./errors.js";
import { readJson, type Router } from "./http-kit.js";

export function registerSessionRoutes(r: Router, access: Access): void {
  /** Whether this browser must sign in (TCP with a token) and whether it has. */
  r.on("GET", "/v1/session", async ({ req, remote }) => {
    const required = remote && access.guarded;
    return { status: 200, body: { token_required: required, signed_in: !required || access.signedIn(req) } };
  });

  r.on("POST", "/v1/session", async ({ req, res, remote }) => {
    if (!access.guarded) return { status: 200, body: { token_required: false, signed_in: true } };
    const body = (await readJson(req, 4096)) as { token?: unknown } | undefined;
    if (typeof body?.token !== "string" || body.token === "") throw invalid(`the body must be {"token": "…"}`);
    res.setHeader("set-cookie", access.signIn(req, body.token, remote));
    return { status: 200, body: { token_required: true, signed_in: true } };
  });

  r.on("DELETE", "/v1/session", async ({ req, res }) => {
    res.setHeader("set-cookie", access.signOut(req));
    return { status: 200, body: { token_required: access.guarded, signed_in: !access.guarded } };
  });
}
