/**
 * Python app files through the real CLI: image steps and image-only imports, and each bad input
 * with a clear message and its exit code.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { guideFile, pyFixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gy-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("Python apps from the CLI", () => {
  it("deploys an app whose top-level import exists only in its image, saying so; image steps and a local folder work", async () => {
    const dep = await g("deploy", pyFixture("images/py_images.py"));
    expect(dep.code, dep.stderr).toBe(0);
    expect(dep.stderr).toContain("not importable here, read as stand-ins (the image must have them): only_in_image");
    const called = await g("call", "py-images", "inspect", "--json");
    expect(called.code, called.stderr).toBe(0);
    expect(JSON.parse(called.stdout).result).toEqual({
      value: 42,
      greeting: "hello",
      asset: "hello from the deploying machine\n",
      executable: true,
    });
  });

  it("a syntax error: exit 2, with the file, the line and the code", async () => {
    const r = await g("deploy", pyFixture("bad/syntax_error.py"));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/syntax_error\.py:7: SyntaxError: expected ':'\n\s+def f\(x\)/);
  });

  it("an app file with no App: exit 2", async () => {
    const r = await g("deploy", pyFixture("bad/no_app.py"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no_app.py defines no gantry App: add app = gantry.App("name")');
  });

  it("an unknown option: exit 2, naming it", async () => {
    const r = await g("deploy", pyFixture("bad/unknown_option.py"));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown_option\.py", line 6, in <module>[\s\S]*TypeError: .*function\(\) got an unexpected keyword argument 'gpus'/);
  });

  it("an option out of bounds: exit 2, in the app file's own names", async () => {
    const r = await g("deploy", pyFixture("bad/bad_option_value.py"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("function f: max_containers must be at most 100");
  });

  it("an argument that cannot be pickled: the entrypoint fails in the caller naming it, exit 1", async () => {
    const r = await g("run", pyFixture("bad/not_picklable_arg.py"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SerializationError: py-not-picklable\.f: positional argument 0 \(lock\) cannot be pickled/);
  });

  it("gantry run: a file that is no app file, or an unknown entrypoint option, is refused with exit 2 (more in run-cli.test.ts)", async () => {
    const other = await g("run", "app.rb");
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("gantry run takes an app file ending in .py, .ts, .mts, .js or .mjs, not app.rb");
    const opt = await g("run", guideFile("my_job_queue.py"), "--data", "x");
    expect(opt.code).toBe(2);
    expect(opt.stderr).toContain("the entrypoint main has no option --data (it takes: none)");
  });
});
