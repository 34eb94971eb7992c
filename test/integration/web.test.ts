/**
 * Web endpoints on the real Docker engine, driven with plain HTTP clients, and calls between
 * functions from inside containers, with what their credentials refuse.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { containersOf, deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
const url = (fn: string, rest = "") => `${t.webUrl}/web/web/${fn}/${rest}`;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("web.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

/** A request body that arrives in several chunks. */
function chunked(...parts: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(enc.encode(p));
      c.close();
    },
  });
}

describe("web endpoints", () => {
  it("pass method, path below the prefix, query, headers and a chunked body to a fetch handler", async () => {
    const res = await fetch(url("echo", "a/b?x=1&y=two"), {
      method: "POST",
      headers: { "x-test": "yes" },
      body: chunked("first,", "second,", "third"),
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      method: "POST",
      path: "/a/b",
      query: { x: "1", y: "two" },
      header: "yes",
      authorization: null,
      cookie: null,
      gantry_token: null,
      body: "first,second,third",
    });
    const root = await fetch(`${t.webUrl}/web/web/echo`);
    expect(await root.json()).toMatchObject({ method: "GET", path: "/", body: null });
  });

  it("are listed with their URLs", async () => {
    const apps = await t.client.transport.json<{ apps: Array<{ name: string; endpoints: Array<{ function: string; url: string }> }> }>("GET", "/v1/apps");
    expect(apps.apps.find((a) => a.name === "web")!.endpoints).toEqual(
      expect.arrayContaining([{ function: "echo", url: `${t.webUrl}/web/web/echo/` }, { function: "api", url: `${t.webUrl}/web/web/api/` }]),
    );
    const view = await t.client.transport.json<{ web_url: string | null }>("GET", "/v1/apps/web/functions/double");
    expect(view.web_url).toBeNull();
  });

  it("stream a response chunk by chunk: server-sent events arrive apart", async () => {
    const res = await fetch(url("events"));
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    const first = await reader.read();
    expect(dec.decode(first.value)).toBe("data: one\n\n");
    // The second event is sent only once this request arrives: the first came on its own.
    expect(await (await fetch(url("events", "release"))).text()).toBe("released\n");
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += dec.decode(r.value);
    expect(rest).toBe("data: two\n\n");
  });

  it("cancel the request in the container when the client goes away", async () => {
    const abort = new AbortController();
    const res = await fetch(url("events", "forever"), { signal: abort.signal });
    await res.body!.getReader().read();
    abort.abort();
    await vi.waitFor(async () => expect(await (await fetch(url("events", "aborted"))).json()).toEqual({ aborted: 1 }), { timeout: 10_000 });
  });

  it("serve 20 concurrent slow requests within maxInputs × maxContainers", async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(url("slow")).then(async (r) => ({ status: r.status, body: (await r.json()) as { container: string; peak: number } }))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(answers.map((a) => a.body.container)).size).toBeLessThanOrEqual(2);
    expect(Math.max(...answers.map((a) => a.body.peak))).toBeLessThanOrEqual(5);
    expect((await containersOf(t, "slow")).length).toBeLessThanOrEqual(2);
  });

  it("answer 502 with a JSON error when the handler fails, 504 when it does not answer in time", async () => {
    const broken = await fetch(url("broken"));
    expect(broken.status).toBe(502);
    expect(await broken.json()).toMatchObject({
      error: { code: "function_failed", type: "RangeError", message: expect.stringContaining("no answer for you") },
    });
    const never = await fetch(url("never"));
    expect(never.status).toBe(504);
    expect(await never.json()).toMatchObject({ error: { code: "timeout", message: "web.never did not answer within its timeout of 1 s" } });
  });

  it("refuse a request body over the limit for calls with 413", async () => {
    // Declared too large: refused before any container sees it.
    const big = await fetch(url("echo"), { method: "POST", body: "x".repeat(8 * 1024 * 1024 + 1) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large", message: "request body of 8388609 bytes exceeds the limit of 8388608 bytes" } });
    // Streamed with no length: refused once it passes the limit.
    const streamed = await fetch(url("echo"), { method: "POST", body: chunked("x".repeat(5 * 1024 * 1024), "y".repeat(4 * 1024 * 1024)), duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({ error: { code: "payload_too_large", message: "request body exceeds the limit of 8388608 bytes" } });
    expect((await fetch(url("echo"))).status).toBe(200); // and the endpoint goes on serving
  });

  it("take a Hono app's fetch as the handler", async () => {
    expect(await (await fetch(url("api", "hello/world"))).json()).toEqual({ hello: "world" });
    const created = await fetch(url("api", "items"), { method: "POST", headers: { "content-type": "application/json" }, body: '{"n":1}' });
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ created: { n: 1 } });
  });

  it("refuse calls, and unknown endpoints, with a clear answer", async () => {
    const spawn = await fetch(`${t.baseUrl}/v1/apps/web/functions/echo/calls`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"args": []}' });
    expect(spawn.status).toBe(400);
    expect(await spawn.json()).toMatchObject({ error: { message: "web.echo is a web endpoint: send it HTTP requests at /web/web/echo/" } });
    const plain = await fetch(url("double"));
    expect(plain.status).toBe(404);
    expect(await plain.json()).toMatchObject({ error: { message: "web.double is not a web endpoint: call it with spawn or remote" } });
    expect((await fetch(`${t.webUrl}/web/web/nope/`)).status).toBe(404);
  });
});

