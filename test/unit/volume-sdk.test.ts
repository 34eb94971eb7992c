/**
 * Volumes in the TypeScript SDK (issue 19), without a daemon: `volumes` in function options become
 * the spec's list (checked by protocol/volumes.ts's rules), and a client's Volume speaks the
 * contract's routes — against a small in-memory stand-in for the daemon's /v1/volumes, which
 * records what it was sent.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { VolumeEntry, VolumeView } from "../../protocol/volumes.js";
import { bundleApp } from "../../cli/bundle-app.js";
import { appRegistry } from "../../protocol/registry.js";
import { App } from "../../sdk/app.js";
import { GantryClient } from "../../sdk/client.js";
import { ConflictError, GantryError, InvalidArgumentError, NotFoundError } from "../../sdk/errors.js";
import { HEARTBEAT_INTERVAL_MS, Volume } from "../../sdk/volume.js";

describe("volumes in function options", () => {
  const apps: string[] = [];
  const app = (name: string) => {
    apps.push(name);
    return new App(name);
  };
  afterEach(() => {
    for (const name of apps.splice(0)) appRegistry().delete(name);
  });
  const optionsOf = (a: App, fn: string) => a.functions.get(fn)!.options as Record<string, unknown>;

  it("turns { mountPoint: Volume } into the spec's list, read-only and createIfMissing kept", () => {
    const a = app("vol-spec");
    const data = Volume.fromName("data", { createIfMissing: true });
    a.function({ volumes: { "/data": data, "/models": Volume.fromName("models").readOnly(), "/cache": Volume.fromName("c.1_x", { readOnly: true }) } }, async function f() {});
    expect(optionsOf(a, "f").volumes).toEqual([
      { path: "/data", name: "data", createIfMissing: true },
      { path: "/models", name: "models", readOnly: true },
      { path: "/cache", name: "c.1_x", readOnly: true },
    ]);
    // readOnly() is a new handle: the first stays writable.
    expect(data.isReadOnly).toBe(false);
    expect(data.readOnly().isReadOnly).toBe(true);

    a.cls({ volumes: { "/w": Volume.fromName("w") } }, class Model {
      async predict() {}
    });
    expect(optionsOf(a, "Model").volumes).toEqual([{ path: "/w", name: "w" }]);
    a.function({ volumes: {} }, async function none() {});
    expect(optionsOf(a, "none")).not.toHaveProperty("volumes");
  });

  it("refuses bad names, mount points, overlaps and values, naming the function and the problem", () => {
    expect(() => Volume.fromName("a/b")).toThrow(/Volume\.fromName\("a\/b"\): "a\/b" is not a volume name/);
    expect(() => Volume.fromName("..")).toThrow(InvalidArgumentError);
    expect(() => Volume.fromName("x".repeat(64))).toThrow(/64 characters; at most 63/);
    const a = app("vol-bad");
    const v = Volume.fromName("v");
    const cases: Array<[unknown, RegExp]> = [
      [{ "/etc/conf": v }, /function f1: volumes\["\/etc\/conf"\]: a volume cannot be mounted at \/etc\/conf: \/etc is the system's/],
      [{ data: v }, /mount point must be an absolute path, got "data"/],
      [{ "/": v }, /cannot be mounted at \/$/],
      [{ "/data/": v }, /must be a plain absolute path/],
      [{ "/a/../b": v }, /must be a plain absolute path/],
      [{ "/run/gantry/x": v }, /\/run\/gantry is gantry's own/],
      [{ "/data": v, "/data/sub": Volume.fromName("w") }, /volume mount points \/data and \/data\/sub overlap/],
      [{ "/data": "data" }, /volumes\["\/data"\] must be a Volume \(Volume\.fromName\("NAME"\)\), got string "data"/],
      [[{ path: "/data", name: "v" }], /volumes takes an object of mount points/],
      [v, /volumes takes an object of mount points/],
      [Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`/m${i}`, v])), /mounts 17 volumes; a function mounts at most 16/],
    ];
    for (const [i, [volumes, message]] of cases.entries()) {
      expect(() => a.function({ volumes: volumes as Record<string, Volume> }, async function f1() {}), JSON.stringify(volumes)).toThrow(message);
      expect(a.functions.has("f1"), `case ${i}`).toBe(false);
    }
    expect(() => a.cls({ volumes: { "/proc/x": v } }, class K {
      async m() {}
    })).toThrow(/^class K: volumes\["\/proc\/x"\]/);
  });

  it("an app file's volumes reach the deploy request as the spec's list, which the spec's schema takes", async () => {
    const app = await bundleApp(join(import.meta.dirname, "..", "fixtures", "apps", "volume-cli.ts"));
    appRegistry().clear();
    expect(app.functions.map((f) => [f.name, (f.options as { volumes?: unknown }).volumes])).toEqual([
      ["notes", [{ path: "/data", name: "gt-vol", createIfMissing: true }]],
      ["readonly_write", [{ path: "/ro", name: "gt-vol", readOnly: true }]],
    ]);
  });

  it("a handle from Volume.fromName names a volume only: reading it says to use a client", async () => {
    await expect(Volume.fromName("data").listdir("/")).rejects.toThrow(/volume data: listdir needs a client: .*client\.volumes\.fromName\("data"\)/);
    await expect(Volume.fromName("data").putFile("a", "x")).rejects.toThrow(InvalidArgumentError);
  });
});

/** The daemon's volume routes, in memory. */
interface Fake {
  volumes: Map<string, { view: VolumeView; files: Map<string, Buffer> }>;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }>;
  /** Answers PUT …/files with 409 at once, without reading the body. */
  refuseUploadsEarly: boolean;
}

