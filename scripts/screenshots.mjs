#!/usr/bin/env node
// Takes the README's screenshots of the dashboard (docs/screenshots/*.png): a real daemon in a
// temp home with two stand-in GPUs (test/fake-gpu), the dashboard fixture app and the GPU one,
// a few calls of each kind, and headless Chromium. Needs a built tree (npm run build), Docker,
// the base image, and Debian's chromium; the stand-in GPU nodes need root.
//   node scripts/screenshots.mjs [--out DIR]
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { bundleApp } from "../dist/cli/bundle-app.js";
import { makeConfig } from "../dist/daemon/config.js";
import { startDaemon } from "../dist/daemon/daemon.js";
import { silentLogger } from "../dist/daemon/logger.js";
import { GantryClient } from "../dist/sdk/client.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outAt = process.argv.indexOf("--out");
const out = outAt > 0 ? process.argv[outAt + 1] : join(root, "docs", "screenshots");
const fake = join(root, "test", "fake-gpu");
const chromiumPath = process.env.GANTRY_CHROMIUM ?? "/usr/bin/chromium";

mkdirSync(out, { recursive: true });
execFileSync(join(fake, "device-nodes"), ["add", "2"]);
const home = mkdtempSync(join(tmpdir(), "gt-shots-"));
const daemon = await startDaemon(makeConfig({ home, httpPort: 0, forceNetwork: "none", nvidiaSmi: join(fake, "nvidia-smi") }), { log: silentLogger });
const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
let browser;
try {
  for (const file of ["dashboard.ts", "gpus.ts"]) {
    const app = await bundleApp(join(root, "test", "fixtures", "apps", file));
    await client.transport.stream("POST", "/v1/apps/deploy", { app: app.app, functions: app.functions, bundle: app.bundle, source: `apps/${file}` }, () => {});
  }
  const fn = (app, name) => client.functions.fromName(app, name);
  const greet = await fn("dash", "greet");
  for (const name of ["Ada", "Grace", "Linus", "Barbara"]) await greet.remote(name);
  const failed = await (await fn("dash", "explode")).spawn("a bad input");
  await failed.get({ timeoutMs: 30_000 }).catch(() => undefined);
  const ok = await greet.spawn("Margaret");
  await ok.get({ timeoutMs: 30_000 });
  const wait = await fn("dash", "wait");
  for (let i = 0; i < 5; i++) await wait.spawn(600_000);
  await (await fn("gpus", "any_gpu")).spawn(600_000);
  await (await fn("gpus", "pair")).spawn(); // waits: the other GPU alone is not two
  // For the pictures: the waiting calls run and the GPU call holds its GPU.
  for (const until = Date.now() + 60_000; ; ) {
    const h = await client.transport.json("GET", "/v1/health");
    if (h.gpu.held >= 1 && h.live - h.queued >= 3) break;
    if (Date.now() > until) throw new Error(`containers did not start: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // Sandboxes: one that keeps running, one that printed and finished.
  const sandboxes = [];
  for (const command of [["sh", "-c", "echo ready; exec sleep 600"], ["sh", "-c", "echo 'job 17 done'"]]) {
    sandboxes.push(await client.transport.json("POST", "/v1/sandboxes", { app: "dash", runtime: "node", command, tags: { owner: "notebook" } }));
  }
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1360, height: 820 }, colorScheme: "light" });
  const base = `http://127.0.0.1:${daemon.tcpPort}/`;
  const shot = async (hash, name, ready) => {
    await page.goto(base + hash);
    await page.waitForSelector(ready, { timeout: 20_000 });
    await page.waitForTimeout(400); // animations and live counts settle
    await page.screenshot({ path: join(out, `${name}.png`) });
    console.error(`wrote ${join(out, `${name}.png`)}`);
  };
  await shot("#/apps", "apps", "[data-app=dash] tr[data-function]");
  await shot("#/calls", "calls", "tr[data-call]");
  // The charts of one function's last hour, on its app's page.
  await page.goto(`${base}#/apps/dash`);
  await page.waitForSelector('[data-charts="dash.greet"] [data-chart=calls] canvas', { timeout: 20_000 });
  await page.locator("section[data-function=greet]").screenshot({ path: join(out, "metrics.png") });
  console.error(`wrote ${join(out, "metrics.png")}`);
  await shot(`#/calls/${ok.callId}`, "call", "[data-part=result]");
  await shot(`#/calls/${failed.callId}`, "call-failed", "[data-part=traceback]");
  await shot("#/containers", "containers", "tr[data-container]");
  await shot("#/gpus", "gpus", ".gpu.held");
  await shot("#/logs/dash", "logs", ".log-line");
  await shot("#/sandboxes", "sandboxes", `tr[data-sandbox="${sandboxes[0].id}"][data-state=running]`);
  await shot(`#/sandboxes/${sandboxes[0].id}`, "sandbox", "[data-part=stdout]");
} finally {
  await browser?.close();
  client.close();
  await daemon.stop({ graceMs: 0 });
  rmSync(home, { recursive: true, force: true });
  execFileSync(join(fake, "device-nodes"), ["remove"]);
}
