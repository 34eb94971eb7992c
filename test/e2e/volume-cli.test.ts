/**
 * `gantry volume create|ls|put|get|rm|cp|delete` as a user drives them (issue 19), against a daemon
 * the CLI started: files and folders in and out byte for byte (stdin and stdout too), --json,
 * --force, paths that would leave the volume or the local folder refused, clear errors and exit
 * codes, and functions that mount the volume seeing what the CLI put (and the CLI seeing what they
 * wrote), a read-only mount refusing writes, and delete refused while a deployed function mounts it.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VolumeEntry, VolumeView } from "../../protocol/volumes.js";
import { gantry, GANTRY_BIN, type CliResult } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
let files: string;
const g = (...args: string[]): Promise<CliResult> => gantry(home, args);
const local = (...parts: string[]) => join(files, ...parts);

/** Runs the CLI with `input` (if any) on its stdin, its stdout kept as bytes (`get … -`). */
function cli(args: string[], input?: Buffer): Promise<{ code: number; bytes: Buffer; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GANTRY_BIN, ...args], { env: { ...process.env, GANTRY_HOME: home }, stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, bytes: Buffer.concat(out), stdout: Buffer.concat(out).toString(), stderr }));
    if (input) child.stdin!.end(input);
  });
}

const BIG = randomBytes(5 * 1024 * 1024 + 123);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gv-"));
  files = mkdtempSync(join(tmpdir(), "gv-files-"));
  writeFileSync(local("big.bin"), BIG);
  mkdirSync(local("tree", "sub", "deeper"), { recursive: true });
  writeFileSync(local("tree", "a.txt"), "A\n");
  writeFileSync(local("tree", "sub", "b.txt"), "BB\n");
  writeFileSync(local("tree", "sub", "deeper", "c.bin"), randomBytes(1000));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });
});

