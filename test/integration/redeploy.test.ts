import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { containersOf, deploy, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
let dir: string;

beforeAll(async () => {
  t = await startTestDaemon();
  dir = mkdtempSync(join(tmpdir(), "gantry-redeploy-"));
});
afterAll(async () => {
  await t?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const version = (v: string) => {
  const file = join(dir, "app.ts");
  writeFileSync(file, `import { App } from "gantry";\nconst app = new App("versions");\nexport const which = app.function({}, async function which() { return "${v}"; });\n`);
  return file;
};

describe("redeploying changed code", () => {
  it("serves new calls with the new code and retires the old containers", async () => {
    await deploy(t, version("v1"));
    const fn = await t.client.functions.fromName("versions", "which");
    expect(await fn.remote()).toBe("v1");
    const [old] = await containersOf(t, "which");
    expect(old).toBeDefined();

    const events = await deploy(t, version("v2"));
    // The code changed, the image did not: nothing is built.
    expect(events.at(-1)).toMatchObject({ type: "done", built: [] });
    expect(await fn.remote()).toBe("v2");
    await vi.waitFor(async () => expect((await containersOf(t, "which")).map((c) => c.Id)).not.toContain(old!.Id), { timeout: 20_000 });
  });
});
