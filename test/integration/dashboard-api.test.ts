/**
 * What the dashboard stands on, over real HTTP and WebSocket: its files (only those built, with a
 * strict content security policy), the session that trades the token for a cookie, and the
 * /v1 answers it reads (a call's input and container, paging both ways, time filters, one app).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("dashboard.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${t.baseUrl}${path}`, { headers });

describe("the dashboard's files", () => {
  it("serves the page at / with a content security policy that allows nothing from elsewhere", async () => {
    const res = await get("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await get(script!);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(asset.headers.get("cache-control")).toContain("immutable");
  });

  it("serves only the files it was built with: other paths are the API's 404s", async () => {
    for (const path of ["/assets/nope.js", "/assets/../package.json", "/%2e%2e/package.json", "/etc/passwd"]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(await res.json(), path).toMatchObject({ error: { code: "not_found" } });
    }
    expect((await fetch(`${t.baseUrl}/`, { method: "POST" })).status).toBe(404);
  });
});

describe("a call as the dashboard reads it", () => {
  it("has its input and the container that ran it", async () => {
    const greet = await t.client.functions.fromName("dash", "greet");
    const call = await greet.spawn("inputs");
    await call.get({ timeoutMs: 30_000 });
    const view = await t.client.transport.json<Record<string, unknown>>("GET", `/v1/calls/${call.callId}`);
    expect(view).toMatchObject({ status: "succeeded", input: { args: ["inputs"], kwargs: null }, container_id: expect.stringMatching(/^ct-/) });
    const listed = await t.client.transport.json<{ calls: Array<Record<string, unknown>> }>("GET", `/v1/calls?app=dash&limit=1`);
    expect(listed.calls[0]).not.toHaveProperty("input"); // lists stay small
  });

  it("pages newest first with before, back with after, and filters by creation time", async () => {
    const greet = await t.client.functions.fromName("dash", "greet");
    const t0 = Date.now();
    const ids = (await greet.spawnMap(Array.from({ length: 30 }, (_, i) => i))).map((c) => c.callId);
    const page = async (q: string) =>
      (await t.client.transport.json<{ calls: Array<{ call_id: string }> }>("GET", `/v1/calls?app=dash&function=greet&${q}`)).calls.map((c) => c.call_id);
    const newest = [...ids].sort().reverse(); // IDs sort by creation time (to the millisecond, then at random)
    const first = await page(`limit=10&since=${t0}`);
    expect(first).toEqual(newest.slice(0, 10));
    const second = await page(`limit=10&before=${first[9]}`);
    expect(second).toEqual(newest.slice(10, 20));
    expect(await page(`limit=10&after=${second[0]}`)).toEqual(first); // back to the newer page, still newest first
    expect(await page(`limit=100&since=${new Date(t0).toISOString()}`)).toEqual(newest);
    expect(await page(`limit=100&until=${t0}`)).toEqual(expect.not.arrayContaining([ids[0]]));

    const bad = await get(`/v1/calls?since=yesterday`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { message: expect.stringContaining("since must be a time") } });
    expect((await get(`/v1/calls?before=${ids[0]}&after=${ids[1]}`)).status).toBe(400);
    expect((await get(`/v1/calls?before=robert'); DROP TABLE calls;--`)).status).toBe(400);
  });

  it("GET /v1/apps/{app} gives every function's settings and what it is doing now", async () => {
    const app = await t.client.transport.json<{ name: string; functions: Array<Record<string, unknown>> }>("GET", "/v1/apps/dash");
    const wait = app.functions.find((f) => f.name === "wait")!;
    expect(wait).toMatchObject({ runtime: "node", max_inputs: 2, timeout_s: 600, env: [], web: null, live: { queued: 0, running: 0 } });
    expect((await get("/v1/apps/nope")).status).toBe(404);
  });
});

describe("the dashboard's session on a daemon with a token", () => {
  let guarded: TestDaemon;
  const TOKEN = "dashboard-session-test-token";
  beforeAll(async () => {
    guarded = await startTestDaemon({ token: TOKEN });
  });
  afterAll(async () => {
    await guarded?.dispose();
  });
  const at = (path: string, init: RequestInit = {}) => fetch(`${guarded.baseUrl}${path}`, init);
  const signIn = (token: string) => at("/v1/session", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });

  it("serves the page without the token (it holds no data) but no data without it", async () => {
    expect((await at("/")).status).toBe(200);
    expect((await at("/v1/health")).status).toBe(401);
    expect(await (await at("/v1/session")).json()).toEqual({ token_required: true, signed_in: false });
  });

  it("trades the right token for an HttpOnly cookie that is not the token; the cookie opens the API and the status stream", async () => {
    const res = await signIn(TOKEN);
    expect(res.status).toBe(200);
    const setCookie = res.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/^gantry_session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(";")[0]!;
    expect((await at("/v1/health", { headers: { cookie } })).status).toBe(200);
    expect(await (await at("/v1/session", { headers: { cookie } })).json()).toEqual({ token_required: true, signed_in: true });
    // From another site's page, the cookie opens nothing (the browser names the page's origin).
    expect((await at("/v1/health", { headers: { cookie, origin: "http://evil.example" } })).status).toBe(401);
    expect((await at("/v1/health", { headers: { cookie, origin: guarded.baseUrl } })).status).toBe(200);

    const ws = new WebSocket(`${guarded.baseUrl.replace("http", "ws")}/v1/events`, { headers: { cookie, origin: guarded.baseUrl } });
    await new Promise<void>((resolve, reject) => (ws.once("open", () => resolve()), ws.once("error", reject)));
    ws.close();
    const refused = new WebSocket(`${guarded.baseUrl.replace("http", "ws")}/v1/events`, { headers: { cookie, origin: "http://evil.example" } });
    const status = await new Promise<number>((resolve) => refused.once("unexpected-response", (_req, r) => resolve(r.statusCode!)));
    expect(status).toBe(403); // another origin's page opens no stream, cookie or not

    const out = await at("/v1/session", { method: "DELETE", headers: { cookie } });
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
  });

  it("refuses wrong tokens with 401, and after ten within a minute, any from that address with 429", async () => {
    const wrong = await signIn("not-it");
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: "unauthorized", message: expect.stringContaining("wrong token") } });
    expect((await signIn("")).status).toBe(400);
    for (let i = 0; i < 9; i++) expect((await signIn(`guess-${i}`)).status).toBe(401);
    const limited = await signIn(TOKEN);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await limited.json()).toMatchObject({ error: { code: "too_many_attempts", message: expect.stringContaining("wrong tokens from 127.0.0.1 within 60 s") } });
    // The token itself is held back from this address too (else guessing would go on), but not on the unix socket.
    expect((await at("/v1/health", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(429);
    await expect(guarded.client.transport.json("GET", "/v1/health")).resolves.toMatchObject({ ok: true });
  });
});
