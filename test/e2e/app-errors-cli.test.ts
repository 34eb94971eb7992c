import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);
/** What only gantry's own frames would show: the temp bundle, the CLI, the SDK, node internals. */
const GANTRY_FRAMES = /gantry-deploy-|app\.mjs|node:internal|dist\/cli\/|[/]sdk[/]app\.(ts|js)/;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "ge-names-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("gantry deploy: function names and errors in app files", () => {
  it("deploys an arrow function under its export's name, and calls it by that name", async () => {
    const dep = await g("deploy", fixture("export-names.ts"));
    expect(dep.code, dep.stderr).toBe(0);
    expect(dep.stdout).toMatch(/^ {2}double {2}/m);
    const called = await g("call", "export-names", "double", "21");
    expect(called.code, called.stderr).toBe(0);
    expect(called.stdout.trim()).toBe("42");
  });

  it("points an error thrown while the app file loads at the user's file and line, without gantry's frames", async () => {
    const file = fixture("throws-at-load.ts");
    const dep = await g("deploy", file);
    expect(dep.code).toBe(2);
    expect(dep.stderr).toContain(`Error: loading ${file} failed: TypeError: settings.json has no field "model"`);
    expect(dep.stderr).toContain(`at readSettings (${file}:7:9)`);
    expect(dep.stderr).toContain(`${file}:11:1`);
    expect(dep.stderr).not.toMatch(GANTRY_FRAMES);

    const verbose = await g("--verbose", "deploy", file);
    expect(verbose.code).toBe(2);
    expect(verbose.stderr).toContain(`at readSettings (${file}:7:9)`);
    expect(verbose.stderr).toMatch(/node:internal|dist\/cli\//);
  });

  it("points an error the SDK raises at the app file's line, not into the SDK", async () => {
    const file = fixture("bad-app-name.ts");
    const dep = await g("deploy", file);
    expect(dep.code).toBe(2);
    expect(dep.stderr).toContain(`App name "not a valid name" is invalid`);
    expect(dep.stderr).toContain(`${file}:4:20`);
    expect(dep.stderr).not.toMatch(GANTRY_FRAMES);
    const verbose = await g("deploy", file, "--verbose");
    expect(verbose.stderr).toMatch(/at new App \(.*[/]sdk[/]app\.(ts|js):\d+:\d+\)/);
  });

  it("refuses a function whose name differs from its export, saying which to use", async () => {
    const file = fixture("misnamed.ts");
    const dep = await g("deploy", file);
    expect(dep.code).toBe(2);
    expect(dep.stderr).toContain(`function "resize_image" (defined at ${file}:6:27) is exported as "resize"`);
    expect(dep.stderr).toContain("export const resize = app.function(..., async function resize(...) {...})");
    expect(dep.stderr).toContain("or make the handler anonymous");
  });

  it("shows a Python app file's import error at the user's file and line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ge-py-"));
    try {
      const file = join(dir, "broken_app.py");
      writeFileSync(file, `import gantry\n\napp = gantry.App("broken-py")\nraise RuntimeError("no config")\n`);
      const dep = await g("deploy", file);
      expect(dep.code).toBe(2);
      expect(dep.stderr).toContain(`File "${file}", line 4, in <module>`);
      expect(dep.stderr).toContain("RuntimeError: no config");
      expect(dep.stderr).not.toMatch(/_appfile\.py|importlib/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
