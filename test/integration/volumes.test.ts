/**
 * Volumes (issue 19) on the real Docker engine: a Python function writes and commits, a
 * TypeScript one reads; read-only mounts; the files API over HTTP and the Python client; links a
 * function makes never lead the daemon outside the volume; a missing volume fails the deploy;
 * contents survive a redeploy and a daemon restart; a mounted volume cannot be deleted.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython } from "../helpers/cli.js";
import { deploy, deployEvents, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("volumes/py_vol.py"));
  await deploy(t, fixture("volumes.ts"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

const api = (path: string, init?: RequestInit) => fetch(`${t.baseUrl}${path}`, init);
const call = async (app: string, fn: string, ...args: unknown[]) => (await t.client.functions.fromName(app, fn)).remote(...args);
const python = (code: string) => runPython(t.home, code);

describe("volumes", () => {
  it("carry a file one function wrote and committed to another function's container, in another language; the host reads it", async () => {
    expect(await call("py-vol", "write", "runs/1/out.txt", "from python")).toBe(99000);
    expect(await call("ts-vol", "readShared", "runs/1/out.txt")).toBe("from python");
    expect(await call("ts-vol", "writeShared", "runs/2/ts.txt", "from ts")).toBe(99000);
    expect(await call("py-vol", "read", "runs/2/ts.txt")).toBe("from ts");
    expect(await call("py-vol", "listed", "runs")).toEqual(["runs/1", "runs/1/out.txt", "runs/2", "runs/2/ts.txt"]);
    const onHost = join(t.home, "volumes", "shared-data", "runs/1/out.txt");
    expect(readFileSync(onHost, "utf8")).toBe("from python");
    expect(statSync(onHost).uid).toBe(99000);
    expect(await call("py-vol", "write_read_only")).toBe(30); // EROFS
  });

  it("list, read, write, copy and remove files over the API, streamed, and say what a volume holds and who mounts it", async () => {
    const put = await api("/v1/volumes/shared-data/files?path=api/hello.txt", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "hello volume" });
    expect(put.status).toBe(201);
    expect(await put.json()).toEqual({ path: "api/hello.txt", size: 12 });
    const again = await api("/v1/volumes/shared-data/files?path=api/hello.txt", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "x" });
    expect(again.status).toBe(409);
    const got = await api("/v1/volumes/shared-data/files?path=/api/hello.txt");
    expect(got.headers.get("content-length")).toBe("12");
    expect(await got.text()).toBe("hello volume");
    expect((await (await api("/v1/volumes/shared-data/copy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ src_paths: ["api/hello.txt"], dst_path: "api/copy/" }) })).json())).toEqual({ copied: ["api/copy/hello.txt"] });
    const listed = (await (await api("/v1/volumes/shared-data/entries?path=api&recursive=1")).json()) as { entries: Array<{ path: string; type: string; size: number }> };
    expect(listed.entries.map((e) => [e.path, e.type])).toEqual([["api/copy", "directory"], ["api/copy/hello.txt", "file"], ["api/hello.txt", "file"]]);
    expect((await api("/v1/volumes/shared-data/files?path=api", { method: "DELETE" })).status).toBe(400); // a folder needs recursive
    expect((await api("/v1/volumes/shared-data/files?path=api&recursive=1", { method: "DELETE" })).status).toBe(200);
    expect((await api("/v1/volumes/shared-data/files?path=api/hello.txt")).status).toBe(404);
    const view = (await (await api("/v1/volumes/shared-data")).json()) as { mounted_by: string[]; files: number; size_bytes: number };
    expect(view.mounted_by.sort()).toEqual(["py-vol.api_other_volume", "py-vol.api_write_read_only", "py-vol.api_writes", "py-vol.listed", "py-vol.plant_links", "py-vol.read", "py-vol.write", "py-vol.write_read_only", "ts-vol.readShared", "ts-vol.writeShared"]);
    expect(view.files).toBeGreaterThan(0);
  });

  it("refuse paths that leave the volume and links a function planted, and bad names and bodies, naming the rule", async () => {
    expect(await call("py-vol", "plant_links")).toContain("evil");
    for (const path of ["evil", "root/etc/passwd", "../../gantry.db", "runs/../../x"]) {
      const res = await api(`/v1/volumes/shared-data/files?path=${encodeURIComponent(path)}`);
      expect(res.status, path).toBe(400);
      expect(await res.text(), path).toMatch(/symbolic link|\.\. part/);
    }
    const put = await api(`/v1/volumes/shared-data/files?path=${encodeURIComponent("root/tmp/planted")}`, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "x" });
    expect(put.status).toBe(400);
    expect(existsSync("/tmp/planted")).toBe(false);
    const overLink = await api("/v1/volumes/shared-data/files?path=evil&overwrite=1", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "replaced" });
    expect(overLink.status).toBe(201); // the link is replaced by a file; /etc/shadow is untouched
    expect(statSync("/etc/shadow").size).toBeGreaterThan(0);
    const text = await api("/v1/volumes/shared-data/files?path=x", { method: "PUT", headers: { "content-type": "text/plain" }, body: "x" });
    expect(text.status).toBe(415);
    const badName = await api("/v1/volumes", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "../etc" }) });
    expect(badName.status).toBe(400);
    expect(await badName.text()).toContain("is not a volume name");
    const foreign = await api("/v1/volumes/shared-data/files?path=f", { method: "PUT", headers: { "content-type": "application/octet-stream", origin: "http://evil.example" }, body: "x" });
    expect(foreign.status).toBe(403);
  });

  it("are read and written by the Python client outside containers: listdir, read_file, batch_upload, remove_file", async () => {
    const r = await python(`
import io, os, tempfile
import gantry as modal
vol = modal.Volume.from_name("py-client", create_if_missing=True)
d = tempfile.mkdtemp()
os.makedirs(os.path.join(d, "sub"))
open(os.path.join(d, "sub", "b.txt"), "w").write("bee")
with vol.batch_upload() as batch:
    batch.put_file(io.BytesIO(b"x" * 300000), "/big.bin")
    batch.put_directory(d, "/tree")
print(sorted((e.path, e.type.name) for e in vol.listdir("/", recursive=True)))
print(len(b"".join(vol.read_file("big.bin"))), b"".join(vol.read_file("tree/sub/b.txt")))
try:
    with vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"y"), "big.bin")
except FileExistsError as e:
    print("FileExistsError")
vol.remove_file("tree", recursive=True)
try:
    list(vol.read_file("tree/sub/b.txt"))
except FileNotFoundError:
    print("FileNotFoundError")
try:
    vol.listdir("../x")
except modal.exception.InvalidError as e:
    print("InvalidError")
with modal.Volume.ephemeral() as eph:
    with eph.batch_upload() as b:
        b.put_file(io.BytesIO(b"tmp"), "t")
    print(b"".join(eph.read_file("t")), eph.name.startswith("ephemeral-"))
print([v.name for v in modal.Volume.objects.list()])
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      [
        "[('big.bin', 'FILE'), ('tree', 'DIRECTORY'), ('tree/sub', 'DIRECTORY'), ('tree/sub/b.txt', 'FILE')]",
        "300000 b'bee'",
        "FileExistsError",
        "FileNotFoundError",
        "InvalidError",
        "b'tmp' True",
        "['py-client', 'shared-data']",
        "",
      ].join("\n"),
    );
  }, 120_000);

  it("are written through the files API from inside a container, for the volumes its function mounts only (read-write ones for writes)", async () => {
    const out = (await call("py-vol", "api_writes")) as { listed: string[]; modes: string[]; folder_refused: string | null };
    // copy_files: a folder only with recursive=True (cp -r); put_file's mode, and the local file's, are kept.
    expect(out.folder_refused).toMatch(/volume shared-data: inside is a folder: copy it with recursive/);
    expect(out.listed).toEqual(["inside2/inside", "inside2/inside/tool-copy.sh", "inside2/inside/tool.sh"]);
    expect(out.modes).toEqual(["0o600", "0o750", "0o750"]);
    expect(statSync(join(t.home, "volumes", "shared-data", "inside", "key.bin")).uid).toBe(99000);
    expect(await call("py-vol", "api_other_volume")).toMatch(/a container reaches only the volumes its function mounts, and it mounts shared-data: volume not-mounted-here is refused/);
    expect(await call("py-vol", "api_write_read_only")).toMatch(/volume shared-data is mounted read-only in this container/);
    expect(existsSync(join(t.home, "volumes", "shared-data", "ro-nope.txt"))).toBe(false);
    // From outside: a setuid mode is refused, naming the rule.
    const put = await api("/v1/volumes/shared-data/files?path=suid.bin&mode=4755", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "x" });
    expect(put.status).toBe(400);
    expect(await put.text()).toContain("sets setuid, setgid or the sticky bit");
  }, 120_000);

  it("refuse a deploy mounting a volume that does not exist, naming it, and deleting a volume deployed functions mount", async () => {
    const events = await deployEvents(t, pyFixture("volumes/py_vol_missing.py")).catch((err: Error) => err);
    expect(String(events instanceof Error ? events.message : JSON.stringify(events))).toContain(
      "function py-vol-missing.f mounts volume never-made at /models, which does not exist: create it with: gantry volume create never-made",
    );
    const del = await api("/v1/volumes/shared-data", { method: "DELETE" });
    expect(del.status).toBe(409);
    expect(await del.text()).toContain("volume shared-data is mounted by");
  });

  it("answer a full disk with a clear 507, leave no partial file and keep the daemon up", async () => {
    expect((await api("/v1/volumes", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "tiny" }) })).status).toBe(201);
    const folder = join(t.home, "volumes", "tiny");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", folder]);
    try {
      const res = await api("/v1/volumes/tiny/files?path=big.bin", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: Buffer.alloc(3 * 1024 * 1024, 7) });
      expect(res.status).toBe(507);
      expect(await res.text()).toContain("volume tiny: the disk holding it is full; nothing was written in its place");
      expect(readdirSync(folder)).toEqual([]);
      expect((await api("/v1/volumes/tiny/files?path=small.txt", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: "fits" })).status).toBe(201);
    } finally {
      execFileSync("umount", [folder]);
    }
    expect((await api("/v1/volumes/tiny", { method: "DELETE" })).status).toBe(200);
  });

  it("keep their contents across a redeploy and a daemon restart", async () => {
    await deploy(t, pyFixture("volumes/py_vol.py"));
    expect(await call("py-vol", "read", "runs/1/out.txt")).toBe("from python");
    await t.restart();
    expect(await call("ts-vol", "readShared", "runs/2/ts.txt")).toBe("from ts");
    const listed = (await (await api("/v1/volumes")).json()) as { volumes: Array<{ name: string }> };
    expect(listed.volumes.map((v) => v.name)).toEqual(["py-client", "shared-data"]);
  }, 180_000);
});
