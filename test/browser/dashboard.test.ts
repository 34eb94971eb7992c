/**
 * The dashboard in a real browser: headless Chromium (Debian's chromium, driven by playwright-core)
 * against a real daemon on the real Docker engine. Nothing here sleeps: each step waits for what
 * the page shows, with a deadline.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../sdk/errors.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const CHROMIUM = process.env.GANTRY_CHROMIUM ?? "/usr/bin/chromium";
const FAKE_SMI = join(import.meta.dirname, "..", "fake-gpu", "nvidia-smi");
const WAIT = { timeout: 20_000 };

let t: TestDaemon;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium), or GANTRY_CHROMIUM`);
  t = await startTestDaemon();
  await deploy(t, fixture("dashboard.ts"));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await t?.dispose();
});

async function open(hash = ""): Promise<Page> {
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${t.baseUrl}/${hash}`);
  return page;
}
afterEach(async () => {
  await page?.close();
  expect(pageErrors.splice(0)).toEqual([]); // no script error on any page
});

const fn = (name: string) => t.client.functions.fromName("dash", name);
/** A chart's figure attribute as a number (data-total, data-points, data-samples…), for expect.poll. */
const chartNumber = (p: Page, selector: string, attr: string) => async () => Number((await p.locator(selector).getAttribute(attr, { timeout: 1_000 }).catch(() => null)) ?? -1);

