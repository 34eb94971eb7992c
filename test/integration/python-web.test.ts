/**
 * Python web endpoints on the real Docker engine: Modal's job-queue guide (its two files, imports
 * changed) driven with a plain HTTP client, FastAPI, WSGI and raw ASGI endpoints, and calls from
 * Python containers to other functions.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gantry, runPython } from "../helpers/cli.js";
import { deploy, fixture, guideFile, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, guideFile("my_job_queue.py"));
  await deploy(t, guideFile("my_job_queue_endpoint.py")); // pip_install("fastapi[standard]") from the package index
  await deploy(t, pyFixture("web/py_web.py"));
  await deploy(t, fixture("web.ts"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

describe("the job-queue guide's web file", () => {
  it("submits a job and polls its result over plain HTTP: 202 while pending, then 200 with the result", async () => {
    const base = `${t.webUrl}/web/fastapi-modal/fastapi_app`;
    const submitted = await fetch(`${base}/submit?data=data`, { method: "POST" });
    expect(submitted.status).toBe(200);
    const { call_id } = (await submitted.json()) as { call_id: string };
    expect(call_id).toMatch(/^fc-[0-9a-z]{26}$/);
    const seen: number[] = [];
    await vi.waitFor(
      async () => {
        const res = await fetch(`${base}/result/${call_id}`);
        seen.push(res.status);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ result: "data" });
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(seen.slice(0, -1).every((s) => s === 202)).toBe(true);
  });
});

describe("web endpoint methods on a class", () => {
  it("serve each method at CLASS.METHOD after @enter, the parameter set from the query; other methods stay calls", async () => {
    const plain = await (await fetch(`${t.webUrl}/web/py-web/Greeter.greet/?name=bo`)).json();
    expect(plain).toMatchObject({ text: "hello bo" });
    const hi = await (await fetch(`${t.webUrl}/web/py-web/Greeter.greet/?name=bo&greeting=hi`)).json();
    expect(hi).toMatchObject({ text: "hi bo" });
    expect((hi as { container: string }).container).not.toBe((plain as { container: string }).container);
    expect(await (await fetch(`${t.webUrl}/web/py-web/Greeter.api/items/3?greeting=yo`)).json()).toEqual({ item: 3, greeting: "yo" });
    const notWeb = await fetch(`${t.webUrl}/web/py-web/Greeter.plain/`);
    expect(notWeb.status).toBe(404);
    expect(await notWeb.text()).toContain("py-web.Greeter has no web endpoint method");
    const r = await runPython(t.home, `
import gantry as modal
G = modal.Cls.from_name("py-web", "Greeter")
print(G().plain.remote("x"), G(greeting="hey you").greet.get_web_url().split("/web/")[1])
try:
    G().greet.remote()
except modal.exception.InvalidError as e:
    print("InvalidError", e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      "hello x py-web/Greeter.greet/?greeting=hey+you\nInvalidError py-web.Greeter.greet is a web endpoint: send it HTTP requests at /web/py-web/Greeter.greet/\n",
    );
    const apps = await gantry(t.home, ["apps", "ls"]);
    expect(apps.stdout).toContain("py-web.Greeter.greet");
  }, 120_000);
});

describe("Python web endpoints", () => {
  it("fastapi_endpoint serves one route", async () => {
    const res = await fetch(`${t.webUrl}/web/py-web/greet/`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"name": "ada"}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ hello: "ada" });
  });

  it("wsgi_app gets the path below the prefix as PATH_INFO, the prefix as SCRIPT_NAME, the query and the body", async () => {
    const res = await fetch(`${t.webUrl}/web/py-web/wsgi/a/b?x=1`, { method: "PUT", body: "payload" });
    expect(await res.json()).toEqual({ method: "PUT", script_name: "/web/py-web/wsgi", path_info: "/a/b", query: "x=1", body: "payload" });
  });

  it("asgi_app streams a response chunk by chunk", async () => {
    const res = await fetch(`${t.webUrl}/web/py-web/events/stream`);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    expect(dec.decode((await reader.read()).value)).toBe("data: one\n\n");
    expect(await (await fetch(`${t.webUrl}/web/py-web/events/release`)).text()).toBe("released\n");
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += dec.decode(r.value);
    expect(rest).toBe("data: two\n\n");
  });

  it("a Python function calls a TypeScript one from inside its container", async () => {
    expect(await (await t.client.functions.fromName("py-web", "call_ts")).remote(21)).toBe(42);
  });
});
