/**
 * Volumes' files on a real file system (daemon/host/volume-files.ts), including what a function
 * could try from inside its container: links out of the volume, in the middle of a path or at its
 * end, and `..` (refused before any file is touched, by protocol/volumes.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VolumeFiles, VolumePathError } from "../../daemon/host/volume-files.js";
import { volumePathParts } from "../../protocol/volumes.js";

let home: string;
let outside: string;
let files: VolumeFiles;
const owner = process.getuid?.() === 0 ? { uid: 99000, gid: 99000 } : null;
const P = (path: string) => volumePathParts(path);
const body = (text: string) => Readable.from([Buffer.from(text)]);
const text = async (s: Readable) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
};
const kindOf = async (p: Promise<unknown>) => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(VolumePathError);
  return (err as VolumePathError).kind;
};

beforeEach(async () => {
  home = mkdtempSync(join(tmpdir(), "gantry-vol-"));
  outside = join(home, "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), "host secret");
  files = new VolumeFiles(join(home, "volumes"), owner);
  await files.create("v");
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe("VolumeFiles", () => {
  it("writes files with their folders, owned by the functions' uid, and reads and lists them back", async () => {
    expect(await files.write("v", P("a/b/c.txt"), body("hello"), false)).toEqual({ size: 5 });
    expect(await text((await files.read("v", P("/a/b/c.txt"))).stream)).toBe("hello");
    if (owner) expect(statSync(join(files.folder("v"), "a/b/c.txt")).uid).toBe(99000);
    expect((await files.list("v", [], true)).map((e) => [e.path, e.type, e.size])).toEqual([
      ["a", "directory", 0],
      ["a/b", "directory", 0],
      ["a/b/c.txt", "file", 5],
    ]);
    expect((await files.list("v", P("a/b/c.txt"), false)).map((e) => e.path)).toEqual(["a/b/c.txt"]);
    expect(await files.usage("v")).toEqual({ bytes: 5, files: 3 });
  });

  it("leaves an existing file alone without overwrite, replaces it with it, and leaves no partial file when the body breaks", async () => {
    await files.write("v", P("f"), body("one"), false);
    expect(await kindOf(files.write("v", P("f"), body("two"), false))).toBe("exists");
    await files.write("v", P("f"), body("three"), true);
    expect(readFileSync(join(files.folder("v"), "f"), "utf8")).toBe("three");
    const broken = Readable.from((async function* () {
      yield Buffer.from("partial");
      throw new Error("the client went away");
    })());
    await expect(files.write("v", P("g"), broken, false)).rejects.toThrow("the client went away");
    expect(readdirSync(files.folder("v")).sort()).toEqual(["f"]);
  });

  it("never follows a link a function made: not in the middle of a path, not at its end, not while listing or removing", async () => {
    symlinkSync(outside, join(files.folder("v"), "escape"));
    symlinkSync(join(outside, "secret.txt"), join(files.folder("v"), "secret-link"));
    expect(await kindOf(files.read("v", P("escape/secret.txt")))).toBe("link");
    expect(await kindOf(files.read("v", P("secret-link")))).toBe("link");
    expect(await kindOf(files.write("v", P("escape/planted.txt"), body("x"), true))).toBe("link");
    expect(existsSync(join(outside, "planted.txt"))).toBe(false);
    expect(await files.list("v", P("escape/"), false)).toMatchObject([{ path: "escape", type: "symlink" }]); // the link itself, as ls -d
    expect(await kindOf(files.list("v", P("escape/x"), false))).toBe("link");
    const listed = await files.list("v", [], true);
    expect(listed.map((e) => [e.path, e.type])).toEqual([["escape", "symlink"], ["secret-link", "symlink"]]);
    // Overwriting the link replaces the link, not the file it points to.
    await files.write("v", P("secret-link"), body("mine"), true);
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("host secret");
    await files.remove("v", P("escape"), false);
    await files.destroy("v");
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("host secret");
    expect(existsSync(files.folder("v"))).toBe(false);
  });

  it("removes a folder only when asked to recurse, and refuses paths that leave the volume before touching anything", async () => {
    await files.write("v", P("d/x"), body("1"), false);
    expect(await kindOf(files.remove("v", P("d"), false))).toBe("is_folder");
    await files.remove("v", P("d"), true);
    expect(readdirSync(files.folder("v"))).toEqual([]);
    expect(await kindOf(files.read("v", P("nope")))).toBe("not_found");
    expect(await kindOf(files.remove("v", [], true))).toBe("root");
    expect(() => P("../outside/secret.txt")).toThrow("has a .. part: paths stay inside their volume");
    expect(() => P("a/../../x")).toThrow("..");
    expect(P("/abs/./path/")).toEqual(["abs", "path"]);
  });

  it("copies files and folders within the volume as cp -r does", async () => {
    await files.write("v", P("src/a.txt"), body("A"), false);
    await files.write("v", P("src/sub/b.txt"), body("B"), false);
    expect(await files.copy("v", [P("src/a.txt")], P("copy.txt"), false)).toEqual(["copy.txt"]);
    mkdirSync(join(files.folder("v"), "dst"));
    expect((await files.copy("v", [P("src")], P("dst"), false)).sort()).toEqual(["dst/src/a.txt", "dst/src/sub/b.txt"]);
    expect(readFileSync(join(files.folder("v"), "dst/src/sub/b.txt"), "utf8")).toBe("B");
  });

  it("copies a folder only with recursive (as cp without -r refuses one), and keeps files' modes", async () => {
    await files.write("v", P("src/run.sh"), body("#!/bin/sh"), false, 0o750);
    expect(statSync(join(files.folder("v"), "src/run.sh")).mode & 0o7777).toBe(0o750);
    expect(await kindOf(files.copy("v", [P("src")], P("dst"), false, false))).toBe("is_folder");
    expect(existsSync(join(files.folder("v"), "dst"))).toBe(false);
    expect(await files.copy("v", [P("src/run.sh")], P("run2.sh"), false, false)).toEqual(["run2.sh"]);
    expect(statSync(join(files.folder("v"), "run2.sh")).mode & 0o7777).toBe(0o750);
  });
});
