/**
 * Sandboxes through the TypeScript SDK (issue 24) on the real Docker engine and daemon: a main
 * command's output and exit code, exec with stdin piped to `cat`, stderr, terminate (137) and what
 * is refused after it, fromId and list (by app and tag), files, and block_network (this daemon
 * gives containers a network, so the difference shows). Few sandboxes: CI has 2 cores.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, InvalidArgumentError, NotFoundError } from "../../sdk/errors.js";
import { Image } from "../../sdk/image.js";
import { SandboxCreateError, type Sandbox } from "../../sdk/sandbox.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;
/** A sandbox that stays up for the execs of several tests. */
let shared: Sandbox;

beforeAll(async () => {
  t = await startTestDaemon({ forceNetwork: null }); // containers get Docker's bridge unless they block it
  shared = await t.client.sandboxes.create({ app: "sbx-sdk", blockNetwork: true, timeout: 300, tags: { role: "shared" } });
}, 180_000);
afterAll(async () => {
  await shared?.terminate().catch(() => undefined);
  await t?.dispose();
});

describe("sandboxes through the TypeScript SDK", () => {
  it("runs a main command: its stdout, stderr and exit code", async () => {
    const sb = await t.client.sandboxes.create({ app: "sbx-sdk", blockNetwork: true, command: ["sh", "-c", "echo out; echo err >&2; exit 3"] });
    expect(sb.sandboxId).toMatch(/^sb-[0-9a-z]{18}$/);
    expect(await sb.stdout.readText()).toBe("out\n");
    expect(await sb.stderr.readText()).toBe("err\n");
    expect(await sb.wait()).toBe(3);
    expect(sb.returncode).toBe(3);
    expect(sb.lastInfo).toMatchObject({ state: "finished", returncode: 3, app: "sbx-sdk", block_network: true });
  });

  it("exec: stdin written to cat comes back on stdout; stderr and the exit code of another", async () => {
    const cat = await shared.exec(["cat"]);
    await cat.stdin.writeText("hello ");
    await cat.stdin.writeBytes(Buffer.from("wörld\n"));
    await cat.stdin.close();
    expect(await cat.stdout.readText()).toBe("hello wörld\n");
    expect(await cat.wait()).toBe(0);
    const failing = await shared.exec(["sh", "-c", "echo to-err >&2; exit 5"], { env: { X: "1" } });
    const lines: string[] = [];
    for await (const line of failing.stderr.lines()) lines.push(line);
    expect(lines).toEqual(["to-err\n"]);
    expect(await failing.wait()).toBe(5);
    expect(await failing.poll()).toBe(5);
  });

  it("exec takes a workdir and env; a process runs as a user other than root", async () => {
    const p = await shared.exec(["sh", "-c", 'echo "$(pwd) $GREETING $(id -u)"'], { workdir: "/tmp", env: { GREETING: "hi" } });
    const [pwd, greeting, uid] = (await p.stdout.readText()).trim().split(" ");
    expect([pwd, greeting]).toEqual(["/tmp", "hi"]);
    expect(Number(uid)).not.toBe(0);
  });

  it("files: writeFile then readFile and ls; a missing file is NotFoundError", async () => {
    await shared.writeFile("/tmp/note.txt", "first\n");
    await shared.writeFile("/tmp/note.txt", "second\n", { append: true });
    expect((await shared.readFile("/tmp/note.txt")).toString()).toBe("first\nsecond\n");
    expect((await shared.ls("/tmp")).map((e) => e.path)).toContain("/tmp/note.txt");
    await expect(shared.readFile("/tmp/missing.txt")).rejects.toThrow(NotFoundError);
  });

  it("fromId finds it (an unknown ID is NotFoundError, a malformed one refused); list finds it by app and tag", async () => {
    const again = await t.client.sandboxes.fromId(shared.sandboxId);
    expect(again.lastInfo).toMatchObject({ id: shared.sandboxId, state: "running", tags: { role: "shared" } });
    expect(await (await again.exec(["echo", "via fromId"])).stdout.readText()).toBe("via fromId\n");
    await expect(t.client.sandboxes.fromId(`sb-${"0".repeat(18)}`)).rejects.toThrow(NotFoundError);
    await expect(t.client.sandboxes.fromId("sb-1")).rejects.toThrow(InvalidArgumentError);
    const ids = async (p: Parameters<typeof t.client.sandboxes.list>[0]) => {
      const out: string[] = [];
      for await (const sb of t.client.sandboxes.list(p)) out.push(sb.sandboxId);
      return out;
    };
    expect(await ids({ app: "sbx-sdk" })).toContain(shared.sandboxId);
    expect(await ids({ app: "sbx-sdk", tags: { role: "shared" } })).toEqual([shared.sandboxId]);
    expect(await ids({ app: "sbx-sdk", tags: { role: "other" } })).toEqual([]);
    expect(await ids({ app: "no-such-app" })).toEqual([]);
  });

  it("terminate ends it with 137, its running exec too; exec after is ConflictError", async () => {
    const sb = await t.client.sandboxes.create({ app: "sbx-sdk", blockNetwork: true, command: ["sleep", "300"] });
    const sleeper = await sb.exec(["sleep", "300"]);
    expect(await sb.poll()).toBeNull();
    await sb.terminate();
    expect(await sb.wait()).toBe(137);
    expect(sb.lastInfo?.state).toBe("terminated");
    expect(await sleeper.wait()).toBe(137);
    await expect(sb.exec(["true"])).rejects.toThrow(ConflictError);
  });

  it("blockNetwork leaves only loopback; without it the sandbox has Docker's network", async () => {
    const ifaces = async (sb: Sandbox) => (await (await sb.exec(["ls", "/sys/class/net"])).stdout.readText()).split(/\s+/).filter(Boolean).sort();
    expect(await ifaces(shared)).toEqual(["lo"]);
    const open = await t.client.sandboxes.create({ app: "sbx-sdk", timeout: 60 });
    try {
      expect(open.lastInfo?.block_network).toBe(false);
      expect(await ifaces(open)).toEqual(expect.arrayContaining(["eth0", "lo"]));
    } finally {
      await open.terminate();
    }
  });

  it("a sandbox whose image does not build throws SandboxCreateError with the daemon's reason", async () => {
    const err = await t.client.sandboxes.create({ app: "sbx-sdk", blockNetwork: true, image: Image.node().runCommands("echo no-such-tool >&2; exit 9") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxCreateError);
    expect((err as Error).message).toMatch(/^sandbox sb-[0-9a-z]{18} failed to start: .*(exit|code).*9/s);
    const id = (err as SandboxCreateError).sandboxId;
    expect((await t.client.sandboxes.info(id)).state).toBe("failed");
  });

  it("a missing secret is refused, naming it", async () => {
    const err = await t.client.sandboxes.create({ app: "sbx-sdk", blockNetwork: true, secrets: ["no-such-secret"] }).catch((e: unknown) => e);
    expect(err, String(err)).toBeInstanceOf(InvalidArgumentError); // refused before anything starts
    expect((err as Error).message).toMatch(/secret no-such-secret does not exist: create it with gantry secret create no-such-secret/);
  });
});
