/**
 * Sandboxes against the real daemon and Docker engine (issue 24), through the HTTP API on the
 * unix socket: stdio, exec, files, timeouts, and hostile sandboxes that must change nothing
 * outside them. The SDKs and the CLI have tests of their own (sandbox-sdk, test_sandbox.py,
 * sandbox-cli).
 */
import http from "node:http";
import { join } from "node:path";
import { readdirSync } from "node:fs";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploy, docker, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import type { ProcessView, SandboxView } from "../../protocol/sandboxes.js";

let t: TestDaemon;
const OUTPUT_CAP = 256 * 1024;

interface Reply {
  status: number;
  body: Buffer;
  json: () => any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function api(method: string, path: string, body?: unknown, home = t.home): Promise<Reply> {
  const raw = Buffer.isBuffer(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: join(home, "gantry.sock"), method, path, headers: { "content-type": raw ? "application/octet-stream" : "application/json" } },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => {
          const buf = Buffer.concat(parts);
          resolve({ status: res.statusCode!, body: buf, json: () => JSON.parse(buf.toString("utf8")) });
        });
      },
    );
    req.on("error", reject);
    req.end(raw ? body : body === undefined ? undefined : JSON.stringify(body));
  });
}

async function create(def: Record<string, unknown>, home = t.home): Promise<SandboxView> {
  const r = await api("POST", "/v1/sandboxes", { app: "sbtest", block_network: true, ...def }, home);
  expect(r.status, r.body.toString()).toBe(201);
  return r.json() as SandboxView;
}

/** Waits (in the daemon: ?wait=) until the sandbox runs, or has ended. */
async function running(id: string, home = t.home): Promise<SandboxView> {
  const v = (await api("GET", `/v1/sandboxes/${id}?wait=30&until=running`, undefined, home)).json() as SandboxView;
  expect(v.state, v.error ?? "").not.toBe("pending");
  return v;
}

async function ended(id: string, home = t.home): Promise<SandboxView> {
  const v = (await api("GET", `/v1/sandboxes/${id}?wait=45`, undefined, home)).json() as SandboxView;
  expect(["finished", "timed_out", "terminated", "failed"]).toContain(v.state);
  return v;
}

async function execWait(id: string, command: string[], extra: Record<string, unknown> = {}): Promise<{ proc: ProcessView; stdout: string; stderr: string }> {
  const r = await api("POST", `/v1/sandboxes/${id}/exec`, { command, ...extra });
  expect(r.status, r.body.toString()).toBe(201);
  const ex = (r.json() as ProcessView).id;
  const proc = (await api("GET", `/v1/sandboxes/${id}/procs/${ex}?wait=30`)).json() as ProcessView;
  const stdout = (await api("GET", `/v1/sandboxes/${id}/procs/${ex}/stdout?follow=1`)).body.toString();
  const stderr = (await api("GET", `/v1/sandboxes/${id}/procs/${ex}/stderr?follow=1`)).body.toString();
  return { proc, stdout, stderr };
}

const containerOf = async (id: string) => (await docker.listContainers({ all: true, filters: { label: [`gantry.sandbox=${id}`] } }))[0];

beforeAll(async () => {
  t = await startTestDaemon({ sandboxOutputBytes: OUTPUT_CAP });
});

afterAll(async () => {
  await t?.dispose();
});

