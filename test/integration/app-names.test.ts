import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../sdk/errors.js";
import type { DeployEvent } from "../../protocol/api.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
let deployed: DeployEvent[];

beforeAll(async () => {
  t = await startTestDaemon();
  deployed = await deploy(t, fixture("export-names.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const fn = (name: string) => t.client.functions.fromName("export-names", name);

describe("functions named by their exports, end to end", () => {
  it("deploys anonymous handlers under their export names, in the app file's order", async () => {
    const done = deployed.at(-1);
    expect(done?.type === "done" && done.functions.map((f) => f.name)).toEqual(["double", "refuse", "greet", "named"]);
  });

  it("runs an arrow function deployed as its export: the agent finds it by the same name", async () => {
    expect(await (await fn("double")).remote(21)).toBe(42);
    expect(await (await fn("named")).remote()).toBe("still named as before");
  });

  it("serves an anonymous web endpoint at its export's name", async () => {
    const res = await fetch(`${t.webUrl}/web/export-names/greet/there`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello from /there");
  });

  it("gives the caller a traceback that names the app file and line, not the bundle", async () => {
    const err = await (await fn("refuse")).remote("no").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ remoteType: "RangeError" });
    const traceback = (err as RemoteError).traceback;
    expect(traceback).toContain(`${fixture("export-names.ts")}:9:9`);
    expect(traceback).not.toMatch(/app\.mjs/);
  });

  it("names the app file and line when the app cannot load in its container", async () => {
    await deploy(t, fixture("fails-in-container.ts"));
    const call = await (await t.client.functions.fromName("fails-in-container", "never")).spawn();
    const err = await call.get({ timeoutMs: 50_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).traceback).toContain(`${fixture("fails-in-container.ts")}:7:9`);
  }, 60_000);
});
