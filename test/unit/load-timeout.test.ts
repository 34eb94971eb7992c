import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { bundleApp, loadAppLocally } from "../../cli/bundle-app.js";
import { DEFAULT_LOAD_TIMEOUT_S, loadTimeoutOption, loadTimeoutSeconds } from "../../cli/load-timeout.js";
import { readPythonApp } from "../../cli/python-app.js";

const dir = mkdtempSync(join(tmpdir(), "gantry-load-timeout-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};
const TS_HEADER = `import { App } from "gantry";\nconst app = new App("slow");\nexport const f = app.function({}, async () => 1);\n`;
const timedOut = (file: string, s: number) => new RegExp(`^${file.replace(/[.]/g, "\\.")} did not finish loading within ${s} s: .*--load-timeout SECONDS or GANTRY_LOAD_TIMEOUT=SECONDS$`);

describe("the load timeout's setting", () => {
  it("is the option, else GANTRY_LOAD_TIMEOUT, else 60 s", () => {
    expect(loadTimeoutSeconds(undefined, {})).toBe(DEFAULT_LOAD_TIMEOUT_S);
    expect(loadTimeoutSeconds(undefined, { GANTRY_LOAD_TIMEOUT: "2.5" })).toBe(2.5);
    expect(loadTimeoutSeconds("7", { GANTRY_LOAD_TIMEOUT: "2" })).toBe(7);
  });

  it("refuses what is not a number of seconds above 0, naming where it came from", () => {
    expect(() => loadTimeoutSeconds("0", {})).toThrow(`--load-timeout must be a number of seconds above 0 and at most 86400, got "0"`);
    expect(() => loadTimeoutSeconds("soon", {})).toThrow(/--load-timeout must be a number of seconds/);
    expect(() => loadTimeoutSeconds(undefined, { GANTRY_LOAD_TIMEOUT: "-1" })).toThrow(/^GANTRY_LOAD_TIMEOUT must be a number of seconds above 0 and at most 86400, got "-1"$/);
    expect(() => loadTimeoutSeconds("100000", {})).toThrow(/at most 86400/);
  });

  it("is read from gantry run's own options, in either spelling", () => {
    expect(loadTimeoutOption(["--detach", "--load-timeout", "5"])).toBe("5");
    expect(loadTimeoutOption(["--load-timeout=9"])).toBe("9");
    expect(loadTimeoutOption(["--detach"])).toBeUndefined();
  });
});

describe("a TypeScript app file that does not finish loading", () => {
  it("is given up after the limit, whether it loops or waits forever, and this process goes on", async () => {
    const loops = write("loops.ts", `${TS_HEADER}while (true) {}\n`);
    const started = Date.now();
    await expect(bundleApp(loops, { loadTimeoutS: 1 })).rejects.toThrow(timedOut(loops, 1));
    expect(Date.now() - started).toBeLessThan(15_000); // the bundle, a worker's start, and the second of the limit
    const waits = write("waits.ts", `${TS_HEADER}await new Promise(() => setInterval(() => {}, 1000));\n`);
    await expect(bundleApp(waits, { loadTimeoutS: 1 })).rejects.toThrow(timedOut(waits, 1));
    // The worker is gone with its loop: this thread still runs, and the next app reads as ever.
    const ok = write("ok.ts", TS_HEADER);
    await expect(bundleApp(ok, { loadTimeoutS: 5 })).resolves.toMatchObject({ app: "slow", functions: [{ name: "f" }] });
  });

  it("is given up before gantry run imports it in its own thread", async () => {
    const loops = write("run-loops.ts", `${TS_HEADER}for (;;) {}\n`);
    await expect(loadAppLocally(loops, { loadTimeoutS: 1 })).rejects.toThrow(timedOut(loops, 1));
    const ok = write("run-ok.ts", TS_HEADER);
    const { app } = await loadAppLocally(ok, { loadTimeoutS: 5 });
    expect([...app.functions.keys()]).toEqual(["f"]);
  });

  it("reports what an app file throws from a callback or ends its process with, as a load failure", async () => {
    const exits = write("exits.ts", `${TS_HEADER}process.exit(3);\n`);
    await expect(bundleApp(exits, { loadTimeoutS: 5 })).rejects.toThrow(/loading .*exits\.ts failed: Error: the app file ended its process \(exit code 3\)/);
    const stuck = write("stuck.ts", `${TS_HEADER}await new Promise(() => {});\n`);
    await expect(bundleApp(stuck, { loadTimeoutS: 5 })).rejects.toThrow(/loading .*stuck\.ts failed: Error: the app file never finished loading: a top-level await waits for a promise that nothing will settle/);
    const late = write("late.ts", `${TS_HEADER}setTimeout(() => { throw new Error("late boom"); }, 0);\nawait new Promise((r) => setTimeout(r, 50));\n`);
    await expect(bundleApp(late, { loadTimeoutS: 5 })).rejects.toThrow(/loading .*late\.ts failed: Error: late boom/);
  });
});

describe("a Python app file that does not finish loading", () => {
  it("has its python3 killed at the limit, and says so", async () => {
    const pidFile = join(dir, "py.pid");
    const loops = write("loops_app.py", `import os\nimport gantry\napp = gantry.App("slow-py")\nopen(${JSON.stringify(pidFile)}, "w").write(str(os.getpid()))\nwhile True:\n    pass\n`);
    await expect(readPythonApp(loops, { loadTimeoutS: 2 })).rejects.toThrow(timedOut(loops, 2));
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    await vi.waitFor(() => expect(() => process.kill(pid, 0)).toThrow(/ESRCH/), { timeout: 5000 });
  });
});
