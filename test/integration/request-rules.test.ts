/**
 * What a web page cannot do to a daemon on TCP (SECURITY.md), against a real daemon with no token
 * (the README's `gantry daemon start --http-port 8700`): names that rebind to 127.0.0.1 (Host),
 * writes and event streams from other origins (Origin, Sec-Fetch-Site), JSON sent as text/plain
 * (Content-Type). Each refusal is a JSON error naming the rule and the fix, and changes nothing;
 * curl, the clients and the unix socket keep working.
 */
import http from "node:http";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { bundleApp } from "../../cli/bundle-app.js";
import { deploy, exampleApp, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
let port: number;

beforeAll(async () => {
  t = await startTestDaemon({ allowedHosts: ["gantry.internal"], allowedOrigins: ["http://tools.internal:3000"] });
  port = t.daemon.tcpPort!;
  await deploy(t, exampleApp);
});
afterAll(async () => {
  await t?.dispose();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** One request with exactly these headers (fetch would not let a test set Host or Origin). */
function send(method: string, path: string, headers: Record<string, string> = {}, body?: string, socketPath?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ method, path, headers, ...(socketPath ? { socketPath } : { host: "127.0.0.1", port }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* text */
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: parsed });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const queued = async () => (await t.client.transport.json<{ calls: unknown[] }>("GET", "/v1/calls?app=my-job-queue&limit=1000")).calls.length;

/** Opens a WebSocket to /v1/events with these headers: "open", or the refusal's status and body. */
function events(headers: Record<string, string>): Promise<{ open: true } | { status: number; body: any }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/events`, { headers });
    ws.once("open", () => {
      ws.close();
      resolve({ open: true });
    });
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
    });
  });
}

describe("Host: names that could rebind to this machine", () => {
  it("refuses a foreign Host with 421, naming what it answers to and the flag", async () => {
    const res = await send("GET", "/v1/apps", { host: "evil.example.com" });
    expect(res.status).toBe(421);
    expect(res.body.error).toMatchObject({ code: "host_not_allowed", rule: "host" });
    expect(res.body.error.message).toContain(`127.0.0.1:${port}`);
    expect(res.body.error.message).toContain("--allowed-host evil.example.com");
    // The dashboard's files and web endpoints are behind the same rule.
    expect((await send("GET", "/", { host: `evil.example.com:${port}` })).status).toBe(421);
    expect((await send("GET", "/web/my-job-queue/x/", { host: "evil.example.com" })).status).toBe(421);
  });

  it("refuses a foreign Host's writes without doing them", async () => {
    const before = await queued();
    const res = await send("POST", "/submit/my-job-queue/process_job?data=x", { host: `evil.example.com:${port}` });
    expect(res.status).toBe(421);
    expect(await queued()).toBe(before);
  });

  it("answers loopback names and addresses with its own port, IP addresses, and allowed hosts", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`, `10.1.2.3:${port}`, "gantry.internal", `gantry.internal:${port}`]) {
      expect((await send("GET", "/v1/health", { host })).status, host).toBe(200);
    }
    // A loopback name on another port is another server's name (a proxy in front needs --allowed-host).
    expect((await send("GET", "/v1/health", { host: `localhost:${port + 7}` })).status).toBe(421);
    expect((await send("GET", "/v1/health", { host: "localhost.evil.example.com" })).status).toBe(421);
  });

  it("refuses a WebSocket to the event stream under a foreign Host", async () => {
    expect(await events({ host: "evil.example.com" })).toMatchObject({ status: 421, body: { error: { code: "host_not_allowed" } } });
  });

  it("does not apply on the unix socket", async () => {
    expect((await send("GET", "/v1/health", { host: "evil.example.com" }, undefined, join(t.home, "gantry.sock"))).status).toBe(200);
  });
});

