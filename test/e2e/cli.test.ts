import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gantry } from "../helpers/cli.js";
import { exampleApp, fixture } from "../helpers/daemon.js";

let home: string;
let baseUrl: string;
let webUrl: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "ge-"));
  const started = await g("daemon", "start", "--http-port", "0", "--container-network", "none", "--json");
  expect(started.code, started.stderr).toBe(0);
  ({ http: baseUrl, web: webUrl } = JSON.parse(started.stdout) as { http: string; web: string });
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("the gantry CLI, as a user drives it", () => {
  it("deploys web endpoints, printing their URLs; apps ls lists them", async () => {
    const dep = await g("deploy", fixture("web.ts"));
    expect(dep.code, dep.stderr).toBe(0);
    expect(dep.stdout).toContain(`web endpoint: ${webUrl}/web/web/echo/`);
    const apps = await g("apps", "ls");
    expect(apps.stdout).toMatch(new RegExp(`^web\\.api +${webUrl.replace(/[.]/g, "\\.")}/web/web/api/$`, "m"));
  });

  it("reports the running daemon", async () => {
    const status = await g("daemon", "status");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/gantry daemon .* running \(pid \d+\)/);
    const json = JSON.parse((await g("daemon", "status", "--json")).stdout) as { home: string };
    expect(json.home).toBe(home);
  });

  it("deploys the example with progress, then spawn, get and call work", async () => {
    const dep = await g("deploy", exampleApp);
    expect(dep.code, dep.stderr).toBe(0);
    expect(dep.stderr).toContain("bundled");
    expect(dep.stdout).toContain("deployed app my-job-queue");
    expect(dep.stdout).toContain("process_job");

    const spawned = await g("spawn", "my-job-queue", "process_job", '{"x":1}');
    expect(spawned.code, spawned.stderr).toBe(0);
    const id = spawned.stdout.trim();
    expect(id).toMatch(/^fc-[0-9a-z]{26}$/);

    const got = await g("get", id, "--timeout", "30");
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout.trim()).toBe('{"result":{"x":1}}');

    const called = await g("call", "my-job-queue", "process_job", '"hi"');
    expect(called.code, called.stderr).toBe(0);
    expect(called.stdout.trim()).toBe('{"result":"hi"}');

    const shown = await g("calls", "show", id, "--json");
    expect(JSON.parse(shown.stdout)).toMatchObject({ call_id: id, status: "succeeded", attempt: 1, result: { result: { x: 1 } } });
    const listed = await g("calls", "ls", "--app", "my-job-queue");
    expect(listed.stdout).toContain(id);
    const apps = await g("apps", "ls");
    expect(apps.stdout).toMatch(/my-job-queue\s+deployed\s+process_job/);
    const cts = await g("containers", "ls", "--json");
    expect(JSON.parse(cts.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ app: "my-job-queue", function: "process_job" })]));
  });

  it("answers the HTTP endpoint on the port it was started with", async () => {
    const sub = await fetch(`${baseUrl}/submit/my-job-queue/process_job?data=data`, { method: "POST" });
    expect(sub.status).toBe(202);
    const { call_id } = (await sub.json()) as { call_id: string };
    const got = await g("get", call_id, "--timeout", "30");
    expect(got.stdout.trim()).toBe('{"result":"data"}');
  });

  it("redeploys an unchanged app without building", async () => {
    const dep = await g("deploy", exampleApp, "--json");
    expect(dep.code).toBe(0);
    expect(JSON.parse(dep.stdout)).toMatchObject({ type: "done", built: [] });
  });

  it("gives each bad input a clear message and its exit code", async () => {
    const syntax = await g("deploy", fixture("syntax-error.ts"));
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toContain('Expected "}" but found ";"');
    expect(syntax.stderr).toMatch(/syntax-error\.ts:6:\d+/);

    const missingFile = await g("deploy", "/nonexistent/app.ts");
    expect(missingFile).toMatchObject({ code: 2, stderr: expect.stringContaining("app file /nonexistent/app.ts does not exist") });

    const unknownApp = await g("spawn", "no-such-app", "process_job", "1");
    expect(unknownApp).toMatchObject({ code: 4, stderr: "Error: no deployed app named no-such-app\n" });
    const unknownFn = await g("spawn", "my-job-queue", "nope", "1");
    expect(unknownFn).toMatchObject({ code: 4, stderr: "Error: app my-job-queue has no function named nope\n" });

    const notJson = await g("spawn", "my-job-queue", "process_job", "{x:1}");
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain("is not valid JSON");

    const unknownId = await g("get", "fc-00000000000000000000000000");
    expect(unknownId).toMatchObject({ code: 4, stderr: "Error: no call with ID fc-00000000000000000000000000\n" });
    const badId = await g("get", "hello");
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain("not a call ID");

    const badTimeout = await g("get", "fc-00000000000000000000000000", "--timeout", "soon");
    expect(badTimeout.code).toBe(2);

    const usage = await g("spawn");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("missing required argument");
  });

  it("shows the build's steps, and its last output when a build step fails", async () => {
    const file = join(home, "bad-build.ts");
    writeFileSync(
      file,
      `import { App, Image } from "gantry";\nconst app = new App("bad-build");\n` +
        `export const f = app.function({ image: Image.node().runCommands("echo preparing; echo oops >&2; exit 3") }, async function f() { return 1; });\n`,
    );
    const res = await g("deploy", file);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/\[\d+\/\d+\] RUN echo preparing; echo oops >&2; exit 3/);
    expect(res.stderr).toContain('failed at image step 1, runCommands("echo preparing; echo oops >&2; exit 3"): the step exited with code 3');
    // Docker interleaves a step's stdout and stderr in no fixed order.
    const output = res.stderr.slice(res.stderr.indexOf("last lines of the build:\n"));
    expect(output).toMatch(/^last lines of the build:\n/);
    expect(output).toContain("\n  | preparing");
    expect(output).toContain("\n  | oops");
    expect(res.stderr).not.toContain("last build output:"); // quoted once, by the daemon's error
    expect(res.stderr).not.toContain("\x1b[");
  });

  it("reports a failed call with exit code 6 and the remote traceback", async () => {
    const file = join(home, "failing.ts");
    writeFileSync(
      file,
      `import { App } from "gantry";\nconst app = new App("failing");\nexport const f = app.function({}, async function f() { throw new RangeError("out of range"); });\n`,
    );
    expect((await g("deploy", file)).code).toBe(0);
    const res = await g("call", "failing", "f");
    expect(res.code).toBe(6);
    expect(res.stderr).toContain("Error: RangeError: out of range");
    expect(res.stderr).toMatch(/at f /);
    const json = await g("call", "failing", "f", "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "function_failed", type: "RangeError", message: "RangeError: out of range" } });
  });

  it("exits 5 when get runs out of time on a pending call", async () => {
    const file = join(home, "sleepy.ts");
    writeFileSync(
      file,
      `import { App } from "gantry";\nconst app = new App("sleepy");\nexport const nap = app.function({}, async function nap(ms = 60_000) { await new Promise((r) => setTimeout(r, ms)); });\n`,
    );
    expect((await g("deploy", file)).code).toBe(0);
    const id = (await g("spawn", "sleepy", "nap")).stdout.trim();
    const res = await g("get", id, "--timeout", "0.2");
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/still (queued|running)/);
    const cancelled = await g("cancel", id);
    expect(cancelled.code).toBe(0);
    expect((await g("get", id)).code).toBe(8);
  });

  it("prints a function's log lines with the call that wrote them, and follows new ones", async () => {
    const file = join(home, "chatty.ts");
    writeFileSync(
      file,
      `import { App } from "gantry";\nconst app = new App("chatty");\nexport const say = app.function({}, async function say(who: string) { console.log("hello from " + who); console.error("warn " + who); return who; });\n`,
    );
    expect((await g("deploy", file)).code).toBe(0);
    const id = (await g("spawn", "chatty", "say", '"one"')).stdout.trim();
    expect((await g("get", id, "--timeout", "30")).code).toBe(0);
    await vi.waitFor(async () => {
      const logs = await g("logs", "chatty", "say");
      expect(logs.code).toBe(0);
      expect(logs.stdout).toMatch(new RegExp(`say ${id}  hello from one`));
      expect(logs.stderr).toContain("warn one");
    });

    const { spawn } = await import("node:child_process");
    const { GANTRY_BIN } = await import("../helpers/cli.js");
    const follower = spawn(process.execPath, [GANTRY_BIN, "logs", "chatty", "-f", "--tail", "0", "--json"], { env: { ...process.env, GANTRY_HOME: home } });
    let followed = "";
    follower.stdout.on("data", (d: Buffer) => (followed += d.toString()));
    try {
      // The follower is subscribed once it has connected; keep calling until a line shows up.
      await vi.waitFor(async () => {
        await g("call", "chatty", "say", '"two"');
        expect(followed).toContain('"line":"hello from two"');
      }, { timeout: 30_000, interval: 500 });
    } finally {
      follower.kill();
    }
    expect(followed).not.toContain("hello from one");

    const unknown = await g("logs", "no-such-app");
    expect(unknown).toMatchObject({ code: 4, stderr: "Error: no deployed app named no-such-app\n" });
  });

  it("stops an app: its pending calls are cancelled, new ones refused until it is deployed again", async () => {
    const file = join(home, "stoppable.ts");
    writeFileSync(
      file,
      `import { App } from "gantry";\nconst app = new App("stoppable");\nexport const wait = app.function({}, async function wait(ms: number) { await new Promise((r) => setTimeout(r, ms)); return ms; });\n`,
    );
    expect((await g("deploy", file)).code).toBe(0);
    const ids = await Promise.all([1, 2].map(async () => (await g("spawn", "stoppable", "wait", "60000")).stdout.trim()));
    const stopped = await g("apps", "stop", "stoppable");
    expect(stopped).toMatchObject({ code: 0, stdout: "stopped app stoppable\n" });
    for (const id of ids) expect((await g("get", id, "--timeout", "20")).code).toBe(8);
    const refused = await g("spawn", "stoppable", "wait", "1");
    expect(refused).toMatchObject({ code: 4, stderr: "Error: app stoppable is stopped; deploy it again to serve calls\n" });
    expect((await g("apps", "ls")).stdout).toMatch(/stoppable\s+stopped/);
    await vi.waitFor(async () => {
      const cts = JSON.parse((await g("containers", "ls", "--json")).stdout) as Array<{ app: string }>;
      expect(cts.filter((c) => c.app === "stoppable")).toEqual([]);
    }, { timeout: 20_000, interval: 250 });
    expect((await g("deploy", file)).code).toBe(0);
    expect((await g("call", "stoppable", "wait", "1")).stdout.trim()).toBe("1");
  });

  it("refuses a second daemon on the same home", async () => {
    const again = await g("daemon", "start");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already running \(pid \d+\)/);
    const fg = await g("daemon", "start", "--foreground");
    expect(fg.code).toBe(1);
    expect(fg.stderr).toMatch(/another gantry daemon \(pid \d+\) already runs on this GANTRY_HOME/);
  });
});

