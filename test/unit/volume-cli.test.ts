/**
 * `gantry volume`'s pure parts (issue 19): sizes and progress lines, where `put` writes a file, what
 * `get` fetches from a listing, and the local paths it may write (never outside the folder asked for).
 */
import { describe, expect, it } from "vitest";
import { downloadPlan, formatBytes, localPath, progressLine, putFileTarget } from "../../cli/commands/volumes.js";
import type { VolumeEntry } from "../../protocol/volumes.js";
import { GantryError, InvalidArgumentError } from "../../sdk/errors.js";

const file = (path: string, size = 1): VolumeEntry => ({ path, type: "file", size, mtime: 1_700_000_000 });
const dir = (path: string): VolumeEntry => ({ path, type: "directory", size: 0, mtime: 1_700_000_000 });

describe("volume CLI helpers", () => {
  it("formats sizes and progress lines", () => {
    expect([0, 512, 1536, 10 * 1024 * 1024 + 300_000, 3 * 1024 ** 3].map(formatBytes)).toEqual(["0 B", "512 B", "1.50 KiB", "10.3 MiB", "3.00 GiB"]);
    expect(progressLine({ verb: "uploading", target: "data:/models", bytes: 45 * 1024 ** 2, total: 120 * 1024 ** 2, filesDone: 3, files: 10, elapsedMs: 2000 })).toBe(
      "uploading data:/models  45.0 MiB / 120.0 MiB  37%  3/10 files  22.5 MiB/s",
    );
    expect(progressLine({ verb: "uploading", target: "data:/x", bytes: 2048, total: null, filesDone: 0, files: 1, elapsedMs: 0 })).toBe("uploading data:/x  2.00 KiB");
    expect(progressLine({ verb: "downloading", target: "d:/", bytes: 0, total: 0, filesDone: 0, files: 1, elapsedMs: 0 })).toBe("downloading d:/  0 B / 0 B  100%");
  });

  it("put writes a file to REMOTE, or under its own name into the root or a REMOTE ending with /", () => {
    expect(putFileTarget("v", "/tmp/a.bin", undefined)).toBe("a.bin");
    expect(putFileTarget("v", "/tmp/a.bin", "/")).toBe("a.bin");
    expect(putFileTarget("v", "/tmp/a.bin", "models/")).toBe("models/a.bin");
    expect(putFileTarget("v", "/tmp/a.bin", "/models/b.bin")).toBe("models/b.bin");
    expect(putFileTarget("v", "a.bin", "//x/./y")).toBe("x/y");
    expect(() => putFileTarget("v", "a.bin", "x/../../etc")).toThrow(InvalidArgumentError);
    expect(() => putFileTarget("v", "a.bin", "x/../../etc")).toThrow(/volume v: path "x\/\.\.\/\.\.\/etc" has a \.\. part/);
  });

  it("get reads a listing as one file, or a folder's files and folders relative to it", () => {
    expect(downloadPlan("v", "/m/a.bin", [file("m/a.bin", 9)])).toEqual({ path: "m/a.bin", folder: false, files: [{ remote: "m/a.bin", rel: "a.bin", size: 9 }], dirs: [], skipped: [] });
    expect(downloadPlan("v", "m/", [dir("m/sub"), file("m/sub/x", 2), file("m/y", 3), { path: "m/l", type: "symlink", size: 0, mtime: 0 }])).toEqual({
      path: "m",
      folder: true,
      files: [
        { remote: "m/sub/x", rel: "sub/x", size: 2 },
        { remote: "m/y", rel: "y", size: 3 },
      ],
      dirs: ["sub"],
      skipped: [{ path: "m/l", why: "a symlink" }],
    });
    // A folder holding one file is still a folder; the root is always one.
    expect(downloadPlan("v", "m", [file("m/only")]).folder).toBe(true);
    expect(downloadPlan("v", "/", [file("top")])).toMatchObject({ path: "", folder: true, files: [{ remote: "top", rel: "top" }] });
    expect(downloadPlan("v", "/", [])).toMatchObject({ folder: true, files: [] });
  });

  it("get refuses a listing that names paths outside the folder asked for, before writing anything", () => {
    expect(() => downloadPlan("v", "m", [file("m/../../etc/passwd")])).toThrow(/the daemon listed "m\/\.\.\/\.\.\/etc\/passwd" in v:\/m, which is not a path inside it/);
    expect(() => downloadPlan("v", "m", [file("other/x")])).toThrow(/listed "other\/x" as inside v:\/m, which it is not/);
    expect(() => downloadPlan("v", "m", [file("mx/y")])).toThrow(GantryError);
    expect(() => downloadPlan("v", "m", [file("m/a\0b")])).toThrow(/NUL/);
  });

  it("local paths stay inside the folder they are written under", () => {
    expect(localPath("/tmp/out", "a/b.txt")).toBe("/tmp/out/a/b.txt");
    expect(localPath("rel", "x")).toBe(`${process.cwd()}/rel/x`);
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", ""]) {
      expect(() => localPath("/tmp/out", bad), bad).toThrow(/refusing to write/);
    }
  });
});
