/**
 * `gantry run` through the real CLI, for a Python and a TypeScript app file: an entrypoint's options
 * typed and refused (before anything deploys), --help, FILE::NAME for an entrypoint or a function
 * run remotely, and Ctrl-C cancelling the calls a run spawned unless --detach.
 * (Refusals that need no entrypoint of these fixtures stay in python-cli.test.ts.)
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GANTRY_BIN, gantry, type CliResult } from "../helpers/cli.js";
import { fixture, pyFixture } from "../helpers/daemon.js";
import { waitFor } from "../helpers/engine.js";
import { GantryClient } from "../../sdk/client.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);
const PY = pyFixture("run/py_run.py");
const TS = fixture("run-app.ts");

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gr-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop", "--grace", "2");
  rmSync(home, { recursive: true, force: true });
});

/** Starts `gantry run ARGS`, waits for `count` "spawned fc-…" lines, sends `signal`, and collects the end. */
async function interruptAfterSpawns(args: string[], count: number, signal: NodeJS.Signals = "SIGINT"): Promise<CliResult & { ids: string[] }> {
  const child = spawn(process.execPath, [GANTRY_BIN, "run", ...args], { env: { ...process.env, GANTRY_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const ids: string[] = [];
  const spawned = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${count} spawned calls in 120 s:\n${stdout}\n${stderr}`)), 120_000);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      ids.splice(0, ids.length, ...[...stdout.matchAll(/^spawned (fc-[0-9a-z]{26})$/gm)].map((m) => m[1]!));
      if (ids.length >= count) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("close", () => reject(new Error(`gantry run ended before spawning:\n${stdout}\n${stderr}`)));
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number>((resolve) => child.on("close", (code, sig) => resolve(code ?? (sig ? 128 : -1))));
  await spawned;
  // Interrupted while the entrypoint waits on the first call: that call runs in its container by then.
  const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
  try {
    await waitFor("the first spawned call running", async () => (await client.transport.json<{ status: string }>("GET", `/v1/calls/${ids[0]}`)).status === "running", 60_000);
  } finally {
    client.close();
  }
  child.kill(signal);
  const code = await closed;
  return { code, stdout, stderr, ids };
}

/** The call's state as `gantry get` answers it: its exit code (0 done, 5 pending, 8 cancelled). */
const state = async (id: string) => (await g("get", id)).code;

describe("gantry run with a Python app file", () => {
  it("deploys, then runs the entrypoint with typed options; a function by name runs remotely and prints its result", async () => {
    const r = await g("run", `${PY}::main`, "--n", "4", "--label", "sq", "--shout", "--ratio", "0.5");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("deployed app py-run");
    expect(r.stdout.trim()).toBe("SQ: 16 (RATIO 0.5)");

    const fn = await g("run", "--no-deploy", `${PY}::square`, "--x", "3");
    expect(fn.code, fn.stderr).toBe(0);
    expect(fn.stderr).not.toContain("deployed");
    expect(fn.stdout).toBe("9\n");

    const gen = await g("run", "--no-deploy", `${PY}::count`, "--n", "3");
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout).toBe("0\n1\n2\n");
  }, 240_000);

  it("refuses bad options naming the option and its type, with exit 2, before anything deploys", async () => {
    for (const [args, message] of [
      [["--n", "four"], "Error: --n takes an int, got 'four'"],
      [["--label", "x"], "Error: the entrypoint main needs --n (int)"],
      [["--n", "1", "--data", "x"], "Error: the entrypoint main has no option --data (it takes: --n (int), --label (str), --shout (bool), --ratio (float))"],
      [["--n", "1", "--detach"], "gantry run's own options (--detach, --no-deploy) and gantry's (--json, --url …) go before the file"],
    ] as const) {
      const r = await g("run", `${PY}::main`, ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain("reading");
    }
    const several = await g("run", PY);
    expect(several.code).toBe(2);
    expect(several.stderr).toContain(`has 2 local entrypoints (main, spawner): name one, e.g. gantry run ${PY}::main`);
    const unknown = await g("run", `${PY}::nope`);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("has no local entrypoint or function named 'nope' (local entrypoints: main, spawner; functions: count, slow, square)");
    const own = await g("run", "--nope", PY);
    expect(own.code).toBe(2);
    expect(own.stderr).toContain("gantry run has no option --nope (its own: --detach, --no-deploy)");
  }, 240_000);

  it("--help after the file lists the entrypoint's options, without deploying", async () => {
    const r = await g("run", `${PY}::main`, "--help");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`usage: gantry run ${PY}::main --n INT [--label STR] [--shout / --no-shout] [--ratio FLOAT]`);
    expect(r.stdout).toContain("Squares n remotely.");
    expect(r.stdout).toMatch(/^ {2}--n INT +int, required$/m);
    expect(r.stdout).toMatch(/^ {2}--label STR +str, default 'x'$/m);
    expect(r.stdout).toMatch(/^ {2}--shout \/ --no-shout +bool, default False$/m);
    expect(r.stderr).not.toContain("deployed");
    const own = await g("run", "--help");
    expect(own.code).toBe(0);
    expect(own.stdout).toContain("Usage: gantry run [--detach] [--no-deploy] FILE[::NAME]");
  }, 240_000);

  it("Ctrl-C cancels the calls the run spawned (exit 130); with --detach they go on", async () => {
    await g("deploy", PY);
    const r = await interruptAfterSpawns(["--no-deploy", `${PY}::spawner`, "--k", "2"], 2);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain("interrupted: cancelling the 2 call(s) this run spawned");
    expect(r.stderr).toContain("cancelled 2 call(s)");
    for (const id of r.ids) expect(await state(id)).toBe(8);

    const d = await interruptAfterSpawns(["--no-deploy", "--detach", `${PY}::spawner`, "--k", "2"], 2, "SIGTERM");
    expect(d.code, d.stderr).toBe(130);
    expect(d.stderr).toContain("interrupted (--detach): the 2 call(s) this run spawned and did not see finish go on");
    for (const id of d.ids) {
      expect(await state(id)).toBe(5);
      await g("cancel", id);
    }
  }, 240_000);
});

describe("gantry run with a TypeScript app file", () => {
  it("deploys, then runs the entrypoint here with its declared options converted", async () => {
    const r = await g("run", `${TS}::main`, "--n", "5", "--shout");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("deployed app ts-run");
    expect(r.stdout.trim()).toBe("X: 25");
  }, 240_000);

  it("runs a function by name remotely with JSON arguments in order, printing its result", async () => {
    const r = await g("run", "--no-deploy", `${TS}::square`, "7");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("49\n");
    const opt = await g("run", "--no-deploy", `${TS}::square`, "--x", "7");
    expect(opt.code).toBe(2);
    expect(opt.stderr).toContain("square is a TypeScript function: it takes its arguments in order, each as JSON");
  }, 240_000);

  it("refuses bad options before deploying; --help lists them; several entrypoints are named", async () => {
    const bad = await g("run", `${TS}::main`, "--n", "1.5");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('Error: --n takes an int, got "1.5"');
    expect(bad.stderr).not.toContain("deployed");
    const missing = await g("run", `${TS}::main`);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("Error: the entrypoint main needs --n (int)");
    const help = await g("run", `${TS}::main`, "--help");
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain(`usage: gantry run ${TS}::main --n INT [--label STR] [--shout / --no-shout]`);
    expect(help.stdout).toContain("Squares n remotely.");
    expect(help.stdout).toMatch(/^ {2}--label STR +str, default "x"$/m);
    const several = await g("run", TS);
    expect(several.code).toBe(2);
    expect(several.stderr).toContain(`has 2 local entrypoints (main, spawner): name one, e.g. gantry run ${TS}::main`);
  }, 240_000);

  it("Ctrl-C cancels the calls the entrypoint spawned (exit 130); with --detach they go on", async () => {
    await g("deploy", TS);
    const r = await interruptAfterSpawns(["--no-deploy", `${TS}::spawner`, "--k", "2"], 2);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain("cancelled 2 call(s)");
    for (const id of r.ids) expect(await state(id)).toBe(8);

    const d = await interruptAfterSpawns(["--no-deploy", "--detach", `${TS}::spawner`], 2);
    expect(d.code, d.stderr).toBe(130);
    expect(d.stderr).toContain("interrupted (--detach)");
    for (const id of d.ids) {
      expect(await state(id)).toBe(5);
      await g("cancel", id);
    }
  }, 240_000);
});
