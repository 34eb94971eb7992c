/**
 * Deployer's storing of an app's files: paths refused as a set before anything is written, and a
 * write that fails midway (a full disk, here one failing write) leaves no temp folder behind.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { DeployRequest } from "../../protocol/function-spec.js";
import { silentLogger } from "../../daemon/logger.js";
import { Deployer, type DeployerDeps } from "../../daemon/service/deployer.js";

const failing = vi.hoisted(() => ({ name: "" }));
vi.mock("node:fs/promises", async (original) => {
  const fs = await original<typeof import("node:fs/promises")>();
  const writeFile: typeof fs.writeFile = async (file, ...rest) => {
    if (failing.name && String(file).endsWith(failing.name)) throw Object.assign(new Error(`ENOSPC: no space left on device, open '${String(file)}'`), { code: "ENOSPC", path: String(file) });
    return fs.writeFile(file, ...rest);
  };
  return { ...fs, writeFile, default: { ...fs, writeFile } };
});

const dir = mkdtempSync(join(tmpdir(), "gantry-bundle-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const appsDir = join(dir, "apps");
// Nothing past storing the files is reached in these tests: the rest of the deployer's ports stay empty.
const deployer = new Deployer({ appsDir, log: silentLogger, webBase: () => null, baseImages: { node: "node", python: "python" } } as unknown as DeployerDeps);

const request = (files: Record<string, string>): DeployRequest => ({ app: "files", runtime: "python", module: "app", functions: [{ name: "f", options: {} }], files });
const leftovers = () => (existsSync(join(appsDir, "files")) ? readdirSync(join(appsDir, "files")) : []);

describe("Deployer: an app's files on disk", () => {
  it("refuses a file that is also a folder before writing anything", async () => {
    await expect(deployer.deploy(request({ "app.py": "x = 1", "app.py/x.py": "y = 2" }), () => {})).rejects.toMatchObject({
      code: "invalid_argument",
      message: `the app's files: the path "app.py" is a file, and also the folder of "app.py/x.py"`,
    });
    expect(leftovers()).toEqual([]);
  });

  it("removes its temp folder when a write fails midway, and rethrows the write's error", async () => {
    failing.name = "b.py";
    try {
      const files = { "app.py": "x = 1", "lib/a.py": "a = 1", "lib/b.py": "b = 1" };
      await expect(deployer.deploy(request(files), () => {})).rejects.toMatchObject({ code: "ENOSPC" });
      expect(existsSync(join(appsDir, "files"))).toBe(true); // the app's folder was made, and app.py written into a temp folder in it
      expect(leftovers()).toEqual([]);
    } finally {
      failing.name = "";
    }
  });
});
