/**
 * What another site's page can do to a daemon a user runs with the README's defaults (no token),
 * tried in a real browser (Debian's headless Chromium): nothing. The attacker's page is served
 * from its own origin; Chromium resolves its name to 127.0.0.1 (--host-resolver-rules), as a
 * DNS-rebinding attacker's name would.
 */
import { existsSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleApp } from "../../cli/bundle-app.js";
import { deploy, exampleApp, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const CHROMIUM = process.env.GANTRY_CHROMIUM ?? "/usr/bin/chromium";
const EVIL = "evil.test";

let t: TestDaemon;
let browser: Browser;
let attacker: http.Server;
let attackerPort: number;
let daemonPort: number;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium), or GANTRY_CHROMIUM`);
  t = await startTestDaemon();
  daemonPort = t.daemon.tcpPort!;
  await deploy(t, exampleApp);
  // The attacker's site: an empty page on an origin of its own.
  attacker = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>a page</title>"));
  await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", () => resolve()));
  attackerPort = (attacker.address() as net.AddressInfo).port;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", `--host-resolver-rules=MAP ${EVIL} 127.0.0.1`] });
});
afterAll(async () => {
  await browser?.close();
  if (attacker) await new Promise((resolve) => attacker.close(resolve));
  await t?.dispose();
});

const appNames = async () => (await t.client.transport.json<{ apps: Array<{ name: string }> }>("GET", "/v1/apps")).apps.map((a) => a.name);
const callCount = async () => (await t.client.transport.json<{ calls: unknown[] }>("GET", "/v1/calls?limit=1000")).calls.length;

/** Opens the attacker's page and runs `script` in it; returns what it returns. */
async function onAttackerPage<T>(script: string, arg: unknown): Promise<T> {
  const page = await browser.newPage();
  try {
    await page.goto(`http://${EVIL}:${attackerPort}/`);
    return (await page.evaluate(`(${script})(${JSON.stringify(arg)})`)) as T;
  } finally {
    await page.close();
  }
}

describe("a page on another site", () => {
  it("cannot deploy with a no-cors text/plain POST, nor submit with a form", async () => {
    const calls = await callCount();
    const { functions, bundle } = await bundleApp(exampleApp);
    const sent = await onAttackerPage<string>(
      `async ({ port, deploy }) => {
        await fetch("http://127.0.0.1:" + port + "/v1/apps/deploy", { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" },
          body: JSON.stringify(deploy) });
        await fetch("http://127.0.0.1:" + port + "/submit/my-job-queue/process_job?data=x", { method: "POST", mode: "no-cors" });
        await fetch("http://localhost:" + port + "/v1/apps/my-job-queue/functions/process_job/calls", { method: "POST", mode: "no-cors",
          headers: { "content-type": "text/plain" }, body: '{"args": [1]}' });
        return "sent";
      }`,
      { port: daemonPort, deploy: { app: "planted", functions, bundle } },
    );
    expect(sent).toBe("sent");
    expect(await appNames()).not.toContain("planted");
    expect(await callCount()).toBe(calls);
  });

  it("cannot read the event stream", async () => {
    const outcome = await onAttackerPage<string>(
      `(port) => new Promise((resolve) => {
        const ws = new WebSocket("ws://127.0.0.1:" + port + "/v1/events");
        ws.onopen = () => resolve("open");
        ws.onerror = () => resolve("refused");
      })`,
      daemonPort,
    );
    expect(outcome).toBe("refused");
  });

  it("cannot read the API under its own name rebound to 127.0.0.1 (DNS rebinding)", async () => {
    const page = await browser.newPage();
    try {
      // The browser takes http://evil.test:PORT for the attacker's own origin: same-origin reads are allowed.
      const res = await page.goto(`http://${EVIL}:${daemonPort}/v1/apps`);
      expect(res!.status()).toBe(421);
      expect(await res!.json()).toMatchObject({ error: { code: "host_not_allowed" } });
      const write = await page.evaluate(`fetch("/submit/my-job-queue/process_job?data=x", { method: "POST" }).then((r) => r.status)`);
      expect(write).toBe(421);
    } finally {
      await page.close();
    }
  });

  it("while the daemon's own page still reads and writes", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${t.baseUrl}/`);
      const status = await page.evaluate(`fetch("/submit/my-job-queue/process_job?data=own", { method: "POST" }).then((r) => r.status)`);
      expect(status).toBe(202);
      const opened = await page.evaluate(`new Promise((resolve) => { const ws = new WebSocket("ws://" + location.host + "/v1/events"); ws.onopen = () => resolve("open"); ws.onerror = () => resolve("refused"); })`);
      expect(opened).toBe("open");
    } finally {
      await page.close();
    }
  });
});
