/**
 * The cluster's agent listener (TcpAgentHub) limits wrong container tokens per address, as the API
 * limits wrong daemon tokens: ten from one address, then 429 with Retry-After for any token from
 * there (agents' WebSockets and containers' own requests alike); other addresses go on. Real TCP on
 * loopback, no Docker: 127.0.0.0/8 is all loopback on Linux, so each test dials from its own address.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TcpAgentHub } from "../../daemon/api/agent-hub.js";
import { silentLogger } from "../../daemon/logger.js";

const TOKEN = "container-token-0123456789abcdef";
let hub: TcpAgentHub;

beforeAll(async () => {
  hub = new TcpAgentHub({
    advertise: { host: "127.0.0.1", port: 0 },
    log: silentLogger,
    api: (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end("{}"),
  });
  await hub.listen();
  await hub.factory({ id: "ct-a", socketDir: "/nonexistent", app: "a" }, TOKEN).listen(null);
});
afterAll(() => hub?.close());

function get(token: string, from: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${hub.httpUrl}/v1/health`, { headers: { authorization: `Bearer ${token}` }, localAddress: from, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, retryAfter: res.headers["retry-after"] }));
    });
    req.on("error", reject);
  });
}

function dial(token: string, from: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${hub.wsUrl}/agent`, { headers: { authorization: `Bearer ${token}`, "x-gantry-container": "ct-a" }, localAddress: from });
    ws.once("open", () => (ws.terminate(), resolve(101)));
    ws.once("unexpected-response", (_req, res) => resolve(res.statusCode!));
    ws.once("error", () => resolve(-1));
  });
}

describe("the TCP hub and wrong container tokens", () => {
  it("holds back an address after ten wrong tokens, whatever it tries next; other addresses go on", async () => {
    const from = "127.0.0.3";
    expect((await get(TOKEN, from)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await get(`wrong-${i}`, from)).status).toBe(401);
    for (let i = 0; i < 5; i++) expect(await dial(`wrong-ws-${i}`, from)).toBe(401);
    const limited = await get(TOKEN, from);
    expect(limited.status).toBe(429);
    expect(Number(limited.retryAfter)).toBeGreaterThan(0);
    expect(await dial(TOKEN, from)).toBe(429);
    // Another node's address is not held back.
    expect((await get(TOKEN, "127.0.0.4")).status).toBe(200);
    expect(await dial(TOKEN, "127.0.0.4")).toBe(101);
  });
});
