/**
 * Sessions and guessing over real HTTP against a real daemon (DESIGN 1.12, issue 15 points 5-6):
 * a dashboard session is the daemon's to end (sign-out, a new token), and wrong tokens are limited
 * per client address. Other addresses come from the same machine: Linux routes all of 127.0.0.0/8
 * to loopback, so a client socket bound to 127.0.0.2 reaches the daemon on 127.0.0.1 from another
 * source address, which is what the limit is keyed by.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const TOKEN = "sessions-test-token-0123456789";
const OTHER_TOKEN = "another-sessions-test-token-987";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request from `from` (a loopback address of this machine), on a connection of its own. */
function request(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? "GET", headers: o.headers, localAddress: o.from ?? "127.0.0.1", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

const json = (a: Answer) => JSON.parse(a.body) as { error?: { code: string; message: string; retry_after_s?: number } } & Record<string, unknown>;

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ token: TOKEN });
});
afterAll(async () => {
  await t?.dispose();
});

const api = (path: string, o: Parameters<typeof request>[1] = {}) => request(`${t.baseUrl}${path}`, o);
const signIn = (token: string, from?: string) =>
  api("/v1/session", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }), from });

/** Signs in and returns the cookie as a browser would send it back. */
async function session(from?: string): Promise<string> {
  const res = await signIn(TOKEN, from);
  expect(res.status).toBe(200);
  const set = String(res.headers["set-cookie"]);
  expect(set).toMatch(/^gantry_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=2592000$/);
  return set.split(";")[0]!;
}

describe("dashboard sessions", () => {
  it("open with the token, and end at sign-out for every copy of the cookie", async () => {
    const cookie = await session();
    const copy = cookie; // what someone who copied it from the browser holds
    expect((await api("/v1/health", { headers: { cookie } })).status).toBe(200);
    expect(json(await api("/v1/session", { headers: { cookie } }))).toEqual({ token_required: true, signed_in: true });
    // A second session of another browser is its own.
    const other = await session();
    expect(other).not.toBe(cookie);

    const out = await api("/v1/session", { method: "DELETE", headers: { cookie } });
    expect(out.status).toBe(200);
    expect(String(out.headers["set-cookie"])).toContain("Max-Age=0");

    const after = await api("/v1/health", { headers: { cookie: copy } });
    expect(after.status).toBe(401);
    expect(json(after).error).toMatchObject({ code: "unauthorized", message: expect.stringContaining("session has ended") });
    expect(String(after.headers["set-cookie"])).toContain("gantry_session=; "); // the browser is told to drop it
    expect(json(await api("/v1/session", { headers: { cookie: copy } }))).toEqual({ token_required: true, signed_in: false });
    // The status stream refuses it too.
    const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/v1/events`, { headers: { cookie: copy } });
    const status = await new Promise<number>((resolve, reject) => {
      ws.once("unexpected-response", (_req, r) => resolve(r.statusCode!));
      ws.once("open", () => reject(new Error("the stream let a signed-out cookie in")));
    });
    expect(status).toBe(401);
    // The other browser is still signed in.
    expect((await api("/v1/health", { headers: { cookie: other } })).status).toBe(200);
  });

  it("survive a restart with the same token and all end when the token changes", async () => {
    const cookie = await session();
    await t.restart();
    expect((await api("/v1/health", { headers: { cookie } })).status).toBe(200);
    await t.restart({ token: OTHER_TOKEN });
    try {
      expect((await api("/v1/health", { headers: { cookie } })).status).toBe(401);
      expect((await api("/v1/health", { headers: { authorization: `Bearer ${OTHER_TOKEN}` } })).status).toBe(200);
    } finally {
      await t.restart({ token: TOKEN });
    }
    // Back to the first token is another change: the old session stays ended.
    expect((await api("/v1/health", { headers: { cookie } })).status).toBe(401);
  });
});

describe("guessing the token", () => {
  it("ten wrong tokens from one address hold it back (429, Retry-After) while other addresses and the unix socket go on", async () => {
    const from = "127.0.0.5";
    const none = await api("/v1/health", { from });
    expect(none.status).toBe(401); // no token: refused, not counted
    for (let i = 0; i < 10; i++) {
      const wrong = await api("/v1/health", { headers: { authorization: `Bearer wrong-guess-number-${i}` }, from });
      expect(wrong.status, `guess ${i + 1}`).toBe(401);
    }
    const limited = await api("/v1/health", { headers: { authorization: "Bearer wrong-guess-number-11" }, from });
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(json(limited).error).toMatchObject({
      code: "too_many_attempts",
      message: expect.stringMatching(/10 wrong tokens from 127\.0\.0\.5 within 60 s.* \d+ s more/),
      retry_after_s: retryAfter,
    });
    // The right token from there is held back too (else guessing would go on), on every route that takes one.
    expect((await api("/v1/health", { headers: { authorization: `Bearer ${TOKEN}` }, from })).status).toBe(429);
    expect((await signIn(TOKEN, from)).status).toBe(429);
    const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` }, localAddress: from });
    const refused = await new Promise<{ status: number; retryAfter: string | undefined }>((resolve, reject) => {
      ws.once("unexpected-response", (_req, r) => resolve({ status: r.statusCode!, retryAfter: r.headers["retry-after"] as string | undefined }));
      ws.once("open", () => reject(new Error("the stream let a limited address in")));
    });
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);

    // Another address of this machine, and the unix socket, are not held back.
    expect((await api("/v1/health", { headers: { authorization: `Bearer ${TOKEN}` }, from: "127.0.0.2" })).status).toBe(200);
    expect((await api("/v1/health", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    await expect(t.client.transport.json("GET", "/v1/health")).resolves.toMatchObject({ ok: true });
    // A session opened elsewhere still works (a cookie is not a token to guess).
    const cookie = await session("127.0.0.2");
    expect((await api("/v1/health", { headers: { cookie }, from: "127.0.0.2" })).status).toBe(200);
  });

  it("a flood of wrong sign-ins from one address does not lock another out", async () => {
    const from = "127.0.0.6";
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => signIn(`wrong-sign-in-guess-${i}`, from)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    expect(json(answers.find((a) => a.status === 401)!).error!.message).toContain("wrong token");
    expect((await signIn(TOKEN, from)).status).toBe(429);
    // Another address signs in at once.
    const cookie = await session("127.0.0.7");
    expect((await api("/v1/health", { headers: { cookie }, from: "127.0.0.7" })).status).toBe(200);
  });

  it("holds back wrong tokens on web endpoints too, per address", async () => {
    await deploy(t, fixture("web.ts"));
    const at = `${t.webUrl}/web/web/echo/`;
    const from = "127.0.0.8";
    for (let i = 0; i < 10; i++) expect((await request(at, { headers: { "x-gantry-token": `wrong-web-guess-${i}` }, from })).status).toBe(401);
    const limited = await request(at, { headers: { "x-gantry-token": TOKEN }, from });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect((await request(at, { headers: { "x-gantry-token": TOKEN }, from: "127.0.0.9" })).status).toBe(200);
    // The limit is the address's, wherever it guessed: the API refuses it as well.
    expect((await api("/v1/health", { headers: { authorization: `Bearer ${TOKEN}` }, from })).status).toBe(429);
  });
});
