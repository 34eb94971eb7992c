/**
 * Who gets in over TCP (daemon/api/access.ts), in-process with a fake clock: which attempts count
 * as guesses, the 429 with Retry-After that follows ten, per address, and sessions that end.
 */
import type http from "node:http";
import { beforeEach, describe, expect, it } from "vitest";
import { Access } from "../../daemon/api/access.js";
import { ApiError } from "../../daemon/api/errors.js";
import { AttemptLimiter } from "../../daemon/core/attempt-limit.js";

const TOKEN = "unit-test-token-0123456789";
let now: number;
let open: Set<string>;
let access: Access;

beforeEach(() => {
  now = 1_700_000_000_000;
  open = new Set();
  let n = 0;
  access = new Access({
    token: TOKEN,
    sessions: {
      ttlMs: 30 * 24 * 3600 * 1000,
      open: () => {
        const id = `session-${++n}`;
        open.add(id);
        return { id, expiresAt: now + 1 };
      },
      verify: (id) => open.has(id),
      close: (id) => open.delete(id),
    },
    limiter: new AttemptLimiter({ max: 10, windowMs: 60_000, maxKeys: 100 }),
    clock: () => now,
  });
});

const req = (headers: Record<string, string>, remoteAddress = "127.0.0.1", encrypted = false) =>
  ({ headers: { host: "127.0.0.1:8700", ...headers }, socket: { remoteAddress, encrypted } }) as unknown as http.IncomingMessage;

function refusal(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("it was let in");
}

describe("Access", () => {
  it("takes the right token and refuses wrong ones with 401, then any token from that address with 429 and Retry-After", () => {
    expect(() => access.authorize(req({ authorization: `Bearer ${TOKEN}` }))).not.toThrow();
    for (let i = 0; i < 10; i++) expect(refusal(() => access.authorize(req({ authorization: `Bearer guess-${i}` }))).status).toBe(401);
    now += 15_000;
    const limited = refusal(() => access.authorize(req({ authorization: `Bearer ${TOKEN}` })));
    expect(limited).toMatchObject({ status: 429, code: "too_many_attempts", headers: { "retry-after": "45" }, extra: { retry_after_s: 45 } });
    expect(limited.message).toMatch(/10 wrong tokens from 127\.0\.0\.1 within 60 s.*45 s/);
    // Web endpoints and the sign-in are held back too.
    expect(refusal(() => access.authorizeToken(req({ "x-gantry-token": TOKEN }))).status).toBe(429);
    expect(refusal(() => access.signIn(req({}), TOKEN)).status).toBe(429);
    // Another address is not; nor is the unix socket's sign-in.
    expect(() => access.authorize(req({ authorization: `Bearer ${TOKEN}` }, "127.0.0.2"))).not.toThrow();
    expect(access.signIn(req({}), TOKEN, false)).toMatch(/^gantry_session=session-1;/);
    // A minute after the first guess, the address may try again.
    now += 45_000;
    expect(() => access.authorize(req({ authorization: `Bearer ${TOKEN}` }))).not.toThrow();
  });

  it("does not count requests without a credential, nor sessions that ended", () => {
    for (let i = 0; i < 20; i++) {
      expect(refusal(() => access.authorize(req({}))).message).toContain("missing token");
      const ended = refusal(() => access.authorize(req({ cookie: "gantry_session=gone" })));
      expect(ended.status).toBe(401);
      expect(ended.headers["set-cookie"]).toContain("Max-Age=0"); // the browser drops it
    }
    expect(() => access.authorize(req({ authorization: `Bearer ${TOKEN}` }))).not.toThrow();
  });

  it("counts wrong sign-ins and wrong tokens on GET /v1/session per address", () => {
    for (let i = 0; i < 5; i++) expect(refusal(() => access.signIn(req({}, "10.0.0.1"), `guess-${i}`)).status).toBe(401);
    for (let i = 0; i < 5; i++) expect(access.signedIn(req({ authorization: `Bearer guess-${i}` }, "10.0.0.1"))).toBe(false);
    expect(refusal(() => access.signIn(req({}, "10.0.0.1"), TOKEN)).status).toBe(429);
    expect(refusal(() => access.signedIn(req({ authorization: `Bearer ${TOKEN}` }, "10.0.0.1"))).status).toBe(429);
    expect(access.signIn(req({}, "10.0.0.2"), TOKEN)).toMatch(/^gantry_session=/);
  });

  it("opens a session with a cookie that ends at sign-out; Secure over TLS", () => {
    const set = access.signIn(req({}), TOKEN);
    expect(set).toBe("gantry_session=session-1; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000");
    const cookie = { cookie: "other=1; gantry_session=session-1" };
    expect(() => access.authorize(req(cookie))).not.toThrow();
    expect(access.signedIn(req(cookie))).toBe(true);
    // From another site's page the cookie opens nothing.
    expect(refusal(() => access.authorize(req({ ...cookie, origin: "http://evil.example" }))).status).toBe(401);
    expect(access.signOut(req(cookie))).toContain("Max-Age=0");
    expect(refusal(() => access.authorize(req(cookie))).status).toBe(401);
    expect(access.signIn(req({}, "127.0.0.1", true), TOKEN)).toMatch(/; Secure$/);
  });

  it("lets everything through without a token", () => {
    const open = new Access({ token: null, sessions: null });
    expect(() => open.authorize(req({ authorization: "Bearer anything" }))).not.toThrow();
  });
});
