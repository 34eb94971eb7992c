import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { makeConfig } from "../../daemon/config.js";
import { startDaemon } from "../../daemon/daemon.js";
import { GantryClient } from "../../sdk/client.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
const TOKEN = "s3cret-token-of-24-chars";

beforeAll(async () => {
  t = await startTestDaemon({ token: TOKEN });
});
afterAll(async () => {
  await t?.dispose();
});

describe("the token on TCP", () => {
  it("refuses TCP requests without the token, and takes them with it", async () => {
    const none = await fetch(`${t.baseUrl}/v1/health`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: "unauthorized" } });
    const wrong = await fetch(`${t.baseUrl}/v1/health`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${t.baseUrl}/v1/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    const client = new GantryClient({ url: t.baseUrl, token: TOKEN });
    await expect(client.transport.json("GET", "/v1/health")).resolves.toMatchObject({ ok: true });
    client.close();
  });

  it("does not ask for it on the unix socket (0600, the daemon's user only)", async () => {
    await expect(t.client.transport.json("GET", "/v1/health")).resolves.toMatchObject({ ok: true });
  });

  it("guards the status stream too", async () => {
    const url = `${t.baseUrl.replace("http", "ws")}/v1/events`;
    const refused = new WebSocket(url);
    const err = await new Promise<Error>((resolve) => refused.once("error", resolve));
    expect(err.message).toContain("401");
    const ok = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise<void>((resolve, reject) => (ok.once("open", () => resolve()), ok.once("error", reject)));
    ok.close();
  });

  it("will not start with a token under 16 characters", async () => {
    const cfg = makeConfig({ home: `${t.home}-short`, httpPort: 0, token: "fifteen-chars!!" });
    try {
      const got = await startDaemon(cfg).then((d) => d, (e: unknown) => e);
      if (!(got instanceof Error)) await (got as Awaited<ReturnType<typeof startDaemon>>).stop({ graceMs: 0 });
      expect(String((got as Error).message)).toMatch(/is 15 characters long; gantry takes tokens of 16 characters or more/);
    } finally {
      rmSync(cfg.home, { recursive: true, force: true });
    }
  });

  it("will not listen beyond loopback without a token", async () => {
    const cfg = makeConfig({ home: `${t.home}-other`, httpPort: 0, httpHost: "0.0.0.0", token: null });
    try {
      await expect(startDaemon(cfg)).rejects.toThrow(/beyond loopback\) needs a token/);
    } finally {
      rmSync(cfg.home, { recursive: true, force: true });
    }
  });
});
