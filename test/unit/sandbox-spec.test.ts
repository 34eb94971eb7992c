import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_SANDBOX_MEMORY_MIB, KEEP_ALIVE_COMMAND, needsOwnFolder, sandboxCreateOptions, type SandboxLaunch } from "../../daemon/docker/sandbox-spec.js";
import { PIDS_LIMIT } from "../../daemon/docker/container-spec.js";
import { StreamFile } from "../../daemon/service/sandbox-output.js";
import { sandboxCreateSchema } from "../../protocol/sandboxes.js";

const launch = (more: Partial<SandboxLaunch> = {}): SandboxLaunch => ({
  id: "sb-01m99a6146p4q9g5s1",
  daemonId: "gd-1",
  app: "app",
  image: "gantry/fn-python:x",
  command: [],
  env: {},
  workdir: null,
  user: { uid: 99000, gid: 99000 },
  network: "none",
  cpu: null,
  memoryMiB: null,
  pty: false,
  volumes: [],
  gpu: null,
  ...more,
});

describe("a sandbox's container", () => {
  it("has the function containers' hardening, and memory and pids limits even when none is asked", () => {
    const o = sandboxCreateOptions(launch());
    expect(o.User).toBe("99000:99000");
    expect(o.HostConfig).toMatchObject({
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      ReadonlyRootfs: true,
      PidsLimit: PIDS_LIMIT,
      Memory: DEFAULT_SANDBOX_MEMORY_MIB * 1024 * 1024,
      MemorySwap: DEFAULT_SANDBOX_MEMORY_MIB * 1024 * 1024,
      NetworkMode: "none",
      Init: true,
    });
    expect(o.HostConfig?.Privileged).toBeUndefined();
    expect(o.HostConfig?.Binds).toEqual([]);
    expect(Object.keys(o.HostConfig?.Tmpfs ?? {})).toEqual(["/tmp"]);
  });

  it("replaces the image's entrypoint (gantry's agent) with its command, or stays up without one", () => {
    expect(sandboxCreateOptions(launch({ command: ["python3", "-c", "print(1)"] }))).toMatchObject({ Entrypoint: [], Cmd: ["python3", "-c", "print(1)"] });
    expect(sandboxCreateOptions(launch()).Cmd).toEqual(KEEP_ALIVE_COMMAND);
  });

  it("holds its stdin open for the daemon, with a terminal only when asked", () => {
    expect(sandboxCreateOptions(launch())).toMatchObject({ OpenStdin: true, StdinOnce: true, Tty: false });
    expect(sandboxCreateOptions(launch({ pty: true })).Tty).toBe(true);
  });

  it("gives a work folder the image lacks a tmpfs its user owns; /tmp and volume folders need none", () => {
    const o = sandboxCreateOptions(launch({ workdir: "/work", workdirTmpfs: true }));
    expect(o.WorkingDir).toBe("/work");
    expect(o.HostConfig?.Tmpfs?.["/work"]).toMatch(/uid=99000,gid=99000/);
    expect(needsOwnFolder({ workdir: "/tmp/x", volumes: [] })).toBe(false);
    expect(needsOwnFolder({ workdir: "/data/run", volumes: [{ hostPath: "/h", path: "/data", readOnly: false }] })).toBe(false);
    expect(needsOwnFolder({ workdir: "/tmpfoo", volumes: [] })).toBe(true);
    expect(sandboxCreateOptions(launch({ workdir: "/work", workdirTmpfs: false })).HostConfig?.Tmpfs?.["/work"]).toBeUndefined();
  });

  it("mounts its volumes, read-only where asked, and limits what it asked for", () => {
    const o = sandboxCreateOptions(launch({ volumes: [{ hostPath: "/v/a", path: "/a", readOnly: true }], cpu: 1.5, memoryMiB: 256 }));
    expect(o.HostConfig).toMatchObject({ Binds: ["/v/a:/a:ro"], NanoCpus: 1.5e9, Memory: 256 * 1024 * 1024 });
  });
});

describe("a sandbox's request", () => {
  it("takes Modal's defaults and refuses what is past a limit, naming it", () => {
    expect(sandboxCreateSchema.parse({ app: "a" })).toMatchObject({ timeout: 300, block_network: false, pty: false, runtime: "python" });
    const bad = (v: Record<string, unknown>) => sandboxCreateSchema.safeParse({ app: "a", ...v }).error?.issues[0]?.message ?? "";
    expect(bad({ workdir: "rel" })).toMatch(/absolute path/);
    expect(bad({ command: ["a\0b"] })).toMatch(/NUL/);
    expect(bad({ tags: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"])) })).toMatch(/at most 20 tags/);
    expect(bad({ gpu: "A100;rm" })).toMatch(/gpu must look like/);
    expect(bad({ image: { base: { kind: "node" }, steps: [] }, from_function: { app: "a", function: "f" } })).toMatch(/not both/);
  });
});

describe("a process's output stream", () => {
  const dir = mkdtempSync(join(tmpdir(), "gt-stream-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const feed = async (f: StreamFile, chunks: Buffer[]) => {
    const sink = f.sink();
    for (const c of chunks) await new Promise<void>((r) => sink.write(c, () => r()));
    await new Promise<void>((r) => sink.end(() => r()));
    await f.whenClosed(5000);
  };

  it("keeps at most its limit, then says so once and drops the rest, even when a chunk ends exactly at the limit", async () => {
    const f = new StreamFile(join(dir, "a"), 10);
    await feed(f, [Buffer.from("0123456789"), Buffer.from("more"), Buffer.from("and more")]);
    expect(f.droppedSome).toBe(true);
    const text = readFileSync(join(dir, "a"), "utf8");
    expect(text.startsWith("0123456789\n[gantry: this stream passed 10 bytes; the rest was dropped]\n")).toBe(true);
    expect(text.match(/gantry:/g)).toHaveLength(1);
    expect(f.bytes).toBe(Buffer.byteLength(text));
  });

  it("wakes a follower when more comes and when it closes; a kept file reads as closed", async () => {
    const f = new StreamFile(join(dir, "b"), 1024);
    const gone = new AbortController();
    const waited = f.waitPast(0, gone.signal);
    const sink = f.sink();
    sink.write(Buffer.from("hi"));
    await waited;
    expect(f.bytes).toBe(2);
    const closed = f.waitPast(2, gone.signal);
    sink.end();
    await closed;
    expect(f.closed).toBe(true);
    const kept = new StreamFile(join(dir, "b"), 1024, true);
    expect([kept.closed, kept.bytes]).toEqual([true, 2]);
  });
});