function view(name: string, ephemeral = false): VolumeView {
  return { name, created_at: new Date().toISOString(), size_bytes: 0, files: 0, mounted_by: [], ephemeral, expires_at: ephemeral ? new Date(Date.now() + 300_000).toISOString() : null };
}

function startFake(): Promise<{ fake: Fake; server: http.Server; url: string }> {
  const fake: Fake = { volumes: new Map(), requests: [], refuseUploadsEarly: false };
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const error = (res: http.ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, "http://x");
    const m = /^\/v1\/volumes(?:\/([^/]+))?(?:\/([a-z]+))?$/.exec(u.pathname);
    const name = m?.[1] ? decodeURIComponent(m[1]) : undefined;
    const sub = m?.[2];
    const path = u.searchParams.get("path") ?? "";
    if (req.method === "PUT" && fake.refuseUploadsEarly) {
      fake.requests.push({ method: req.method, url: req.url!, headers: req.headers, body: Buffer.alloc(0) });
      res.setHeader("connection", "close");
      return error(res, 409, "conflict", `${path} already exists in volume ${name}`);
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      fake.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const json = () => JSON.parse(body.toString() || "null") as Record<string, unknown>;
      if (!m) return error(res, 404, "not_found", "no route");
      if (name === "ephemeral" && req.method === "POST") {
        const v = view(`ephemeral-${fake.volumes.size}`, true);
        fake.volumes.set(v.name, { view: v, files: new Map() });
        return send(res, 201, v);
      }
      if (!name) {
        if (req.method === "GET") return send(res, 200, { volumes: [...fake.volumes.values()].map((v) => v.view) });
        const { name: n, exist_ok } = json() as { name: string; exist_ok?: boolean };
        if (fake.volumes.has(n)) return exist_ok ? send(res, 200, fake.volumes.get(n)!.view) : error(res, 409, "conflict", `volume ${n} already exists`);
        fake.volumes.set(n, { view: view(n), files: new Map() });
        return send(res, 201, fake.volumes.get(n)!.view);
      }
      const vol = fake.volumes.get(name);
      if (!vol) return error(res, 404, "not_found", `no volume named ${name}`);
      if (!sub && req.method === "GET") return send(res, 200, vol.view);
      if (!sub && req.method === "DELETE") {
        fake.volumes.delete(name);
        return send(res, 200, { name, deleted: true });
      }
      if (sub === "heartbeat") return send(res, 200, { name, expires_at: vol.view.expires_at });
      if (sub === "commit") return send(res, 200, { name, committed: true });
      if (sub === "copy") return send(res, 200, { copied: [json().dst_path] });
      if (sub === "entries") {
        const under = path ? `${path}/` : "";
        const entries: VolumeEntry[] = [...vol.files.entries()]
          .filter(([p]) => p === path || p.startsWith(under))
          .map(([p, b]) => ({ path: p, type: "file", size: b.length, mtime: 1_700_000_000 }));
        return send(res, 200, { entries });
      }
      if (sub === "files" && req.method === "GET") {
        const data = vol.files.get(path);
        if (!data) return error(res, 404, "not_found", `volume ${name} has no file ${path}`);
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(data.length) });
        return res.end(data);
      }
      if (sub === "files" && req.method === "PUT") {
        if (vol.files.has(path) && u.searchParams.get("overwrite") !== "1") return error(res, 409, "conflict", `${path} already exists in volume ${name}`);
        vol.files.set(path, body);
        return send(res, 201, { path, size: body.length });
      }
      if (sub === "files" && req.method === "DELETE") {
        vol.files.delete(path);
        return send(res, 200, { path, removed: true });
      }
      return error(res, 404, "not_found", "no route");
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ fake, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })),
  );
}

