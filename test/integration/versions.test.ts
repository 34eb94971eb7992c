/**
 * Versions (issue 21) on the real daemon and Docker engine: every deploy is a numbered version with
 * what changed; `gantry app rollback` serves an earlier one again without building (calls get the
 * old code), recorded as a new version; `gantry app history` lists them; an unknown version exits 4
 * naming the versions there are; a version whose image is gone is refused, naming the image.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RollbackView, VersionView } from "../../protocol/api.js";
import { gantry } from "../helpers/cli.js";
import { deploy, deployEvents, docker, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
let dir: string;
const APP = "versions-it";

beforeAll(async () => {
  t = await startTestDaemon();
  dir = mkdtempSync(join(tmpdir(), "gantry-versions-"));
}, 120_000);
afterAll(async () => {
  await t?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** The app file: `which` answers `answer`; options and an image of its own when asked. */
const appFile = (answer: string, opts: { timeout?: number; stamp?: string; extra?: boolean } = {}) => {
  const file = join(dir, `app-${answer}.ts`);
  const options = [opts.timeout ? `timeout: ${opts.timeout}` : "", opts.stamp ? `image: Image.node().env({ STAMP: ${JSON.stringify(opts.stamp)} })` : ""].filter(Boolean).join(", ");
  writeFileSync(
    file,
    [
      `import { App, Image } from "gantry";`,
      `void Image;`,
      `const app = new App(${JSON.stringify(APP)});`,
      `export const which = app.function({ ${options} }, async function which() { return ${JSON.stringify(answer)}; });`,
      opts.extra ? `export const extra = app.function({}, async function extra() { return 1; });` : "",
    ].join("\n"),
  );
  return file;
};

const versions = async () => (await t.client.transport.json<{ versions: VersionView[] }>("GET", `/v1/apps/${APP}/versions`)).versions;
const which = async () => (await t.client.functions.fromName(APP, "which")).remote();

describe("versions", () => {
  it("number every deploy and say what changed, newest (current) first", async () => {
    await deploy(t, appFile("one"));
    await deploy(t, appFile("two", { timeout: 30, extra: true }));
    const list = await versions();
    expect(list.map((v) => [v.version, v.current])).toEqual([
      [2, true],
      [1, false],
    ]);
    expect(list[1]!.changes).toEqual(["first version: which"]);
    expect(list[0]!.changes).toEqual(expect.arrayContaining(["added function extra", expect.stringMatching(/^code changed/), "which: options changed (startupTimeoutMs, timeoutMs)"]));
    expect(list[0]!.functions.map((f) => f.name)).toEqual(["extra", "which"]);
    expect(await which()).toBe("two");

    const history = await gantry(t.home, ["app", "history", APP]);
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/^VERSION\s+DEPLOYED\s+FUNCTIONS\s+CHANGES/);
    expect(history.stdout).toMatch(/v2 \(current\)\s+\S+ ago\s+extra, which\s+added function extra/);
    const json = await gantry(t.home, ["app", "history", APP, "--json"]);
    expect((JSON.parse(json.stdout) as VersionView[]).map((v) => v.version)).toEqual([2, 1]);
  }, 180_000);

  it("roll back to the version before the current without building: calls get its code", async () => {
    const res = await gantry(t.home, ["app", "rollback", APP, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    const done = JSON.parse(res.stdout) as RollbackView;
    expect(done.rollback_to).toBe(1);
    expect(done.version).toMatchObject({ version: 3, current: true, rolled_back_from: 2, rollback_to: 1 });
    expect(done.version.changes[0]).toBe("rollback to v1");
    expect(done.version.changes).toContain("removed function extra");
    expect(done.functions.map((f) => f.name)).toEqual(["which"]);
    expect(await which()).toBe("one");
    const app = await t.client.transport.json<{ functions: Array<{ name: string }> }>("GET", `/v1/apps/${APP}`);
    expect(app.functions.map((f) => f.name)).toEqual(["which"]);

    // A named version, with its human output.
    const named = await gantry(t.home, ["app", "rollback", APP, "v2"]);
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout).toContain(`rolled ${APP} back to v2: it serves v4 now`);
    expect(await which()).toBe("two");
    expect((await versions()).map((v) => v.version)).toEqual([4, 3, 2, 1]);
  }, 120_000);

  it("refuse an unknown app or version (exit 4), naming the versions there are", async () => {
    const unknown = await gantry(t.home, ["app", "rollback", APP, "9"]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain(`app ${APP} has no version 9: its versions are v1–v4`);
    const noApp = await gantry(t.home, ["app", "history", "no-such-app"]);
    expect(noApp.code).toBe(4);
    const bad = await gantry(t.home, ["app", "rollback", APP, "latest"]);
    expect(bad.code).toBe(2);
  });

  it("refuse a version whose image is gone, naming it, and keep serving the current one", async () => {
    const stamp = `s${Date.now()}`;
    const events = await deployEvents(t, appFile("stamped", { stamp }));
    const done = events.at(-1);
    if (done?.type !== "done") throw new Error(`deploy failed: ${JSON.stringify(done)}`);
    const tag = done.functions[0]!.image;
    await deploy(t, appFile("after"));
    expect(await which()).toBe("after");
    const stamped = (await versions()).find((v) => v.functions.some((f) => f.image === tag))!;
    await docker.getImage(tag).remove({ force: true });

    const res = await gantry(t.home, ["app", "rollback", APP, String(stamped.version)]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`its image ${tag} is gone from Docker; deploy that version's code again instead`);
    expect(await which()).toBe("after");
    expect((await versions())[0]!.changes[0]).not.toMatch(/^rollback/);
  }, 300_000);
});