describe("the dashboard", () => {
  it("lists the app, its functions and their settings", async () => {
    const p = await open();
    await p.waitForSelector("[data-app=dash]", WAIT);
    const rows = await p.locator("[data-app=dash] tr[data-function]").evaluateAll((els) => els.map((e) => e.getAttribute("data-function")));
    expect(rows.sort()).toEqual(["Model", "explode", "greet", "retried", "wait"]);
    await p.click("[data-app=dash] h2 a");
    await p.waitForSelector("section[data-function=wait]", WAIT);
    expect(await p.locator("section[data-function=wait]").innerText()).toContain("600 s per attempt");
  });

  it("charts the last hour of all functions and of each, live, and says when a function had no calls", async () => {
    const greet = await fn("greet");
    for (const name of ["one", "two", "three"]) await greet.remote(name);
    await expect((await fn("explode")).remote("for the chart")).rejects.toBeInstanceOf(RemoteError);
    const p = await open();
    const overall = "[data-charts=all] [data-chart=calls]";
    await p.waitForSelector(`${overall} canvas`, WAIT);
    await expect.poll(chartNumber(p, overall, "data-total"), WAIT).toBeGreaterThanOrEqual(4); // 3 succeeded, 1 failed
    expect(await p.locator(overall).getAttribute("data-series")).toBe("3");
    expect(Number(await p.locator(overall).getAttribute("data-points"))).toBeGreaterThanOrEqual(2);
    const kinds = await p.locator("[data-charts=all] [data-chart]").evaluateAll((els) => els.map((e) => e.getAttribute("data-chart")));
    expect(kinds).toEqual(["calls", "duration", "load"]);

    await p.goto(`${t.baseUrl}/#/apps/dash`);
    const greetCalls = '[data-charts="dash.greet"] [data-chart=calls]';
    await p.waitForSelector(`${greetCalls} canvas`, WAIT);
    await expect.poll(chartNumber(p, greetCalls, "data-total"), WAIT).toBe(3);
    expect(Number(await p.locator('[data-charts="dash.greet"] [data-chart=duration]').getAttribute("data-points"))).toBeGreaterThan(0);
    // A function with no calls says so instead of drawing an empty frame.
    await p.waitForSelector('[data-charts="dash.Model"][data-empty=yes]', WAIT);
    expect(await p.locator('[data-charts="dash.Model"]').innerText()).toBe("No calls in the last hour.");
    expect(await p.locator('section[data-function=Model] canvas').count()).toBe(0);

    // Live: a call that ends while the page is open is counted without reloading it.
    await p.evaluate("window.__sameDocument = true");
    await greet.remote("live");
    await expect.poll(chartNumber(p, greetCalls, "data-total"), WAIT).toBe(4);
    expect(await p.evaluate("window.__sameDocument")).toBe(true);
  });

  it("shows a call spawned during the test and its steps live, without reloading", async () => {
    const p = await open("#/calls?app=dash");
    await p.waitForSelector("[data-live=live]", WAIT);
    await p.evaluate("window.__sameDocument = true");
    const call = await (await fn("greet")).spawn("live");
    await p.waitForSelector(`tr[data-call=${call.callId}]`, WAIT);
    await p.waitForSelector(`tr[data-call=${call.callId}][data-status=succeeded]`, WAIT);
    expect(await p.evaluate("window.__sameDocument")).toBe(true); // the page was never reloaded
  });

  it("shows a call's page: input, result, container and its log lines", async () => {
    const call = await (await fn("greet")).spawn("page");
    expect(await call.get({ timeoutMs: 30_000 })).toEqual({ greeting: "hello page" });
    const p = await open("#/calls?app=dash&function=greet");
    await p.click(`tr[data-call=${call.callId}] a`, WAIT);
    await p.waitForSelector(`[data-call-page=${call.callId}]`, WAIT);
    expect(JSON.parse(await p.locator("[data-part=result]").innerText())).toEqual({ greeting: "hello page" });
    expect(JSON.parse(await p.locator("[data-part=args]").innerText())).toEqual(["page"]);
    await p.waitForSelector(".log-line:has-text('greeting page')", WAIT);
    expect(await p.locator("[data-call-page] .fields").innerText()).toMatch(/container\s+ct-/);
  });

  it("shows a failed call's error with its traceback", async () => {
    const call = await (await fn("explode")).spawn("on purpose");
    await expect(call.get({ timeoutMs: 30_000 })).rejects.toBeInstanceOf(RemoteError);
    const p = await open(`#/calls/${call.callId}`);
    await p.waitForSelector("[data-part=traceback]", WAIT);
    expect(await p.locator("[data-part=error-message]").innerText()).toBe("it exploded: on purpose");
    const traceback = await p.locator("[data-part=traceback]").innerText();
    expect(traceback).toContain("TypeError: it exploded: on purpose");
    expect(traceback).toContain("explode");
    expect(await p.locator("[data-call-page] .badge").first().innerText()).toBe("failed");
  });

  it("lists a call's earlier attempts and why each ended", async () => {
    const call = await (await fn("retried")).spawn("twice");
    await expect(call.get({ timeoutMs: 30_000 })).rejects.toBeInstanceOf(RemoteError);
    const p = await open(`#/calls/${call.callId}`);
    await p.waitForSelector("[data-part=attempts]", WAIT);
    const row = await p.locator("[data-part=attempts] tr").innerText();
    expect(row).toContain("#1");
    expect(row).toContain("failed (a retry followed)");
    expect(row).toContain("RangeError: no luck: twice");
    expect(await p.locator("[data-call-page]").innerText()).toMatch(/attempt\s+2 of at most 2/);
  });

  it("finds a call by its pasted ID, and says what a call ID looks like otherwise", async () => {
    const call = await (await fn("greet")).spawn("found");
    const p = await open();
    await p.fill("input[name=call]", "fc-not-an-id");
    await p.press("input[name=call]", "Enter");
    await p.waitForSelector(".find .hint", WAIT);
    await p.fill("input[name=call]", call.callId);
    await p.press("input[name=call]", "Enter");
    await p.waitForSelector(`[data-call-page=${call.callId}]`, WAIT);
  });

  it("cancels a running call from its page, after asking", async () => {
    const call = await (await fn("wait")).spawn(600_000);
    const p = await open(`#/calls/${call.callId}`);
    await p.waitForSelector("[data-call-page] .badge[data-status=running]", WAIT);
    await p.click("button:has-text('Cancel call')");
    await p.click("dialog[open] button.danger");
    await p.waitForSelector("[data-call-page] .badge[data-status=cancelled]", WAIT);
    expect((await call.status()).status).toBe("cancelled");
  });

  it("cancels selected calls together, queued and running", async () => {
    const wait = await fn("wait");
    const calls = await Promise.all([1, 2, 3].map(() => wait.spawn(600_000)));
    const p = await open("#/calls?app=dash&function=wait");
    for (const c of calls) await p.waitForSelector(`tr[data-call=${c.callId}]`, WAIT);
    for (const c of calls) await p.check(`tr[data-call=${c.callId}] input[type=checkbox]`);
    await p.click("button:has-text('Cancel 3 selected')");
    await p.click("dialog[open] button.danger");
    for (const c of calls) await p.waitForSelector(`tr[data-call=${c.callId}][data-status=cancelled]`, WAIT);
    for (const c of calls) expect((await c.status()).status).toBe("cancelled");
  });

  it("filters by status and pages through many calls, fifty at a time", async () => {
    const greet = await fn("greet");
    const ids = (await greet.spawnMap(Array.from({ length: 120 }, (_, i) => `n${i}`))).map((c) => c.callId);
    for (const c of ids.slice(-3)) await t.client.functionCalls.fromId(c).then((x) => x.get({ timeoutMs: 30_000 }));
    const p = await open("#/calls?app=dash&function=greet&status=succeeded");
    const shown = () => p.locator("tr[data-call]").evaluateAll((els) => els.map((e) => e.getAttribute("data-call")!));
    await p.waitForSelector("tr[data-call]", WAIT);
    const first = await shown();
    expect(first).toHaveLength(50);
    expect([...first].sort().reverse()).toEqual(first); // newest first
    const statuses = await p.locator("tr[data-call]").evaluateAll((els) => els.map((e) => e.getAttribute("data-status")));
    expect(new Set(statuses)).toEqual(new Set(["succeeded"]));
    await p.click("a:has-text('Older')");
    await p.locator(`tr[data-call=${first[0]}]`).waitFor({ state: "detached", ...WAIT });
    const second = await shown();
    expect(second).toHaveLength(50);
    expect(second[0]! < first[49]!).toBe(true);
    await p.click("a:has-text('Newer')");
    await p.waitForSelector(`tr[data-call=${first[0]}]`, WAIT);
    expect(await shown()).toEqual(first);
  });

  it("shows containers with their slots, and follows an app's logs live", async () => {
    const greet = await fn("greet");
    await greet.remote("warm");
    const p = await open("#/containers");
    await p.waitForSelector("tr[data-container]", WAIT);
    expect(await p.locator("tr[data-container]").first().innerText()).toContain("dash · greet");
    await p.goto(`${t.baseUrl}/#/logs/dash`);
    await p.waitForSelector("pre.logs[data-following=yes]", WAIT);
    await greet.remote("followed");
    await p.waitForSelector(".log-line:has-text('greeting followed')", WAIT);
  });

  it("shows a class's methods, parameters and a pool per parameter set, and its containers by set", async () => {
    const Model = await t.client.cls.fromName("dash", "Model");
    expect(await (await Model.instance({ size: 3 })).method("predict").remote(2)).toBe(6);
    const p = await open("#/apps/dash");
    await p.waitForSelector("section[data-function=Model] >> text=(size=3)", WAIT);
    const text = await p.locator("section[data-function=Model]").innerText();
    expect(text).toContain("predict");
    expect(text).toContain("size: int = 1");
    expect(text).toMatch(/\(size=3\): 0 queued · 0 running · 1 containers/);
    await p.goto(`${t.baseUrl}/#/containers`);
    await p.waitForSelector("tr[data-container]:has-text('(size=3)')", WAIT);
    expect(await p.locator("tr[data-container]:has-text('(size=3)')").innerText()).toContain("dash · Model");
  });

  it("lists volumes with their size and files", async () => {
    const vol = await t.client.volumes.fromName("dash-data", { createIfMissing: true });
    await vol.putFile("notes/a.txt", "twelve bytes");
    const p = await open("#/volumes");
    await p.waitForSelector("tr[data-volume=dash-data]", WAIT);
    const row = await p.locator("tr[data-volume=dash-data]").innerText();
    expect(row).toContain("12 B");
    expect(row).toMatch(/\b2\b/); // a folder and a file
  });

  it("lists Dicts and Queues with their sizes", async () => {
    const d = await t.client.dicts.fromName("dash-dict", { createIfMissing: true });
    await d.update([["a", 1], ["b", 2], ["c", 3]]);
    const q = await t.client.queues.fromName("dash-queue", { createIfMissing: true });
    await q.putMany([1, 2]);
    await q.put(3, { partition: "other" });
    const p = await open("#/dicts-queues");
    await p.waitForSelector("tr[data-dict=dash-dict]", WAIT);
    expect(await p.locator("tr[data-dict=dash-dict]").innerText()).toMatch(/\b3\b/);
    expect(await p.locator("tr[data-queue=dash-queue]").innerText()).toMatch(/\b3\b[\s\S]*\b2\b/); // 3 items in 2 partitions
  });

  it("stops an app only after asking", async () => {
    const p = await open("#/apps/dash");
    await p.waitForSelector("button:has-text('Stop app')", WAIT);
    await p.click("button:has-text('Stop app')");
    await p.click("dialog[open] button:has-text('Keep it')");
    expect((await t.client.transport.json<{ apps: Array<{ state: string }> }>("GET", "/v1/apps")).apps[0]!.state).toBe("deployed");
    await p.click("button:has-text('Stop app')");
    await p.click("dialog[open] button.danger");
    await p.waitForSelector("h1 .badge.app-stopped", WAIT);
    expect((await t.client.transport.json<{ apps: Array<{ state: string }> }>("GET", "/v1/apps")).apps[0]!.state).toBe("stopped");
  });
});