describe("a client's volumes", () => {
  let fake: Fake;
  let server: http.Server;
  let client: GantryClient;
  let dir: string;
  beforeAll(async () => {
    const started = await startFake();
    fake = started.fake;
    server = started.server;
    client = new GantryClient({ url: started.url });
    dir = mkdtempSync(join(tmpdir(), "gv-"));
  });
  afterAll(async () => {
    client.close();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    fake.requests.length = 0;
    fake.refuseUploadsEarly = false;
  });
  const last = () => fake.requests.at(-1)!;

  it("fromName finds a volume, throws NotFoundError for a missing one, or creates it with createIfMissing", async () => {
    await expect(client.volumes.fromName("nope")).rejects.toThrow(NotFoundError);
    await expect(client.volumes.fromName("bad/name")).rejects.toThrow(InvalidArgumentError);
    const v = await client.volumes.fromName("made", { createIfMissing: true });
    expect(v.name).toBe("made");
    expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /v1/volumes/nope", "GET /v1/volumes/made", "POST /v1/volumes"]);
    expect(JSON.parse(last().body.toString())).toEqual({ name: "made", exist_ok: true });
    await expect(client.volumes.create("made")).rejects.toThrow(ConflictError);
    expect((await client.volumes.list()).map((x) => x.name)).toContain("made");
  });

  it("puts and reads files: bytes, strings and streams; 409 without overwrite; paths checked before sending", async () => {
    const v = await client.volumes.fromName("files", { createIfMissing: true });
    expect(await v.putFile("/a/b.txt", "héllo")).toEqual({ path: "a/b.txt", size: 6 });
    expect(last().url).toBe("/v1/volumes/files/files?path=a%2Fb.txt&overwrite=0");
    expect(last().headers["content-type"]).toBe("application/octet-stream");
    expect(last().headers["content-length"]).toBe("6");
    await expect(v.putFile("a/b.txt", Buffer.from("x"))).rejects.toThrow(ConflictError);
    await v.putFile("a/b.txt", Buffer.from("again"), { overwrite: true });
    expect(last().url).toContain("overwrite=1");
    expect((await v.readFile("a/b.txt")).toString()).toBe("again");

    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const seen: number[] = [];
    await v.putFile("big.bin", Readable.from([big.subarray(0, 1000), big.subarray(1000)]), { onProgress: (n) => seen.push(n) });
    expect(last().headers["transfer-encoding"]).toBe("chunked");
    expect(seen.at(-1)).toBe(big.length);
    expect((await v.readFile("big.bin")).equals(big)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const c of v.readStream("big.bin")) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);

    await expect(v.readFile("missing")).rejects.toThrow(NotFoundError);
    const stream = v.readStream("missing");
    await expect(new Promise((_, reject) => stream.on("error", reject))).rejects.toThrow(/volume files has no file missing/);

    const before = fake.requests.length;
    await expect(v.putFile("../x", "x")).rejects.toThrow(/volume files: path "\.\.\/x" has a \.\. part/);
    await expect(v.readFile("/")).rejects.toThrow(/readFile needs a file's path, got "\/" \(the root\)/);
    await expect(v.putFile("dir/", "x")).rejects.toThrow(/ends with \/, a folder's/);
    await expect(v.removeFile("/")).rejects.toThrow(/names the volume's root/);
    await expect(v.readOnly().putFile("c", "x")).rejects.toThrow(/volume files is read-only here/);
    expect(fake.requests.length).toBe(before);
  });

  it("a stream of another length than announced, or one that fails, fails the upload with its own error", async () => {
    const v = await client.volumes.fromName("files", { createIfMissing: true });
    await expect(v.putFile("short", Readable.from([Buffer.from("abc")]), { length: 5 })).rejects.toThrow(/held 3 bytes, not the 5/);
    await expect(v.putFile("long", Readable.from([Buffer.from("abcdef")]), { length: 2 })).rejects.toThrow(/more than the 2 bytes/);
    const failing = new Readable({
      read() {
        this.destroy(Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" }));
      },
    });
    await expect(v.putFile("failing", failing)).rejects.toThrow(/the data for failing could not be read: EIO: i\/o error/);
  });

  it("an error answered before the body is all sent is that error, not a broken pipe", async () => {
    const v = await client.volumes.fromName("files", { createIfMissing: true });
    fake.refuseUploadsEarly = true;
    let pulled = 0;
    const endless = new Readable({
      read() {
        pulled++;
        this.push(Buffer.alloc(64 * 1024));
      },
    });
    const err = await v.putFile("huge", endless).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as GantryError).message).toBe("huge already exists in volume files");
    await new Promise((r) => setTimeout(r, 50));
    expect(endless.destroyed).toBe(true); // no more is read once the daemon said no
    expect(pulled).toBeLessThan(10_000);
  });

  it("putDirectory sends every file below a folder, links to files followed, others left out, with progress", async () => {
    const local = join(dir, "tree");
    mkdirSync(join(local, "sub", "deeper"), { recursive: true });
    writeFileSync(join(local, "a.txt"), "A");
    writeFileSync(join(local, "sub", "b.txt"), "BB");
    writeFileSync(join(local, "sub", "deeper", "c.txt"), "CCC");
    symlinkSync(join(local, "a.txt"), join(local, "link-to-a"));
    symlinkSync(join(local, "sub"), join(local, "link-to-sub"));
    const v = await client.volumes.fromName("tree", { createIfMissing: true });
    const progress: number[] = [];
    const res = await v.putDirectory(local, "/up/", { onProgress: (p) => progress.push(p.sentBytes) });
    expect(res.files).toEqual([
      { path: "up/a.txt", size: 1 },
      { path: "up/link-to-a", size: 1 },
      { path: "up/sub/b.txt", size: 2 },
      { path: "up/sub/deeper/c.txt", size: 3 },
    ]);
    expect(res.skipped).toEqual([{ path: "link-to-sub", why: "a link to a folder" }]);
    expect(res.bytes).toBe(7);
    expect(progress.at(-1)).toBe(7);
    expect((await v.listdir("up", { recursive: true })).map((e) => e.path).sort()).toEqual(["up/a.txt", "up/link-to-a", "up/sub/b.txt", "up/sub/deeper/c.txt"]);
    expect(last().url).toBe("/v1/volumes/tree/entries?path=up&recursive=1");
    await expect(v.putDirectory(local, "up")).rejects.toThrow(ConflictError);
    await expect(v.putDirectory(join(dir, "missing"), "x")).rejects.toThrow(/cannot read the folder .*missing: ENOENT/);
  });

  it("removeFile, copyFiles (a trailing / kept), commit and delete speak the contract's routes", async () => {
    const v = await client.volumes.fromName("ops", { createIfMissing: true });
    await v.removeFile("/a/b", { recursive: true });
    expect(`${last().method} ${last().url}`).toBe("DELETE /v1/volumes/ops/files?path=a%2Fb&recursive=1");
    expect(await v.copyFiles(["/x", "y/z"], "dst/")).toEqual(["dst/"]);
    expect(JSON.parse(last().body.toString())).toEqual({ src_paths: ["x", "y/z"], dst_path: "dst/", recursive: false });
    await v.copyFiles(["x"], "/dst", { recursive: true });
    expect(JSON.parse(last().body.toString())).toEqual({ src_paths: ["x"], dst_path: "dst", recursive: true });
    await expect(v.putFile("f", "x", { mode: 0o4755 })).rejects.toThrow(/sets setuid, setgid or the sticky bit/);
    await v.putFile("f", "x", { mode: 0o600 });
    expect(last().url).toContain("mode=600");
    await expect(v.copyFiles([], "d")).rejects.toThrow(/at least one source/);
    await v.commit();
    expect(`${last().method} ${last().url}`).toBe("POST /v1/volumes/ops/commit");
    await client.volumes.delete("ops");
    await expect(client.volumes.fromName("ops")).rejects.toThrow(NotFoundError);
  });

  it("an ephemeral volume heartbeats every EPHEMERAL_TTL_S / 4 without holding the process; close() stops and deletes it", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const v = await client.volumes.ephemeral();
      expect(v.isEphemeral).toBe(true);
      expect(HEARTBEAT_INTERVAL_MS).toBe(75_000);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(HEARTBEAT_INTERVAL_MS);
      await vi.waitFor(() => expect(fake.requests.some((r) => r.url === `/v1/volumes/${v.name}/heartbeat`)).toBe(true));
      await v.close();
      expect(vi.getTimerCount()).toBe(0);
      expect(`${last().method} ${last().url}`).toBe(`DELETE /v1/volumes/${v.name}`);
      expect(fake.volumes.has(v.name)).toBe(false);
      await v.close(); // gone already: nothing to do
      // client.close() stops the heartbeats of those left open.
      await client.volumes.ephemeral();
      expect(vi.getTimerCount()).toBe(1);
      client.volumes.stopHeartbeats();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