describe("Origin: writes and streams from other pages", () => {
  it("refuses a submit from a foreign Origin with 403, queuing nothing", async () => {
    const before = await queued();
    const res = await send("POST", "/submit/my-job-queue/process_job?data=x", { origin: "http://evil.example.com" });
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: "origin_not_allowed", rule: "origin" });
    expect(res.body.error.message).toContain("--allowed-origin");
    for (const origin of ["null", `http://127.0.0.1:${port + 1}`, `https://127.0.0.1:${port}`, "http://localhost"]) {
      expect((await send("POST", "/submit/my-job-queue/process_job?data=x", { origin })).status, origin).toBe(403);
    }
    expect((await send("POST", "/v1/calls/fc-00000000000000000000000000/cancel", { origin: "http://evil.example.com" })).status).toBe(403);
    expect(await queued()).toBe(before);
  });

  it("refuses a cross-site request that names no Origin (Sec-Fetch-Site)", async () => {
    const res = await send("POST", "/submit/my-job-queue/process_job?data=x", { "sec-fetch-site": "cross-site" });
    expect(res.status).toBe(403);
    expect((await send("POST", "/submit/my-job-queue/process_job?data=x", { "sec-fetch-site": "same-site" })).status).toBe(403);
  });

  it("takes writes from its own origin, an allowed one, and clients that name none (curl)", async () => {
    expect((await send("POST", "/submit/my-job-queue/process_job?data=a", { origin: `http://127.0.0.1:${port}` })).status).toBe(202);
    expect((await send("POST", "/submit/my-job-queue/process_job?data=b", { origin: "http://tools.internal:3000" })).status).toBe(202);
    const curl = await send("POST", "/submit/my-job-queue/process_job?data=c", { "user-agent": "curl/8.0" });
    expect(curl.status).toBe(202);
    expect(curl.body.call_id).toMatch(/^fc-/);
    expect((await send("POST", "/submit/my-job-queue/process_job?data=d", { "sec-fetch-site": "same-origin" })).status).toBe(202);
  });

  it("lets reads through (the browser keeps their answers from other pages: no CORS headers)", async () => {
    const res = await send("GET", "/v1/apps", { origin: "http://evil.example.com" });
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("refuses a WebSocket to the event stream from a foreign Origin, and opens one from its own", async () => {
    expect(await events({ origin: "http://evil.example.com" })).toMatchObject({ status: 403, body: { error: { code: "origin_not_allowed" } } });
    expect(await events({ origin: `http://127.0.0.1:${port}` })).toEqual({ open: true });
    expect(await events({})).toEqual({ open: true });
  });
});

describe("Content-Type: JSON routes read only JSON", () => {
  let deployBody: string;
  beforeAll(async () => {
    const { app: _, functions, bundle } = await bundleApp(exampleApp);
    deployBody = JSON.stringify({ app: "planted", functions, bundle }); // a deploy that works when sent as JSON
  });

  it("refuses a text/plain deploy (a page's no-cors POST) with 415, deploying nothing", async () => {
    const res = await send("POST", "/v1/apps/deploy", { "content-type": "text/plain" }, deployBody);
    expect(res.status).toBe(415);
    expect(res.body.error).toMatchObject({ code: "unsupported_media_type", rule: "content-type" });
    expect(res.body.error.message).toContain("Content-Type: application/json");
    expect(res.headers.connection).toBe("close");
    const apps = await t.client.transport.json<{ apps: Array<{ name: string }> }>("GET", "/v1/apps");
    expect(apps.apps.map((a) => a.name)).not.toContain("planted");
    // The same body as JSON deploys: the refusal was the type's alone.
    const asJson = await send("POST", "/v1/apps/deploy", { "content-type": "application/json" }, deployBody);
    expect(asJson.status).toBe(200);
    expect((await t.client.transport.json<{ apps: Array<{ name: string }> }>("GET", "/v1/apps")).apps.map((a) => a.name)).toContain("planted");
  });

  it("refuses form and missing types on calls and secrets, and takes JSON", async () => {
    const path = "/v1/apps/my-job-queue/functions/process_job/calls";
    const body = JSON.stringify({ args: [1] });
    expect((await send("POST", path, { "content-type": "application/x-www-form-urlencoded" }, body)).status).toBe(415);
    expect((await send("POST", path, { "content-length": String(body.length) }, body)).status).toBe(415);
    expect((await send("POST", "/v1/secrets", { "content-type": "multipart/form-data; boundary=x" }, '{"name":"x","values":{"A":"1"}}')).status).toBe(415);
    expect((await send("POST", path, { "content-type": "application/json; charset=utf-8" }, body)).status).toBe(202);
  });

  it("keeps the guide's body-less POST /submit/...?data= working", async () => {
    const res = await send("POST", "/submit/my-job-queue/process_job?data=data");
    expect(res.status).toBe(202);
    const result = await send("GET", `/result/${res.body.call_id}?timeout=30`);
    expect(result).toMatchObject({ status: 200, body: { result: "data" } });
  });
});