describe("calls between functions", () => {
  it("a function calls another with a client that takes no arguments", async () => {
    const out = (await (await t.client.functions.fromName("web", "caller")).remote(21)) as { result: number; callId: string };
    expect(out.result).toBe(42);
    expect((await (await t.client.functionCalls.fromId(out.callId)).status()).function).toBe("double");
  });

  it("a container's credentials allow calls only: no deploy, stop, logs, containers, daemon stop, or other sockets", async () => {
    const others = readdirSync(join(t.home, "run"));
    expect(others.length).toBeGreaterThan(0);
    const out = await (await t.client.functions.fromName("web", "probe")).remote({
      otherAgentSocket: join(t.home, "run", others[0]!, "agent.sock"),
      daemonSocket: join(t.home, "gantry.sock"),
    });
    expect(out).toEqual({
      deploy: 403,
      stopApp: 403,
      logs: 403,
      containers: 403,
      daemonStop: 403,
      lookup: 200,
      runDir: ["agent.sock"],
      otherAgentSocket: "ENOENT",
      daemonSocket: "ENOENT",
    });
  });
});

describe("web endpoints on their own origin", () => {
  it("are served on a port of their own, not the API's (so not the dashboard's origin)", async () => {
    expect(new URL(t.webUrl).port).not.toBe(new URL(t.baseUrl).port);
    const moved = await fetch(`${t.baseUrl}/web/web/echo/x?y=1`, { method: "POST", body: "kept", redirect: "manual" });
    expect(moved.status).toBe(308);
    expect(moved.headers.get("location")).toBe(`${t.webUrl}/web/web/echo/x?y=1`);
    expect(await moved.json()).toMatchObject({ error: { code: "moved" } });
    // A client that follows it (method and body kept) reaches the endpoint.
    const followed = await fetch(`${t.baseUrl}/web/web/echo/x?y=1`, { method: "POST", body: "kept" });
    expect(await followed.json()).toMatchObject({ method: "POST", path: "/x", body: "kept" });
  });

  it("whose port serves neither the API nor the dashboard", async () => {
    for (const path of ["/", "/v1/apps", "/v1/health", "/submit/web/double"]) {
      const res = await fetch(`${t.webUrl}${path}`, { method: path.startsWith("/submit") ? "POST" : "GET" });
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: "not_found", message: expect.stringContaining("web endpoints only") } });
    }
  });
});

describe("web endpoints and the daemon's token", () => {
  let guarded: TestDaemon;
  beforeAll(async () => {
    guarded = await startTestDaemon({ token: "s3cret-token-0123456" });
    await deploy(guarded, fixture("web.ts"));
  });
  afterAll(async () => {
    await guarded?.dispose();
  });

  it("need the token on TCP unless public, and never pass it to the function", async () => {
    const at = (fn: string) => `${guarded.webUrl}/web/web/${fn}/`;
    const none = await fetch(at("echo"));
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: "unauthorized" } });
    const bearer = await fetch(at("echo"), { headers: { authorization: "Bearer s3cret-token-0123456" } });
    expect(bearer.status).toBe(200);
    expect(await bearer.json()).toMatchObject({ authorization: null });
    const header = await fetch(at("echo"), { headers: { "x-gantry-token": "s3cret-token-0123456", authorization: "Basic dXNlcg==" } });
    expect(await header.json()).toMatchObject({ authorization: "Basic dXNlcg==" });
    // The dashboard's session cookie (sent to every port of this host) never reaches the function; other cookies do.
    const cookies = await fetch(at("echo"), { headers: { "x-gantry-token": "s3cret-token-0123456", cookie: "theme=dark; gantry_session=abc; lang=en" } });
    expect(await cookies.json()).toMatchObject({ cookie: "theme=dark; lang=en", gantry_token: null });
    const open = await fetch(at("open_to_all"));
    expect(open.status).toBe(200);
    expect(await open.text()).toBe("public\n");
  });
});