describe("the CLI without a daemon", () => {
  it("runs as npx gantry in the project folder", async () => {
    const { execFileSync } = await import("node:child_process");
    const root = join(import.meta.dirname, "..", "..");
    expect(execFileSync("npx", ["--no-install", "gantry", "--version"], { cwd: root, encoding: "utf8" }).trim()).toBe("0.1.0");
  });

  it("says no daemon is running, with exit code 3", async () => {
    const empty = mkdtempSync(join(tmpdir(), "ge-none-"));
    try {
      const res = await gantry(empty, ["spawn", "my-job-queue", "process_job", "1"]);
      expect(res.code).toBe(3);
      expect(res.stderr).toContain("no gantry daemon answers");
      expect(res.stderr).toContain("gantry daemon start");
      const status = await gantry(empty, ["daemon", "status"]);
      expect(status.code).toBe(3);
      const stop = await gantry(empty, ["daemon", "stop"]);
      expect(stop).toMatchObject({ code: 0, stdout: "no gantry daemon is running\n" });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("gantry dashboard prints the dashboard's URL, and opens it where there is a display", async () => {
    const printed = await g("dashboard", "--no-open");
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout.trim()).toBe(`${baseUrl}/`);
    const page = await fetch(printed.stdout.trim());
    expect(await page.text()).toContain('<div id="root">');
    expect(JSON.parse((await g("dashboard", "--no-open", "--json")).stdout)).toEqual({ url: `${baseUrl}/`, opened: false });

    // A stand-in xdg-open on PATH records what it was asked to open.
    const bin = mkdtempSync(join(tmpdir(), "ge-open-"));
    try {
      const opened = join(bin, "opened");
      writeFileSync(join(bin, "xdg-open"), `#!/bin/sh\necho "$1" > ${opened}\n`, { mode: 0o755 });
      const env = { PATH: `${bin}:${process.env.PATH}`, DISPLAY: ":0" };
      const r = await gantry(home, ["dashboard"], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("(opened in your browser)");
      await vi.waitFor(() => expect(readFileSync(opened, "utf8").trim()).toBe(`${baseUrl}/`), { timeout: 10_000, interval: 50 });
      const headless = await gantry(home, ["dashboard"], { PATH: env.PATH, DISPLAY: "", WAYLAND_DISPLAY: "" });
      expect(headless.stdout.trim()).toBe(`${baseUrl}/`);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("gantry dashboard says how to get one when the daemon serves no HTTP port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ge-nohttp-"));
    try {
      expect((await gantry(dir, ["daemon", "start", "--container-network", "none"])).code).toBe(0);
      const r = await gantry(dir, ["dashboard"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("the daemon serves no HTTP port, so no dashboard: restart it with one, e.g. gantry daemon stop && gantry daemon start --http-port 8700");
    } finally {
      await gantry(dir, ["daemon", "stop"]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("gantry nodes lists this machine, its cores, memory and the containers on it", async () => {
    const r = await g("nodes", "--json");
    expect(r.code, r.stderr).toBe(0);
    const nodes = JSON.parse(r.stdout) as Array<{ role: string; state: string; cpus: number; containers: number }>;
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({ role: "local", state: "ready", cpus: expect.any(Number) });
    expect((await g("nodes")).stdout).toMatch(/^NODE +ROLE +STATE +CPUS +MEMORY +GPUS +CONTAINERS +SLOTS BUSY\n\S+ +local +ready /);
    const status = await g("daemon", "status");
    expect(status.stdout).toContain("backend:    docker (this machine)");
  });

  it("daemon start refuses a backend it does not know, and cluster options without --backend swarm", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ge-backend-"));
    try {
      const bad = await gantry(dir, ["daemon", "start", "--backend", "k8s"]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--backend: backend "k8s" is not one of docker, swarm');
      const stray = await gantry(dir, ["daemon", "start", "--registry", "10.0.0.1:5000"]);
      expect(stray.code).toBe(2);
      expect(stray.stderr).toContain("--registry, --advertise-addr, --swarm-network and --volume-driver are for --backend swarm");
      const shared = await gantry(dir, ["daemon", "start", "--backend", "swarm", "--volume-driver", "local", "--volume-driver-opt", "device=:/srv/one"]);
      expect(shared.code).toBe(2);
      expect(shared.stderr).toContain("no option holds {name}");
      const addr = await gantry(dir, ["daemon", "start", "--backend", "swarm", "--advertise-addr", "http://nope"]);
      expect(addr.code).toBe(2);
      expect(addr.stderr).toContain("--advertise-addr must be HOST or HOST:PORT");
      // This engine is in no swarm: the daemon says how to make one.
      const noSwarm = await gantry(dir, ["daemon", "start", "--backend", "swarm", "--advertise-addr", "127.0.0.1:0"]);
      expect(noSwarm.code).toBe(1);
      expect(noSwarm.stderr).toContain("--backend swarm needs a Swarm manager, and this Docker engine is in no swarm: run docker swarm init");
      expect(noSwarm.stderr).toContain("the daemon exited (code 1) during start"); // it leaves no process behind
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("replaces a stale socket left by a dead daemon", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ge-stale-"));
    try {
      writeFileSync(join(dir, "daemon.pid"), "999999\n");
      // A socket file with nobody listening: made by a process that exits at once.
      const { execFileSync } = await import("node:child_process");
      execFileSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(join(dir, "gantry.sock"))}, () => process.exit(0))`]);
      const started = await gantry(dir, ["daemon", "start", "--container-network", "none"]);
      expect(started.code, started.stderr).toBe(0);
      expect((await gantry(dir, ["daemon", "status"])).code).toBe(0);
      expect((await gantry(dir, ["daemon", "stop"])).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
