/**
 * The dashboard's Sandboxes page in headless Chromium (playwright-core) against a real daemon on
 * the real Docker engine: sandboxes made through the HTTP API appear in the list, a row opens the
 * sandbox's page with its main command's output, and Terminate ends it after asking. Each step
 * waits for what the page shows, with a deadline.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SandboxCreate, SandboxView } from "../../protocol/sandboxes.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const CHROMIUM = process.env.GANTRY_CHROMIUM ?? "/usr/bin/chromium";
const WAIT = { timeout: 30_000 };

let t: TestDaemon;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium), or GANTRY_CHROMIUM`);
  t = await startTestDaemon();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await t?.dispose();
});

async function open(hash: string): Promise<Page> {
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${t.baseUrl}/${hash}`);
  return page;
}
afterEach(async () => {
  await page?.close();
  expect(pageErrors.splice(0)).toEqual([]); // no script error on any page
});

async function http<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${t.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Makes a sandbox through the HTTP API and waits until it left "pending". */
async function create(body: SandboxCreate): Promise<SandboxView> {
  const made = await http<SandboxView>("POST", "/v1/sandboxes", body);
  expect(made.status).toBe(201);
  const deadline = Date.now() + 60_000;
  for (let s = made.body; ; ) {
    if (s.state !== "pending") return s;
    if (Date.now() > deadline) throw new Error(`${s.id} still pending after 60 s`);
    s = (await http<SandboxView>("GET", `/v1/sandboxes/${s.id}?wait=10&until=running`)).body;
  }
}

const stateOf = async (id: string) => (await http<SandboxView>("GET", `/v1/sandboxes/${id}`)).body;

// Text a program prints that would be markup if the page put it in as HTML.
const MARKUP = `<b>bold</b> <img src=x onerror="document.body.dataset.owned=1">`;

describe("the dashboard's Sandboxes page", () => {
  let running: SandboxView;
  let chatty: SandboxView;

  beforeAll(async () => {
    running = await create({
      app: "dash-sb",
      runtime: "node",
      name: "keeper",
      tags: { suite: "dash" },
      block_network: true,
      command: ["sh", "-c", `printf '%s\\n' '${MARKUP}'; echo to-stderr >&2; exec sleep 600`],
    });
    // Some 100 KB of two-byte characters: more than the page's 64 KiB tail.
    chatty = await create({
      app: "dash-sb",
      runtime: "node",
      block_network: true,
      command: ["sh", "-c", 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "ééééééééééé line $i"; done'],
    });
    expect(running.state).toBe("running");
  });

  it("lists sandboxes live, filters the running ones, and opens one from its row", async () => {
    const p = await open("#/sandboxes");
    await p.waitForSelector(`tr[data-sandbox=${running.id}][data-state=running]`, WAIT);
    await p.waitForSelector(`tr[data-sandbox=${chatty.id}][data-state=finished]`, WAIT); // it ends on its own
    const row = await p.locator(`tr[data-sandbox=${running.id}]`).innerText();
    expect(row).toContain("dash-sb");
    expect(row).toContain("keeper");
    expect(row).toContain("suite=dash");
    expect(await p.locator(`tr[data-sandbox=${chatty.id}] [data-part=returncode]`).innerText()).toBe("0");
    const ids = await p.locator("tr[data-sandbox]").evaluateAll((els) => els.map((e) => e.getAttribute("data-sandbox")));
    expect(ids).toEqual([chatty.id, running.id]); // newest first

    // Live: a change made elsewhere shows without reloading the page.
    await p.evaluate("window.__sameDocument = true");
    expect((await http("PUT", `/v1/sandboxes/${running.id}/tags`, { tags: { suite: "dash", step: "two" } })).status).toBe(200);
    await p.waitForSelector(`tr[data-sandbox=${running.id}] [data-tag=step]`, WAIT);
    expect(await p.evaluate("window.__sameDocument")).toBe(true);

    await p.click("[data-filter-state=running]");
    await p.locator(`tr[data-sandbox=${chatty.id}]`).waitFor({ state: "detached", ...WAIT });
    expect(await p.locator("tr[data-sandbox]").count()).toBe(1);

    await p.click(`tr[data-sandbox=${running.id}] td:nth-child(3)`); // the row, not its link
    await p.waitForSelector(`[data-sandbox-page=${running.id}]`, WAIT);
    expect(new URL(p.url()).hash).toBe(`#/sandboxes/${running.id}`);
  });

  it("shows the main command's stdout and stderr as text, never as markup", async () => {
    const p = await open(`#/sandboxes/${running.id}`);
    await p.waitForSelector("[data-part=stdout]", WAIT);
    expect((await p.locator("[data-part=stdout]").innerText()).trim()).toBe(MARKUP);
    expect(await p.locator("[data-part=stdout] b, [data-part=stdout] img").count()).toBe(0);
    expect(await p.locator("body[data-owned]").count()).toBe(0);
    await p.waitForSelector("[data-part=stderr]", WAIT);
    expect((await p.locator("[data-part=stderr]").innerText()).trim()).toBe("to-stderr");
    const command = await p.locator("[data-part=command]").innerText();
    expect(command.startsWith("sh -c 'printf")).toBe(true); // quoted as a shell reads it back
    expect(command.endsWith("exec sleep 600'")).toBe(true);
  });

  it("shows only the last 64 KiB of a long output, from a whole character", async () => {
    const p = await open(`#/sandboxes/${chatty.id}`);
    await p.waitForSelector("[data-part=stdout]", WAIT);
    const text = await p.locator("[data-part=stdout]").innerText();
    expect(text.trimEnd().endsWith("ééééééééééé line 3000")).toBe(true);
    expect(text).not.toContain("line 1\n");
    expect(text).not.toContain("\uFFFD");
    expect(new TextEncoder().encode(text).length).toBeLessThanOrEqual(64 * 1024);
    expect(await p.locator("[data-stream=stdout]").innerText()).toMatch(/The first .+ are not shown/);
    await p.waitForSelector("[data-part=stderr-empty]", WAIT);
    expect(await p.locator("[data-sandbox-page] > header button.danger").count()).toBe(0); // it ended by itself
  });

  it("terminates a sandbox only after asking, and shows it ended", async () => {
    const p = await open(`#/sandboxes/${running.id}`);
    await p.waitForSelector(".badge[data-status=running]", WAIT);
    await p.click("button.danger:has-text('Terminate')");
    await p.click("dialog[open] button:has-text('Keep it')");
    expect((await stateOf(running.id)).state).toBe("running");

    await p.click("button.danger:has-text('Terminate')");
    await p.click("dialog[open] button.danger");
    await p.waitForSelector(`[data-sandbox-page=${running.id}] .badge[data-status=terminated]`, WAIT);
    expect(await p.locator("[data-sandbox-page] [data-part=returncode]").innerText()).toBe("137");
    expect(await p.locator("[data-sandbox-page] > header button.danger").count()).toBe(0);
    const after = await stateOf(running.id);
    expect(after).toMatchObject({ state: "terminated", returncode: 137 });

    await p.goto(`${t.baseUrl}/#/sandboxes`);
    await p.waitForSelector(`tr[data-sandbox=${running.id}][data-state=terminated]`, WAIT);
  });

  it("says so for a sandbox the daemon does not know", async () => {
    const p = await open("#/sandboxes/sb-000000000000000000");
    await p.waitForSelector(".error-box", WAIT);
    expect(await p.locator(".error-box").innerText()).toContain("sb-000000000000000000");
    expect(await p.locator("[data-sandbox-page]").count()).toBe(0);
  });
});
