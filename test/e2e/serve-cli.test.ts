/**
 * `gantry serve FILE` as a user drives it (issue 21), against a daemon the CLI started: the first
 * deploy prints its web endpoint, a saved change to a module the app imports is redeployed without
 * rebuilding the image, an edit that no longer loads is reported while serve goes on, a Python app
 * deployed already is announced before serve replaces it, and Ctrl-C or SIGTERM stops the app and
 * exits 0. Then Python's in-code lifecycle: `with app.run():` in a script run as `python script.py`,
 * and `app.deploy()`. Both deploy ephemeral apps: a serve or a script killed outright leaves
 * nothing running, since the daemon stops an app whose heartbeats stop. Waits are on serve's
 * --json events, or polls with a deadline, never on fixed sleeps.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { gantry, GANTRY_BIN, PYTHON_PACKAGE, runProcess } from "../helpers/cli.js";

let home: string;
let dir: string;
let webUrl: string;
const g = (...args: string[]) => gantry(home, args);
const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gsv-"));
  dir = mkdtempSync(join(tmpdir(), "gsv-app-"));
  // Ephemeral apps (serve, app.run()) live 3 s past their client's last heartbeat here, not a minute.
  const started = await gantry(home, ["daemon", "start", "--http-port", "0", "--container-network", "none", "--json"], { GANTRY_EPHEMERAL_APP_TTL: "3" });
  expect(started.code, started.stderr).toBe(0);
  ({ web: webUrl } = JSON.parse(started.stdout) as { web: string });
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

interface Served {
  child: ChildProcess;
  /** --json events so far (human runs: none). */
  events: Array<Record<string, unknown> & { event: string }>;
  stdout: () => string;
  stderr: () => string;
  /** Waits until `n` events of this kind have come; returns the last. */
  nth(kind: string, n: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

const running: ChildProcess[] = [];
afterEach(() => {
  for (const c of running.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Starts `gantry serve` (with --json unless `human`), reading its output as it comes. */
function serve(file: string, human = false): Served {
  const child = spawn(process.execPath, [GANTRY_BIN, "serve", file, ...(human ? [] : ["--json"])], {
    env: { ...process.env, GANTRY_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let out = "";
  let err = "";
  const events: Served["events"] = [];
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    if (human) return;
    const lines = out.split("\n");
    for (const line of lines.slice(events.length, -1)) events.push(JSON.parse(line) as Served["events"][number]);
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    child,
    events,
    stdout: () => out,
    stderr: () => err,
    exited,
    async nth(kind, n) {
      return vi.waitFor(
        () => {
          const matching = events.filter((e) => e.event === kind);
          if (matching.length < n) throw new Error(`${matching.length} ${kind} event(s) of ${n}; so far: ${out}${err}`);
          return matching[n - 1]!;
        },
        { timeout: 150_000, interval: 50 },
      );
    },
  };
}

const appState = async (name: string) => {
  const r = await g("apps", "ls", "--json");
  return (JSON.parse(r.stdout) as Array<{ name: string; state: string }>).find((a) => a.name === name)?.state;
};

const tsApp = (suffix: string) =>
  `import { App } from "gantry";\nimport { greeting } from "./greeting.js";\nconst app = new App("serve-e2e");\n` +
  `export const hello = app.function({}, async function hello() { return greeting + ${JSON.stringify(suffix)}; });\n` +
  `export const page = app.webEndpoint({ public: true }, async function page() { return new Response(greeting + "\\n"); });\n`;

describe("gantry serve", () => {
  it("deploys a TypeScript app, redeploys saved changes without rebuilding, reports a broken edit and goes on, and Ctrl-C stops the app", async () => {
    write("greeting.ts", `export const greeting = "v1";\n`);
    const app = write("app.ts", tsApp("!"));
    const s = serve(app);
    const first = await s.nth("deployed", 1);
    expect(s.events[0]).toEqual({ event: "serving", app: "serve-e2e", file: app, replacing: false });
    const page = (first.functions as Array<{ name: string; web_url: string | null }>).find((f) => f.name === "page")!;
    expect(page.web_url).toBe(`${webUrl}/web/serve-e2e/page/`);
    expect(await (await fetch(page.web_url!)).text()).toBe("v1\n");
    expect((await g("call", "serve-e2e", "hello")).stdout.trim()).toBe('"v1!"');

    write("greeting.ts", `export const greeting = "v2";\n`);
    const second = await s.nth("deployed", 2);
    expect(s.events.find((e) => e.event === "changed")).toEqual({ event: "changed", files: [join(dir, "greeting.ts")] });
    expect(second.built).toEqual([]); // the image is unchanged: only the code was redeployed
    expect((await g("call", "serve-e2e", "hello")).stdout.trim()).toBe('"v2!"');
    expect(await (await fetch(page.web_url!)).text()).toBe("v2\n");

    write("app.ts", `import { App } from "gantry";\nconst app = new App("serve-e2e"\n`);
    const error = await s.nth("error", 1);
    expect((error.error as { message: string }).message).toMatch(/app\.ts does not build/);
    expect(s.child.exitCode).toBe(null);
    expect((await g("call", "serve-e2e", "hello")).stdout.trim()).toBe('"v2!"'); // the last good deploy serves on

    write("app.ts", tsApp("?"));
    await s.nth("deployed", 3);
    expect((await g("call", "serve-e2e", "hello")).stdout.trim()).toBe('"v2?"');

    s.child.kill("SIGINT");
    expect(await s.exited).toBe(0);
    expect(s.events.at(-1)).toEqual({ event: "stopped", app: "serve-e2e", stopped: true });
    expect(await appState("serve-e2e")).toBe("stopped");
  }, 300_000);

  it("a Python app deployed already: serve says so, serves it, and SIGTERM stops it (people's output)", async () => {
    write("py_helpers.py", `def greet():\n    return "py-v1"\n`);
    const app = write("served_py.py", `import gantry\nimport py_helpers\napp = gantry.App("serve-e2e-py")\n\n@app.function()\ndef hello():\n    return py_helpers.greet()\n`);
    const deployed = await g("deploy", app);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(deployed.stdout).toMatch(/^✓ deployed app serve-e2e-py v1 in /);
    const s = serve(app, true);
    await vi.waitFor(() => expect(s.stdout()).toContain("✓ deployed app serve-e2e-py"), { timeout: 150_000, interval: 50 });
    expect(s.stderr()).toContain("app serve-e2e-py is deployed; serve will replace it, and Ctrl-C stops it");
    expect(s.stdout()).toMatch(/watching \d+ folder\(s\) for changes; Ctrl-C stops app serve-e2e-py/);

    write("py_helpers.py", `def greet():\n    return "py-v2"\n`);
    await vi.waitFor(() => expect(s.stdout().match(/✓ deployed app serve-e2e-py/g)).toHaveLength(2), { timeout: 150_000, interval: 50 });
    expect(s.stderr()).toContain("↻ changed: ");
    expect((await g("call", "serve-e2e-py", "hello")).stdout.trim()).toBe('"py-v2"');

    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(s.stdout()).toContain("✓ stopped app serve-e2e-py");
    expect(await appState("serve-e2e-py")).toBe("stopped");
  }, 300_000);

  it("a serve killed outright (SIGKILL) leaves no app running: the daemon stops it once the heartbeats stop", async () => {
    const app = write("killed.py", `import gantry\napp = gantry.App("serve-e2e-killed")\n\n@app.function()\ndef hi():\n    return 1\n`);
    const s = serve(app);
    await s.nth("deployed", 1);
    const listed = JSON.parse((await g("apps", "ls", "--json")).stdout) as Array<{ name: string; state: string; ephemeral: boolean }>;
    expect(listed.find((a) => a.name === "serve-e2e-killed")).toMatchObject({ state: "deployed", ephemeral: true });
    s.child.kill("SIGKILL");
    await s.exited;
    await vi.waitFor(async () => expect(await appState("serve-e2e-killed")).toBe("stopped"), { timeout: 30_000, interval: 250 });
  }, 300_000);

  it("an app file that does not load at the start: exit 2 with its error", async () => {
    const bad = write("bad_start.py", "def f(:\n");
    const s = serve(bad, true);
    expect(await s.exited).toBe(2);
    expect(s.stderr()).toMatch(/bad_start\.py:1: SyntaxError/);
  });
});

describe("Python's app lifecycle in code", () => {
  const python = (script: string) =>
    runProcess("/usr/bin/python3", [script], { ...process.env, PYTHONPATH: PYTHON_PACKAGE, GANTRY_HOME: home });

  it("with app.run() in a script run as python script.py: the functions work in the block, the app is stopped after it", async () => {
    write("lib_for_run.py", "FACTOR = 2\n");
    const script = write(
      "run_script.py",
      [
        "import gantry",
        "import lib_for_run",
        "",
        'app = gantry.App("run-e2e")',
        "",
        "@app.function()",
        "def double(x):",
        "    return lib_for_run.FACTOR * x",
        "",
        'if __name__ == "__main__":',
        "    with gantry.enable_output():",
        "        with app.run():",
        "            print(double.remote(21), flush=True)",
        "",
      ].join("\n"),
    );
    const r = await python(script);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("42");
    expect(r.stderr).toContain("✓ deployed app run-e2e");
    expect(r.stderr).toContain("✓ stopped app run-e2e");
    expect(await appState("run-e2e")).toBe("stopped");
  }, 300_000);

  it("with app.run(): SIGTERM ends the block and stops the app; SIGKILL leaves it to the daemon, which stops it", async () => {
    const script = (name: string) =>
      write(
        `${name.replaceAll("-", "_")}.py`,
        [
          "import time",
          "import gantry",
          "",
          `app = gantry.App("${name}")`,
          "",
          "@app.function()",
          "def one():",
          "    return 1",
          "",
          'if __name__ == "__main__":',
          "    with app.run():",
          '        print("in the block", flush=True)',
          "        time.sleep(600)",
          "",
        ].join("\n"),
      );
    const start = (file: string) => {
      const child = spawn("/usr/bin/python3", [file], { env: { ...process.env, PYTHONPATH: PYTHON_PACKAGE, GANTRY_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
      running.push(child);
      let out = "";
      child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      return { child, exited, out: () => out };
    };
    const termed = start(script("run-e2e-term"));
    await vi.waitFor(() => expect(termed.out()).toContain("in the block"), { timeout: 150_000, interval: 50 });
    termed.child.kill("SIGTERM");
    expect(await termed.exited).toBe(143);
    expect(await appState("run-e2e-term")).toBe("stopped"); // stopped by the script itself, before it exited

    const killed = start(script("run-e2e-kill"));
    await vi.waitFor(() => expect(killed.out()).toContain("in the block"), { timeout: 150_000, interval: 50 });
    killed.child.kill("SIGKILL");
    await killed.exited;
    await vi.waitFor(async () => expect(await appState("run-e2e-kill")).toBe("stopped"), { timeout: 30_000, interval: 250 });
  }, 300_000);

  it("app.deploy() leaves the app running for other programs; App.lookup finds it", async () => {
    const script = write(
      "deploy_script.py",
      [
        "import gantry",
        "",
        'app = gantry.App("deploy-e2e")',
        "",
        "@app.function()",
        "def square(x):",
        "    return x * x",
        "",
        'if __name__ == "__main__":',
        "    app.deploy()",
        '    print(gantry.App.lookup("deploy-e2e").name, flush=True)',
        "",
      ].join("\n"),
    );
    const r = await python(script);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("deploy-e2e");
    expect(await appState("deploy-e2e")).toBe("deployed");
    expect((await g("call", "deploy-e2e", "square", "7")).stdout.trim()).toBe('49');
    await g("apps", "stop", "deploy-e2e");
  }, 300_000);
});