describe("the dashboard of a daemon with GPUs", () => {
  let gpud: TestDaemon;
  beforeAll(async () => {
    gpud = await startTestDaemon({ nvidiaSmi: FAKE_SMI }); // two stand-in A100s: nvidia-smi alone, no device nodes needed to list them
  });
  afterAll(async () => {
    await gpud?.dispose();
  });

  it("charts each GPU's utilization and memory over the last minutes", async () => {
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${gpud.baseUrl}/#/gpus`);
    for (const i of [0, 1]) {
      const chart = `[data-gpu="${i}"] [data-chart=gpu-${i}]`;
      await page.waitForSelector(`${chart} canvas`, { timeout: 30_000 }); // the first sample comes within a sample period
      expect(await page.locator(chart).getAttribute("data-series")).toBe("2");
      expect(Number(await page.locator(chart).getAttribute("data-samples"))).toBeGreaterThanOrEqual(1);
    }
    expect(await page.locator(".error-box").count()).toBe(0);
  });

  it("draws no GPU chart, and shows no error, on a machine without GPUs", async () => {
    await gpud.restart({ nvidiaSmi: join(gpud.home, "no-nvidia-smi") });
    const p = (page = await browser.newPage({ viewport: { width: 1280, height: 800 } }));
    p.on("pageerror", (e) => pageErrors.push(e.message));
    await p.goto(`${gpud.baseUrl}/#/gpus`);
    await p.waitForSelector("h1:has-text('GPUs')", WAIT);
    await p.waitForSelector(".empty:has-text('No GPUs on this machine')", WAIT);
    expect(await p.locator("[data-chart]").count()).toBe(0);
    expect(await p.locator(".error-box").count()).toBe(0);
  });
});

