/**
 * Sandboxes in the TypeScript SDK (issue 24) without a daemon: what `client.sandboxes.create` and
 * `sb.exec` send (checked by the contract before anything goes), and how stdout, stderr and stdin
 * behave — against an in-memory stand-in for /v1/sandboxes (test/helpers/sandbox-fake.ts). The real
 * daemon is test/integration/sandbox-sdk.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GantryClient } from "../../sdk/client.js";
import { InvalidArgumentError, NotFoundError } from "../../sdk/errors.js";
import { Image } from "../../sdk/image.js";
import { SandboxCreateError, sandboxCreateBody, sandboxExecBody } from "../../sdk/sandbox.js";
import { Secret } from "../../sdk/secret.js";
import { Volume } from "../../sdk/volume.js";
import { startSandboxFake, type FakeSandboxes } from "../helpers/sandbox-fake.js";

let fake: FakeSandboxes;
let client: GantryClient;
beforeAll(async () => {
  fake = await startSandboxFake();
  client = new GantryClient({ url: fake.url });
});
afterAll(async () => {
  client.close();
  await fake.close();
});

describe("sandboxCreateBody", () => {
  it("maps the options to the contract's body: seconds, secret names, volume mounts, Modal's names", () => {
    const body = sandboxCreateBody({
      app: "jobs",
      command: ["echo", "hi"],
      timeoutMs: 60_000,
      idleTimeout: 30,
      workdir: "/tmp",
      env: { A: "1" },
      secrets: [Secret.fromName("openai"), "db"],
      volumes: { "/data": Volume.fromName("data", { createIfMissing: true }) },
      memoryMiB: 512,
      blockNetwork: true,
      tags: { job: "7" },
      name: "worker-1",
    });
    expect(body).toEqual({
      app: "jobs",
      runtime: "node",
      command: ["echo", "hi"],
      timeout: 60,
      idle_timeout: 30,
      workdir: "/tmp",
      env: { A: "1" },
      secrets: ["openai", "db"],
      volumes: [{ path: "/data", name: "data", createIfMissing: true }],
      memory: 512,
      block_network: true,
      tags: { job: "7" },
      name: "worker-1",
      pty: false,
    });
  });

  it("sends an image's spec, its local files packed as a deploy's assets (by hash)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-img-"));
    try {
      writeFileSync(join(dir, "tool.sh"), "echo tool\n", { mode: 0o755 });
      const body = sandboxCreateBody({ app: "jobs", image: Image.node().aptInstall("curl").addLocalFile(join(dir, "tool.sh"), "/opt/") });
      const steps = body.image!.steps as Array<Record<string, unknown>>;
      expect(steps[0]).toEqual({ kind: "apt", packages: ["curl"] });
      expect(steps[1]).toMatchObject({ kind: "file", remote: "/opt/tool.sh", copy: false, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
      const asset = (body.assets as unknown as Record<string, Record<string, { data: string; mode: number }>>)[steps[1]!.hash as string]!;
      expect(asset["tool.sh"]).toEqual({ data: Buffer.from("echo tool\n").toString("base64"), mode: 0o755 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses bad options before sending, naming the option", () => {
    const bad = (p: Record<string, unknown>) => () => sandboxCreateBody(p as never);
    expect(bad({ app: "jobs", blocknetwork: true })).toThrow(/sandboxes\.create takes no "blocknetwork"/);
    expect(bad({ command: ["ls"] })).toThrow(/needs an app/);
    expect(bad({ app: "no spaces" })).toThrow(/app names are letters, digits/);
    expect(bad({ app: "jobs", timeout: 10, timeoutMs: 10_000 })).toThrow(/give timeout \(seconds\) or timeoutMs, not both/);
    expect(bad({ app: "jobs", timeoutMs: 1500 })).toThrow(/timeoutMs must be a whole number of seconds/);
    expect(bad({ app: "jobs", timeout: 24 * 3600 + 1 })).toThrow(InvalidArgumentError);
    expect(bad({ app: "jobs", workdir: "relative/dir" })).toThrow(/workdir must be an absolute path/);
    expect(bad({ app: "jobs", image: "node:20" })).toThrow(/image must be an Image/);
    expect(bad({ app: "jobs", command: ["a\0b"] })).toThrow(/may not contain NUL/);
    expect(bad({ app: "jobs", tags: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`t${i}`, "v"])) })).toThrow(/at most 20 tags/);
  });

  it("exec bodies: an empty command, a relative workdir and unknown options are refused", () => {
    expect(sandboxExecBody(["ls"], { timeoutMs: 5000, workdir: "/" })).toEqual({ command: ["ls"], timeout: 5, workdir: "/", pty: false });
    expect(() => sandboxExecBody([])).toThrow(/exec needs a command/);
    expect(() => sandboxExecBody("ls" as never)).toThrow(/array of strings/);
    expect(() => sandboxExecBody(["ls"], { workdir: "tmp" })).toThrow(/workdir must be an absolute path/);
    expect(() => sandboxExecBody(["ls"], { cwd: "/" } as never)).toThrow(/exec takes no "cwd"/);
  });
});

describe("client.sandboxes against a stand-in daemon", () => {
  it("create waits past pending and returns a running sandbox; a failed one throws the daemon's reason", async () => {
    const sb = await client.sandboxes.create({ app: "jobs", command: ["sleep", "1"] });
    expect(sb.sandboxId).toMatch(/^sb-/);
    expect(sb.lastInfo?.state).toBe("running");
    expect(sb.returncode).toBeNull();
    expect(fake.requests.filter((r) => r.startsWith(`GET /v1/sandboxes/${sb.sandboxId}?wait=50&until=running`))).toHaveLength(2);
    const err = await client.sandboxes.create({ app: "fails" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxCreateError);
    expect((err as Error).message).toMatch(/failed to start: image build failed: no such package nope/);
  });

  it("stdout: readText reads to the end across a cut answer and a split character; a second read has nothing left", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    expect(await sb.stdout.readText()).toBe("héllo\nwörld\nlast");
    expect(fake.requests.filter((r) => r.includes(`${sb.sandboxId}/procs/main/stdout`))).toEqual([
      `GET /v1/sandboxes/${sb.sandboxId}/procs/main/stdout?offset=0&follow=1`,
      `GET /v1/sandboxes/${sb.sandboxId}/procs/main/stdout?offset=8&follow=1`,
    ]);
    expect(await sb.stdout.readText()).toBe("");
    expect((await sb.stderr.readBytes()).toString()).toBe("oops\n");
  });

  it("stdout: lines() yields whole lines with their newline, text iteration whole characters", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    const lines: string[] = [];
    for await (const line of sb.stdout.lines()) lines.push(line);
    expect(lines).toEqual(["héllo\n", "wörld\n", "last"]);
    const sb2 = await client.sandboxes.create({ app: "jobs" });
    const chunks: string[] = [];
    for await (const text of sb2.stdout) chunks.push(text);
    expect(chunks.join("")).toBe("héllo\nwörld\nlast");
    expect(chunks.every((c) => !c.includes("\ufffd"))).toBe(true);
  });

  it("one read at a time per stream", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    const first = sb.stdout.readText();
    await expect(sb.stdout.readText()).rejects.toThrow(/already being read/);
    expect(await first).toBe("héllo\nwörld\nlast");
  });

  it("stdin: writes go in call order (even unawaited), close sends EOF, a write after close is refused", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    void sb.stdin.writeText("one ");
    void sb.stdin.writeBytes(Buffer.from("two "));
    await sb.stdin.writeText("three");
    await sb.stdin.close();
    await sb.stdin.close();
    await expect(sb.stdin.writeText("late")).rejects.toThrow(/is closed/);
    expect(fake.sandboxes.get(sb.sandboxId)!.procs.get("main")!.stdin).toEqual([
      { bytes: "one ", eof: false },
      { bytes: "two ", eof: false },
      { bytes: "three", eof: false },
      { bytes: "", eof: true },
    ]);
  });

  it("exec returns a process whose output and exit code are read; terminate reports 137 through wait", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    fake.nextExec = { stdout: "out", stderr: "err", returncode: 3 };
    const p = await sb.exec(["sh", "-c", "exit 3"]);
    expect(p.execId).toMatch(/^ex-/);
    expect(await p.stdout.readText()).toBe("out");
    expect(await p.stderr.readText()).toBe("err");
    expect(await p.wait()).toBe(3);
    expect(p.returncode).toBe(3);
    await sb.terminate();
    expect(await sb.wait()).toBe(137);
    expect(await sb.poll()).toBe(137);
  });

  it("fromId: a malformed ID is refused without a request; an unknown one is NotFoundError", async () => {
    const before = fake.requests.length;
    await expect(client.sandboxes.fromId("sb-nope")).rejects.toThrow(InvalidArgumentError);
    expect(fake.requests.length).toBe(before);
    await expect(client.sandboxes.fromId(`sb-${"z".repeat(18)}`)).rejects.toThrow(NotFoundError);
  });

  it("list sends app, every tag and the state; running by default, all on request", async () => {
    await client.sandboxes.create({ app: "listed", tags: { k: "v" } });
    const found: string[] = [];
    for await (const sb of client.sandboxes.list({ app: "listed", tags: { k: "v", x: "a=b" } })) found.push(sb.lastInfo!.app);
    expect(found).toEqual(["listed"]);
    expect(fake.requests.at(-1)).toBe("GET /v1/sandboxes?app=listed&tag=k%3Dv&tag=x%3Da%3Db&state=running");
    await client.sandboxes.listInfo({ state: "all" });
    expect(fake.requests.at(-1)).toBe("GET /v1/sandboxes");
    await expect(client.sandboxes.listInfo({ limit: 0 })).rejects.toThrow(/limit must be a whole number/);
  });

  it("tags: setTags replaces them, getTags reads them; too long a tag is refused before sending", async () => {
    const sb = await client.sandboxes.create({ app: "jobs", tags: { a: "1" } });
    await sb.setTags({ b: "2" });
    expect(await sb.getTags()).toEqual({ b: "2" });
    await expect(sb.setTags({ k: "v".repeat(257) })).rejects.toThrow(InvalidArgumentError);
  });

  it("file helpers refuse a relative path, naming the helper", async () => {
    const sb = await client.sandboxes.create({ app: "jobs" });
    await expect(sb.readFile("etc/passwd")).rejects.toThrow(/readFile needs an absolute path/);
    await expect(sb.writeFile("x", "y")).rejects.toThrow(/writeFile needs an absolute path/);
    expect(() => sb.process("ex-bad")).toThrow(/not an exec ID/);
  });
});