describe("gantry volume", () => {
  it("create makes an empty volume; ls lists it (and --json); a name taken or malformed is refused", async () => {
    const empty = await g("volume", "ls");
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toBe("no volumes: create one with gantry volume create NAME\n");

    const created = await g("volume", "create", "gt-vol");
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toBe("created volume gt-vol\n");
    const again = await g("volume", "create", "gt-vol");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^Error: .*gt-vol.*exists/);

    for (const bad of ["bad/name", "..", "x".repeat(64)]) {
      const r = await g("volume", "create", bad);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/^Error: .*(is not a volume name|at most 63 are allowed)/);
    }

    const ls = await g("volumes", "ls");
    expect(ls.stdout).toMatch(/^NAME +SIZE +FILES +MOUNTED BY +CREATED$/m);
    expect(ls.stdout).toMatch(/^gt-vol +0 B +0 +- +\d+s ago$/m);
    const json = JSON.parse((await g("volume", "ls", "--json")).stdout) as VolumeView[];
    expect(json).toEqual([
      { name: "gt-vol", created_at: expect.any(String), size_bytes: 0, files: 0, mounted_by: [], ephemeral: false, expires_at: null },
    ]);
  });

  it("put sends a file and a folder (recursively); ls shows them; get brings them back byte for byte", async () => {
    const put = await g("volume", "put", "gt-vol", local("big.bin"), "/models/");
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toBe(`uploaded ${local("big.bin")} to gt-vol:/models/big.bin (5.00 MiB)\n`);
    expect(put.stderr).toBe(""); // no terminal: no progress lines

    const tree = await g("volume", "put", "gt-vol", local("tree"), "tree", "--json");
    expect(tree.code, tree.stderr).toBe(0);
    expect(JSON.parse(tree.stdout)).toEqual({
      volume: "gt-vol",
      files: [
        { path: "tree/a.txt", size: 2 },
        { path: "tree/sub/b.txt", size: 3 },
        { path: "tree/sub/deeper/c.bin", size: 1000 },
      ],
      skipped: [],
      bytes: 1005,
    });

    const top = await g("volume", "ls", "gt-vol");
    expect(top.stdout).toMatch(/^PATH +TYPE +SIZE +MODIFIED$/m);
    expect(top.stdout).toMatch(/^models\/ +dir +- +/m);
    expect(top.stdout).toMatch(/^tree\/ +dir +- +/m);
    const all = JSON.parse((await g("volume", "ls", "gt-vol", "/", "-r", "--json")).stdout) as VolumeEntry[];
    expect(all.filter((e) => e.type === "file").map((e) => [e.path, e.size]).sort()).toEqual([
      ["models/big.bin", BIG.length],
      ["tree/a.txt", 2],
      ["tree/sub/b.txt", 3],
      ["tree/sub/deeper/c.bin", 1000],
    ]);
    const one = JSON.parse((await g("volume", "ls", "gt-vol", "models/big.bin", "--json")).stdout) as VolumeEntry[];
    expect(one).toEqual([{ path: "models/big.bin", type: "file", size: BIG.length, mtime: expect.any(Number) }]);
    const volumes = JSON.parse((await g("volume", "ls", "--json")).stdout) as VolumeView[];
    expect(volumes[0]).toMatchObject({ name: "gt-vol", size_bytes: BIG.length + 1005 });

    mkdirSync(local("down"));
    const getFile = await g("volume", "get", "gt-vol", "models/big.bin", local("down"));
    expect(getFile.code, getFile.stderr).toBe(0);
    expect(getFile.stdout).toBe(`downloaded gt-vol:/models/big.bin to ${local("down", "big.bin")} (5.00 MiB)\n`);
    expect(readFileSync(local("down", "big.bin")).equals(BIG)).toBe(true);

    // Into an existing folder, under the folder's own name; to a new path, as that folder.
    const getTree = await g("volume", "get", "gt-vol", "tree", local("down"));
    expect(getTree.code, getTree.stderr).toBe(0);
    expect(getTree.stdout).toBe(`downloaded 3 file(s) (1005 B) from gt-vol:/tree to ${local("down", "tree")}\n`);
    for (const f of ["a.txt", "sub/b.txt", "sub/deeper/c.bin"]) expect(readFileSync(local("down", "tree", f)).equals(readFileSync(local("tree", f))), f).toBe(true);
    const getNew = await g("volume", "get", "gt-vol", "/tree/sub", local("fresh"));
    expect(getNew.code, getNew.stderr).toBe(0);
    expect(readdirSync(local("fresh")).sort()).toEqual(["b.txt", "deeper"]);
    // No temporary files left behind.
    expect(readdirSync(local("down")).sort()).toEqual(["big.bin", "tree"]);

    const piped = await cli(["volume", "get", "gt-vol", "models/big.bin", "-"]);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.bytes.equals(BIG)).toBe(true);
  });

  it("put - reads stdin into a file; --force replaces a file, which is refused without it (both sides)", async () => {
    const fromStdin = await cli(["volume", "put", "gt-vol", "-", "notes/in.txt"], Buffer.from("from stdin\n"));
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(fromStdin.stdout).toBe("uploaded stdin to gt-vol:/notes/in.txt (11 B)\n");
    expect((await cli(["volume", "get", "gt-vol", "notes/in.txt", "-"])).bytes.toString()).toBe("from stdin\n");

    const exists = await g("volume", "put", "gt-vol", local("tree", "a.txt"), "notes/in.txt");
    expect(exists.code).toBe(1);
    expect(exists.stderr).toMatch(/^Error: .*notes\/in\.txt.*; replace it with --force\n$/);
    const folderExists = await g("volume", "put", "gt-vol", local("tree"), "tree");
    expect(folderExists.code).toBe(1);
    expect(folderExists.stderr).toBe("Error: volume gt-vol already has tree/a.txt and 2 more; nothing was uploaded: replace them with --force\n");
    const forced = await g("volume", "put", "gt-vol", local("tree", "a.txt"), "notes/in.txt", "--force");
    expect(forced.code, forced.stderr).toBe(0);
    expect((await cli(["volume", "get", "gt-vol", "notes/in.txt", "-"])).bytes.toString()).toBe("A\n");

    const localExists = await g("volume", "get", "gt-vol", "notes/in.txt", local("down", "big.bin"));
    expect(localExists.code).toBe(1);
    expect(localExists.stderr).toBe(`Error: ${local("down", "big.bin")} already exists; nothing was downloaded: replace with --force\n`);
    expect(readFileSync(local("down", "big.bin")).equals(BIG)).toBe(true);
    const localForced = await g("volume", "get", "gt-vol", "notes/in.txt", local("down", "big.bin"), "--force");
    expect(localForced.code, localForced.stderr).toBe(0);
    expect(readFileSync(local("down", "big.bin"), "utf8")).toBe("A\n");
  });

  it("refuses paths that leave the volume or the local folder, unknown volumes and files, with exit codes", async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [["volume", "put", "gt-vol", local("tree", "a.txt"), "../escape.txt"], 2, /has a \.\. part: paths stay inside their volume/],
      [["volume", "get", "gt-vol", "tree/../../etc/passwd", local("x")], 2, /has a \.\. part/],
      [["volume", "ls", "gt-vol", "a/../../b"], 2, /has a \.\. part/],
      [["volume", "rm", "gt-vol", "/"], 2, /is the volume's root: remove what is in it, or delete the volume/],
      [["volume", "put", "gt-vol", local("missing.txt")], 2, /cannot read .*missing\.txt: ENOENT/],
      [["volume", "put", "gt-vol", "-"], 2, /put NAME - REMOTE reads stdin into one file/],
      [["volume", "get", "gt-vol", "tree", "-"], 2, /gt-vol:\/tree is a folder: give a local folder to write it into, not -/],
      [["volume", "cp", "gt-vol", "only-one"], 2, /cp takes the sources and a destination/],
      [["volume", "ls", "-r"], 2, /-r lists a volume's files/],
      [["volume", "ls", "nope"], 4, /nope.*: create it with gantry volume create nope/],
      [["volume", "get", "gt-vol", "no/such/file", local("x")], 4, /no\/such\/file/],
      [["volume", "rm", "gt-vol", "no/such/file"], 4, /no\/such\/file/],
    ];
    for (const [args, code, message] of cases) {
      const r = await g(...args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    const json = await g("volume", "ls", "nope", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ error: { code: "not_found", message: expect.stringContaining("gantry volume create nope") } });

    // A link where get would make a folder is not followed out of the folder asked for.
    mkdirSync(local("trap"));
    mkdirSync(local("elsewhere"));
    symlinkSync(local("elsewhere"), local("trap", "tree"));
    const trapped = await g("volume", "get", "gt-vol", "tree", local("trap"));
    expect(trapped.code).toBe(1);
    expect(trapped.stderr).toContain(`refusing to write into ${local("trap", "tree")}: it is a symbolic link`);
    expect(readdirSync(local("elsewhere"))).toEqual([]);
  });

  it("cp copies inside the volume; rm removes a file, and a folder only with -r", async () => {
    const cp = await g("volume", "cp", "gt-vol", "tree/a.txt", "tree/sub/b.txt", "copies/");
    expect(cp.code, cp.stderr).toBe(0);
    expect(cp.stdout).toBe("copied gt-vol:/tree/a.txt, gt-vol:/tree/sub/b.txt to gt-vol:/copies/\n");
    const copies = JSON.parse((await g("volume", "ls", "gt-vol", "copies", "--json")).stdout) as VolumeEntry[];
    expect(copies.map((e) => e.path).sort()).toEqual(["copies/a.txt", "copies/b.txt"]);
    const cpFolder = await g("volume", "cp", "gt-vol", "tree/sub", "copies/");
    expect(cpFolder.code).toBe(2);
    expect(cpFolder.stderr).toContain("tree/sub is a folder: copy it with recursive");
    const cpRecursive = await g("volume", "cp", "-r", "gt-vol", "tree/sub", "copies/");
    expect(cpRecursive.code, cpRecursive.stderr).toBe(0);
    expect(JSON.parse((await g("volume", "ls", "gt-vol", "copies/sub", "--json")).stdout).map((e: VolumeEntry) => e.path)).toEqual(["copies/sub/b.txt", "copies/sub/deeper"]);

    const rmFile = await g("volume", "rm", "gt-vol", "copies/a.txt");
    expect(rmFile.code, rmFile.stderr).toBe(0);
    expect(rmFile.stdout).toBe("removed gt-vol:/copies/a.txt\n");
    const rmFolder = await g("volume", "rm", "gt-vol", "copies");
    expect(rmFolder.code).not.toBe(0);
    expect(rmFolder.stderr).toContain("copies");
    const rmRecursive = await g("volume", "rm", "gt-vol", "copies", "-r", "--json");
    expect(rmRecursive.code, rmRecursive.stderr).toBe(0);
    expect(JSON.parse(rmRecursive.stdout)).toEqual({ volume: "gt-vol", path: "copies", removed: true });
    expect((await g("volume", "ls", "gt-vol", "copies")).code).toBe(4);
  });

  it("functions that mount it see what the CLI put, and the CLI sees what they wrote; a read-only mount refuses writes", async () => {
    const deployed = await g("deploy", fixture("volume-cli.ts"));
    expect(deployed.code, deployed.stderr).toBe(0);

    const called = await g("call", "volcli", "notes", JSON.stringify({ write: { path: "from-fn/hello.txt", text: "written in a container" }, read: "tree/sub/b.txt" }), "--json");
    expect(called.code, called.stderr).toBe(0);
    expect(JSON.parse(called.stdout).result).toEqual({ read: "BB\n", top: expect.arrayContaining(["from-fn", "models", "notes", "tree"]) });
    const fromFn = await cli(["volume", "get", "gt-vol", "from-fn/hello.txt", "-"]);
    expect(fromFn.code, fromFn.stderr).toBe(0);
    expect(fromFn.bytes.toString()).toBe("written in a container");

    const ro = await g("call", "volcli", "readonly_write", "--json");
    expect(ro.code, ro.stderr).toBe(0);
    expect(JSON.parse(ro.stdout).result).toBe("EROFS");
    expect((await g("volume", "ls", "gt-vol", "refused.txt")).code).toBe(4);

    const ls = await g("volume", "ls");
    expect(ls.stdout).toMatch(/^gt-vol +\S+ \S+ +\d+ +(volcli\.notes,volcli\.readonly_write|volcli\.readonly_write,volcli\.notes) +/m);
  });

  it("delete asks for --yes without a terminal, is refused while a deployed function mounts the volume, then deletes it", async () => {
    const unconfirmed = await g("volume", "delete", "gt-vol");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/^Error: deleting volume gt-vol and its \d+ file\(s\) \([^)]+\) cannot be undone: pass --yes to confirm/);

    const mounted = await g("volume", "delete", "gt-vol", "--yes");
    expect(mounted.code).toBe(1);
    expect(mounted.stderr).toMatch(/^Error: .*gt-vol/);
    expect(mounted.stderr).toContain("volcli");

    expect((await g("apps", "stop", "volcli")).code).toBe(0);
    const deleted = await g("volume", "delete", "gt-vol", "--yes", "--json");
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ name: "gt-vol", deleted: true });
    expect(JSON.parse((await g("volume", "ls", "--json")).stdout)).toEqual([]);
    const again = await g("volume", "delete", "gt-vol", "--yes");
    expect(again.code).toBe(4);
  });
});