describe("the dashboard of a daemon with a token", () => {
  let guarded: TestDaemon;
  beforeAll(async () => {
    guarded = await startTestDaemon({ token: "s3cret-token-for-the-browser-test" });
    await deploy(guarded, fixture("dashboard.ts"));
  });
  afterAll(async () => {
    await guarded?.dispose();
  });

  it("asks for the token once, keeps it out of the page's reach and out of URLs, and signs out", async () => {
    const context = await browser.newContext();
    page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const seen: string[] = [];
    page.on("request", (r) => seen.push(r.url()));
    await page.goto(`${guarded.baseUrl}/`);
    await page.waitForSelector("form.signin", WAIT);
    await page.fill("input[name=token]", "wrong");
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector("form.signin .error-box:has-text('wrong token')", WAIT);
    await page.fill("input[name=token]", "s3cret-token-for-the-browser-test");
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector("[data-app=dash]", WAIT);
    await page.waitForSelector("[data-live=live]", WAIT); // the status stream is let in too

    expect(await page.evaluate("document.cookie")).toBe(""); // HttpOnly: scripts cannot read it
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "gantry_session", httpOnly: true, sameSite: "Strict" });
    expect(cookie!.value).not.toContain("s3cret");
    expect(seen.filter((u) => u.includes("s3cret"))).toEqual([]);

    // Another tab of the same browser is signed in; signing out ends it.
    const again = await context.newPage();
    await again.goto(`${guarded.baseUrl}/#/calls`);
    await again.waitForSelector("h1:has-text('Calls')", WAIT);
    await again.click("button:has-text('Sign out')");
    await again.waitForSelector("form.signin", WAIT);
    expect(await context.cookies()).toEqual([]);
    // Signing out ended the session in the daemon too: a copy of the cookie opens nothing.
    expect((await fetch(`${guarded.baseUrl}/v1/health`, { headers: { cookie: `gantry_session=${cookie!.value}` } })).status).toBe(401);
    await context.close();
  });
});