describe("a sandbox's command", () => {
  it("runs as a uid no host account has, without capabilities or new privileges, on a read-only root; its output and exit code are kept", async () => {
    const sb = await create({ command: ["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /x 2>&1; echo oops >&2; exit 7"] });
    expect(sb.id).toMatch(/^sb-[0-9a-z]{18}$/);
    expect(sb.state).toBe("pending");
    const done = await ended(sb.id);
    expect(done).toMatchObject({ state: "finished", returncode: 7, error: null });
    const out = (await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout`)).body.toString();
    expect(out).toMatch(/^99000\n/);
    expect(out).toMatch(/CapEff:\s+0000000000000000/);
    expect(out).toMatch(/NoNewPrivs:\s+1/);
    expect(out).toMatch(/Read-only file system/);
    expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stderr`)).body.toString()).toBe("oops\n");
    // From an offset, as a reader that has the first line already.
    expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout?offset=6`)).body.toString()).toMatch(/^CapEff/);
    await expect.poll(() => containerOf(sb.id)).toBeUndefined(); // removed once it ended
  });

  it("block_network leaves only loopback; without it the sandbox is on Docker's bridge", async () => {
    const blocked = await create({ command: ["ls", "/sys/class/net"] });
    await ended(blocked.id);
    expect((await api("GET", `/v1/sandboxes/${blocked.id}/procs/main/stdout`)).body.toString().split("\n").filter(Boolean)).toEqual(["lo"]);
    // A daemon without the tests' forced "none" network: the default is the bridge (this check is about networking).
    const open = await startTestDaemon({ forceNetwork: null });
    try {
      const sb = await create({ command: ["ls", "/sys/class/net"], block_network: false }, open.home);
      await ended(sb.id, open.home);
      const nets = (await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout`, undefined, open.home)).body.toString();
      expect(nets).toContain("eth0");
    } finally {
      await open.dispose();
    }
  });

  it("a work folder the image lacks is made writable for it; one the image has keeps the image's files", async () => {
    const fresh = await create({ command: ["sh", "-c", "pwd; echo x > note && cat note"], workdir: "/work" });
    const kept = await create({ command: ["sh", "-c", "ls; touch y 2>&1; true"], workdir: "/opt/gantry" });
    const [a, b] = await Promise.all([ended(fresh.id), ended(kept.id)]);
    expect(a.returncode).toBe(0);
    expect((await api("GET", `/v1/sandboxes/${fresh.id}/procs/main/stdout`)).body.toString()).toBe("/work\nx\n");
    expect(b.returncode).toBe(0);
    const listing = (await api("GET", `/v1/sandboxes/${kept.id}/procs/main/stdout`)).body.toString();
    expect(listing).toContain("agent.py"); // the Python runtime layer's agent
    expect(listing).toMatch(/Read-only file system/);
  });

  it("reads stdin written through the API, and sees EOF", async () => {
    const sb = await create({ command: ["sh", "-c", "cat; echo done"] });
    await running(sb.id);
    expect((await api("POST", `/v1/sandboxes/${sb.id}/procs/main/stdin`, Buffer.from("one\n"))).json()).toEqual({ written: 4 });
    expect((await api("POST", `/v1/sandboxes/${sb.id}/procs/main/stdin?eof=1`, Buffer.from("two\n"))).status).toBe(200);
    expect((await ended(sb.id)).returncode).toBe(0);
    expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout?follow=1`)).body.toString()).toBe("one\ntwo\ndone\n");
    const late = await api("POST", `/v1/sandboxes/${sb.id}/procs/main/stdin`, Buffer.from("x"));
    expect(late.status).toBe(409);
    expect(late.json().error.message).toMatch(/stdin .* is closed/);
  });
});

describe("exec and files", () => {
  let sb: SandboxView;
  beforeAll(async () => {
    sb = await create({ timeout: 120 });
    await running(sb.id);
  });

  it("runs commands with their own stdout, stderr, exit code, env and workdir", async () => {
    const r = await execWait(sb.id, ["sh", "-c", 'echo "$GREETING from $(pwd)"; echo warn >&2; exit 3'], { env: { GREETING: "hi" }, workdir: "/tmp" });
    expect(r.proc).toMatchObject({ running: false, returncode: 3 });
    expect(r.stdout).toBe("hi from /tmp\n");
    expect(r.stderr).toBe("warn\n");
  });

  it("ends an exec past its timeout with 124, and the sandbox runs on", async () => {
    const r = await execWait(sb.id, ["sleep", "60"], { timeout: 1 });
    expect(r.proc.returncode).toBe(124);
    expect(((await api("GET", `/v1/sandboxes/${sb.id}`)).json() as SandboxView).state).toBe("running");
  });

  it("writes, appends, reads, lists and removes files as the sandbox's user, and refuses what that user may not do", async () => {
    expect((await api("PUT", `/v1/sandboxes/${sb.id}/files?path=/tmp/notes.txt`, Buffer.from("a\n"))).status).toBe(201);
    expect((await api("PUT", `/v1/sandboxes/${sb.id}/files?path=/tmp/notes.txt&append=1`, Buffer.from("b\n"))).json()).toEqual({ path: "/tmp/notes.txt", size: 4 });
    expect((await api("GET", `/v1/sandboxes/${sb.id}/files?path=/tmp/notes.txt`)).body.toString()).toBe("a\nb\n");
    expect((await api("POST", `/v1/sandboxes/${sb.id}/mkdir`, { path: "/tmp/d/e", parents: true })).status).toBe(201);
    const entries = (await api("GET", `/v1/sandboxes/${sb.id}/entries?path=/tmp`)).json().entries as Array<{ path: string; type: string }>;
    expect(entries.map((e) => [e.path, e.type])).toEqual(expect.arrayContaining([["/tmp/notes.txt", "file"], ["/tmp/d", "directory"]]));
    expect((await api("DELETE", `/v1/sandboxes/${sb.id}/files?path=/tmp/d`)).status).toBe(400); // a folder needs recursive
    expect((await api("DELETE", `/v1/sandboxes/${sb.id}/files?path=/tmp/d&recursive=1`)).status).toBe(200);

    expect((await api("GET", `/v1/sandboxes/${sb.id}/files?path=/tmp/missing`)).status).toBe(404);
    expect((await api("GET", `/v1/sandboxes/${sb.id}/files?path=/tmp`)).status).toBe(400);
    for (const path of ["/etc/passwd", "/opt/gantry/x", "/x"]) {
      const w = await api("PUT", `/v1/sandboxes/${sb.id}/files?path=${encodeURIComponent(path)}`, Buffer.from("x"));
      expect(w.status, path).toBe(403);
    }
    expect((await api("GET", `/v1/sandboxes/${sb.id}/files?path=relative`)).status).toBe(400);
  });

  it("refuses bad requests clearly, naming the thing and the limit", async () => {
    expect((await api("GET", "/v1/sandboxes/nope")).json().error.message).toMatch(/not a sandbox ID/);
    expect((await api("GET", "/v1/sandboxes/sb-000000000000000000")).status).toBe(404);
    expect((await api("POST", "/v1/sandboxes", { app: "sbtest", timeout: 90_000 })).json().error.message).toMatch(/timeout/);
    expect((await api("POST", "/v1/sandboxes", { app: "sbtest", command: ["x".repeat(70_000)] })).json().error.message).toMatch(/65536 bytes/);
    expect((await api("POST", "/v1/sandboxes", { app: "../x" })).status).toBe(400);
    expect((await api("POST", "/v1/sandboxes", { app: "sbtest", secrets: ["no-such-secret"] })).status).toBe(400);
    expect((await api("POST", `/v1/sandboxes/${sb.id}/exec`, { command: [] })).json().error.message).toMatch(/exec needs a command/);
    const big = await api("POST", `/v1/sandboxes/${sb.id}/procs/main/stdin`, Buffer.alloc(8 * 1024 * 1024 + 1));
    expect(big.status).toBe(413);
  });

  it("tags a sandbox and finds it by its tags and app", async () => {
    expect((await api("PUT", `/v1/sandboxes/${sb.id}/tags`, { tags: { role: "worker", "odd key": 'a"b' } })).json().tags).toEqual({ role: "worker", "odd key": 'a"b' });
    const found = (await api("GET", `/v1/sandboxes?app=sbtest&tag=role=worker&tag=${encodeURIComponent('odd key=a"b')}`)).json().sandboxes as SandboxView[];
    expect(found.map((s) => s.id)).toEqual([sb.id]);
    expect((await api("GET", "/v1/sandboxes?tag=role=other")).json().sandboxes).toEqual([]);
    expect((await api("GET", "/v1/sandboxes?app=other-app")).json().sandboxes).toEqual([]);
  });
});

describe("lifecycle", () => {
  it("ends a sandbox past its timeout (124) and one idle past its idle timeout, removing their containers", async () => {
    const slow = await create({ command: ["sleep", "60"], timeout: 2 });
    const idle = await create({ idle_timeout: 2 });
    const [a, b] = await Promise.all([ended(slow.id), ended(idle.id)]);
    expect(a).toMatchObject({ state: "timed_out", returncode: 124, timeout_kind: "timeout" });
    expect(b).toMatchObject({ state: "timed_out", returncode: 124, timeout_kind: "idle" });
    await expect.poll(() => containerOf(slow.id)).toBeUndefined();
    await expect.poll(() => containerOf(idle.id)).toBeUndefined();
  });

  it("its timeout counts from its start: a build longer than the timeout does not end it", async () => {
    const sb = await create({ command: ["echo", "ran"], timeout: 1, idle_timeout: 1, image: { base: { kind: "python" }, steps: [{ kind: "run", commands: [`sleep 3 # ${Date.now()}`] }] } });
    const v = await ended(sb.id);
    expect(v, v.error ?? "").toMatchObject({ state: "finished", returncode: 0 });
    expect(Date.parse(v.started_at!) - Date.parse(v.created_at)).toBeGreaterThan(2000);
  });

  it("terminate ends it with 137; exec on it is refused after", async () => {
    const sb = await create({});
    await running(sb.id);
    expect(((await api("POST", `/v1/sandboxes/${sb.id}/terminate`)).json() as SandboxView).state).toBe("terminated");
    expect((await ended(sb.id)).returncode).toBe(137);
    const r = await api("POST", `/v1/sandboxes/${sb.id}/exec`, { command: ["true"] });
    expect(r.status).toBe(409);
    expect(r.json().error.message).toMatch(/has ended \(terminated\)/);
  });

  it("a failed start says why: an image step that fails to build", async () => {
    const sb = await create({ image: { base: { kind: "python" }, steps: [{ kind: "run", commands: ["exit 9"] }] } });
    const v = await ended(sb.id);
    expect(v.state).toBe("failed");
    expect(v.error).toMatch(/exit 9|returned a non-zero code/);
  });

  it("after a daemon restart, a sandbox that was running is recorded as terminated and its container is gone", async () => {
    const own = await startTestDaemon(); // a daemon of its own, to restart
    const home = own.home;
    try {
      const sb = await create({}, home);
      await running(sb.id, home);
      expect(await containerOf(sb.id)).toBeDefined();
      await own.restart();
      const v = (await api("GET", `/v1/sandboxes/${sb.id}`, undefined, home)).json() as SandboxView;
      expect(v).toMatchObject({ state: "terminated", returncode: 137 });
      expect(v.error).toMatch(/the daemon stopped/);
      expect(await containerOf(sb.id)).toBeUndefined();
      // Its output stays readable.
      expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout`, undefined, home)).status).toBe(200);

      // A daemon that died without stopping left a row that says "running" (and a container, removed at the start).
      await own.stop();
      const db = new Database(join(home, "gantry.db"));
      db.prepare(`UPDATE sandboxes SET state = 'running', returncode = NULL, error = NULL, ended_at = NULL WHERE id = ?`).run(sb.id);
      db.close();
      await own.restart();
      const after = (await api("GET", `/v1/sandboxes/${sb.id}`, undefined, home)).json() as SandboxView;
      expect(after).toMatchObject({ state: "terminated", returncode: 137 });
      expect(after.error).toMatch(/the daemon restarted: sandboxes do not outlive it/);
    } finally {
      await own.dispose();
    }
  });
});

describe("from a function's container", () => {
  it("a function makes sandboxes of its own app, and reaches no other app's, no secrets", async () => {
    await deploy(t, pyFixture("sandboxes/py_sb.py"));
    const call = async (fn: string, ...args: unknown[]) => (await t.client.functions.fromName("py-sb", fn)).remote(...args);
    const made = (await call("run_in_sandbox", "from inside")) as { out: string; code: number; id: string };
    expect(made).toMatchObject({ out: "from inside\n99000\n", code: 0 });
    expect(((await api("GET", `/v1/sandboxes/${made.id}`)).json() as SandboxView).app).toBe("py-sb");

    const foreign = await create({ app: "sbtest" });
    const tries = (await call("overreach", foreign.id)) as Array<[string, string, string]>;
    expect(tries).toEqual([
      ["other app", "PermissionDeniedError", expect.stringMatching(/makes sandboxes of its own app only, not of someone-else/)],
      ["secret", "PermissionDeniedError", expect.stringMatching(/cannot be given secrets/)],
      ["foreign sandbox", "NotFoundError", expect.stringMatching(/no sandbox sb-/)],
    ]);
    expect(((await api("GET", `/v1/sandboxes?app=someone-else`)).json().sandboxes as unknown[]).length).toBe(0);
  });
});

describe("hostile sandboxes change nothing outside them", () => {
  it("an output flood is capped on disk and costs the daemon no memory; the process is not held up", async () => {
    const rssBefore = process.memoryUsage().rss;
    const sb = await create({ command: ["sh", "-c", "head -c 300000000 /dev/zero; echo finished >&2"] });
    expect((await ended(sb.id)).returncode).toBe(0);
    const main = (await api("GET", `/v1/sandboxes/${sb.id}/procs/main`)).json() as ProcessView;
    expect(main, JSON.stringify(main)).toMatchObject({ dropped: true });
    expect(main.stdout_bytes).toBeLessThan(OUTPUT_CAP + 200);
    const out = (await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout`)).body.toString();
    expect(out).toMatch(/this stream passed 262144 bytes; the rest was dropped/);
    expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stderr`)).body.toString()).toBe("finished\n");
    const grown = process.memoryUsage().rss - rssBefore;
    expect(grown).toBeLessThan(64 * 1024 * 1024); // 300 MB went through
  });

  it("a fork bomb is held by its pids limit; the daemon and other sandboxes go on", async () => {
    // An exec forks until the limit refuses (its sleeps hold the pids there); half a core, so that CI's other tests go on.
    const bomb = await create({ timeout: 60, cpu: 0.5 });
    await running(bomb.id);
    expect((await api("POST", `/v1/sandboxes/${bomb.id}/exec`, { command: ["sh", "-c", "while :; do sleep 100 & done"] })).status).toBe(201);
    const c = docker.getContainer((await containerOf(bomb.id))!.Id);
    let most = 0;
    await expect
      .poll(async () => (most = Math.max(most, ((await c.stats({ stream: false })) as { pids_stats?: { current?: number } }).pids_stats?.current ?? 0)), { timeout: 15_000 })
      .toBeGreaterThan(400);
    expect(most).toBeLessThanOrEqual(512);
    const other = await create({ command: ["echo", "still here"] });
    expect((await ended(other.id)).returncode).toBe(0);
    expect((await api("GET", "/v1/health")).status).toBe(200);
    await api("POST", `/v1/sandboxes/${bomb.id}/terminate`);
    expect((await ended(bomb.id)).returncode).toBe(137);
    await expect.poll(() => containerOf(bomb.id)).toBeUndefined();
  });

  it("writes to a volume only where it is mounted read-write; the host sees those and nothing else", async () => {
    expect((await api("POST", "/v1/volumes", { name: "sb-vol" })).status).toBe(201);
    const sb = await create({
      command: ["sh", "-c", "echo rw > /rw/ok; touch /ro/no 2>&1; touch /opt/no 2>&1; true"],
      volumes: [
        { path: "/rw", name: "sb-vol" },
        { path: "/ro", name: "sb-vol", readOnly: true },
      ],
    });
    expect((await ended(sb.id)).returncode).toBe(0);
    expect((await api("GET", `/v1/sandboxes/${sb.id}/procs/main/stdout`)).body.toString().match(/Read-only file system/g)).toHaveLength(2);
    expect(readdirSync(join(t.home, "volumes", "sb-vol"))).toEqual(["ok"]);
  });

  it("a memory hog passes its limit and is killed, saying so", async () => {
    const sb = await create({ command: ["python3", "-c", "x = bytearray(200 * 1024 * 1024); print(len(x))"], memory: 64 });
    const v = await ended(sb.id);
    expect(v.returncode).toBe(137);
    expect(v.error).toMatch(/memory limit of 64 MiB/);
  });

  it("the daemon keeps no more than its limit of running sandboxes", async () => {
    const small = await startTestDaemon({ maxSandboxes: 1 });
    try {
      const first = await create({}, small.home);
      const r = await api("POST", "/v1/sandboxes", { app: "sbtest", block_network: true }, small.home);
      expect(r.status).toBe(422);
      expect(r.json().error.message).toMatch(/GANTRY_MAX_SANDBOXES=1/);
      await api("POST", `/v1/sandboxes/${first.id}/terminate`, undefined, small.home);
      expect(readdirSync(join(small.home, "sandboxes"))).toContain(first.id);
    } finally {
      await small.dispose();
    }
  });
});
