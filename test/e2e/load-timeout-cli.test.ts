/**
 * An app file that never finishes loading (a loop at import), through the real CLI binary:
 * `gantry deploy`, `serve` and `run` give up after the load timeout (GANTRY_LOAD_TIMEOUT or
 * --load-timeout), exit 2 saying so and how to allow longer, and leave no process behind.
 * Reading an app comes before any talk with a daemon: none is started.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";

const home = mkdtempSync(join(tmpdir(), "ge-load-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

const pidFile = (name: string) => join(home, `${name}.pid`);
/** An app file that writes the pid of the process importing it, then loops forever. */
function loopingApp(name: string, ext: "ts" | "py"): string {
  const file = join(home, `${name}.${ext}`);
  const text =
    ext === "ts"
      ? `import { writeFileSync } from "node:fs";\nimport { App } from "gantry";\nconst app = new App("loops");\n` +
        `export const f = app.function({}, async () => 1);\nexport const main = app.localEntrypoint(async function main() {});\n` +
        `writeFileSync(${JSON.stringify(pidFile(name))}, String(process.pid));\nwhile (true) {}\n`
      : `import os\nimport gantry\n\napp = gantry.App("loops-py")\n\n@app.function()\ndef f():\n    return 1\n\n` +
        `open(${JSON.stringify(pidFile(name))}, "w").write(str(os.getpid()))\nwhile True:\n    pass\n`;
  writeFileSync(file, text);
  return file;
}

/** The process that imported the app (the CLI itself for TypeScript, python3 for Python) is gone. */
function gone(name: string): void {
  const pid = Number(readFileSync(pidFile(name), "utf8"));
  expect(pid).toBeGreaterThan(0);
  expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  rmSync(pidFile(name));
}

function expectTimedOut(r: { code: number; stderr: string }, file: string, seconds: number): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(`Error: ${file} did not finish loading within ${seconds} s: does it loop or wait forever at import`);
  expect(r.stderr).toContain("--load-timeout SECONDS or GANTRY_LOAD_TIMEOUT=SECONDS");
}

const timed = async <T>(work: () => Promise<T>) => {
  const started = Date.now();
  const result = await work();
  return { result, seconds: (Date.now() - started) / 1000 };
};

describe("an app file that loops forever at import", () => {
  it("gantry deploy of a TypeScript file exits 2 after GANTRY_LOAD_TIMEOUT, and --load-timeout overrides it", async () => {
    const file = loopingApp("deploy_ts", "ts");
    const { result, seconds } = await timed(() => gantry(home, ["deploy", file], { GANTRY_LOAD_TIMEOUT: "2" }));
    expectTimedOut(result, file, 2);
    expect(seconds).toBeGreaterThanOrEqual(2);
    expect(seconds).toBeLessThan(30);
    gone("deploy_ts");
    const flagged = await gantry(home, ["deploy", "--load-timeout", "1", file], { GANTRY_LOAD_TIMEOUT: "50" });
    expectTimedOut(flagged, file, 1);
    gone("deploy_ts");
  });

  it("gantry deploy of a Python file kills python3 at the limit and exits 2", async () => {
    const file = loopingApp("deploy_py", "py");
    const { result, seconds } = await timed(() => gantry(home, ["deploy", file], { GANTRY_LOAD_TIMEOUT: "2" }));
    expectTimedOut(result, file, 2);
    expect(seconds).toBeLessThan(30);
    gone("deploy_py");
  });

  it("gantry run and gantry serve give up the same way, for TypeScript and Python", async () => {
    for (const ext of ["ts", "py"] as const) {
      const file = loopingApp(`run_${ext}`, ext);
      expectTimedOut(await gantry(home, ["run", file], { GANTRY_LOAD_TIMEOUT: "2" }), file, 2);
      gone(`run_${ext}`);
      expectTimedOut(await gantry(home, ["run", "--load-timeout=1", file], {}), file, 1);
      gone(`run_${ext}`);
      expectTimedOut(await gantry(home, ["serve", file, "--load-timeout", "1"], {}), file, 1);
      gone(`run_${ext}`);
    }
  });

  it("refuses a limit that is not a number of seconds above 0 (exit 2), naming where it came from", async () => {
    const file = join(home, "never-read.ts");
    const bad = await gantry(home, ["deploy", "--load-timeout", "0", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`Error: --load-timeout must be a number of seconds above 0 and at most 86400, got "0"`);
    const env = await gantry(home, ["deploy", file], { GANTRY_LOAD_TIMEOUT: "soon" });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain(`Error: GANTRY_LOAD_TIMEOUT must be a number of seconds above 0 and at most 86400, got "soon"`);
  });
});