describe("Bodies refused at the door: too deep, not UTF-8, files that cannot be written", () => {
  const calls = "/v1/apps/my-job-queue/functions/process_job/calls";
  const json = { "content-type": "application/json" };
  const healthy = async () => expect((await send("GET", "/v1/health")).status).toBe(200);

  it("refuses JSON nested 100,000 levels deep with 400 naming the limit, queuing nothing, and goes on answering", async () => {
    const before = await queued();
    const deep = `{"args":[${"[".repeat(100_000)}${"]".repeat(100_000)}]}`;
    const res = await send("POST", calls, json, deep);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "invalid_argument", limit: 512 });
    expect(res.body.error.message).toContain("deeper than the limit of 512 levels");
    // Every JSON route reads through the same check: a deploy, a batch, a secret.
    for (const path of ["/v1/apps/deploy", `${calls}/batch`, "/v1/calls/results", "/v1/secrets"]) {
      expect((await send("POST", path, json, deep)).status, path).toBe(400);
    }
    expect(await queued()).toBe(before);
    await healthy();
    // As deep as the limit allows is taken.
    const ok = await send("POST", calls, json, `{"args":[${"[".repeat(500)}${"]".repeat(500)}]}`);
    expect(ok.status).toBe(202);
  });

  it("refuses invalid UTF-8 inside a JSON string with 400 naming the byte, instead of storing U+FFFD", async () => {
    const before = await queued();
    const body = Buffer.concat([Buffer.from('{"args":["caf'), Buffer.from([0xe9]), Buffer.from('"]}')]); // Latin-1 é
    const res = await new Promise<Answer>((resolve, reject) => {
      const req = http.request({ method: "POST", path: calls, host: "127.0.0.1", port, headers: { ...json, "content-length": String(body.length) } }, (r) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => resolve({ status: r.statusCode!, headers: r.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
      });
      req.on("error", reject);
      req.end(body);
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe("request body is not valid UTF-8 (byte 13 is 0xe9): JSON bodies are UTF-8");
    expect(await queued()).toBe(before);
    await healthy();
  });

  it("refuses a Python deploy whose files hold app.py and app.py/x.py with 400 naming the path, leaving no temp folder", async () => {
    const functions = [{ name: "f", options: {} }];
    const body = JSON.stringify({ app: "conflicting", runtime: "python", module: "app", functions, files: { "app.py": "x = 1\n", "app.py/x.py": "y = 2\n" } });
    const res = await send("POST", "/v1/apps/deploy", json, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_argument");
    expect(res.body.error.message).toContain(`the path "app.py" is a file, and also the folder of "app.py/x.py"`);
    const appsDir = join(t.home, "apps");
    const left = readdirSync(appsDir, { recursive: true }).map(String).filter((p) => p.endsWith(".tmp"));
    expect(left).toEqual([]);
    expect(existsSync(join(appsDir, "conflicting"))).toBe(false);
    await healthy();
  });
});

