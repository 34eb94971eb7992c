/**
 * `gantry sandbox create|ls|exec|logs|terminate` and `gantry shell` (issue 24) as a user drives
 * them, the real binary against a daemon the CLI started: IDs printed for scripts, tables and
 * --json, exec's exit code passed through and stdin piped in, a terminal with -t, logs of the main
 * command and of an exec, terminate (137), a bad ID refused clearly, and a shell in a deployed
 * function's image fed commands on stdin. Few sandboxes and one small deploy: CI has 2 cores.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxView } from "../../protocol/sandboxes.js";
import { GantryClient } from "../../sdk/client.js";
import { gantry, GANTRY_BIN, runProcess, type CliResult } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
let client: GantryClient;
/** A sandbox kept up for several tests' execs. */
let shared: string;
const g = (...args: string[]): Promise<CliResult> => gantry(home, args);

/** Runs the CLI with `input` on its stdin (not a terminal). */
const withInput = (args: string[], input: string): Promise<CliResult> => runProcess(process.execPath, [GANTRY_BIN, ...args], { ...process.env, GANTRY_HOME: home }, input);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gsb-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
  client = new GantryClient({ socketPath: join(home, "gantry.sock") });
  const made = await g("sandbox", "create", "--app", "sbcli", "--block-network", "--tag", "role=shared", "--timeout", "600");
  expect(made.code, made.stderr).toBe(0);
  shared = made.stdout.trim();
}, 180_000);
afterAll(async () => {
  client?.close();
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("gantry sandbox", () => {
  it("create prints the ID alone; ls lists running ones as a table and --json, filtered by app and tag", async () => {
    expect(shared).toMatch(/^sb-[0-9a-z]{18}$/);
    const ls = await g("sandbox", "ls");
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split("\n")[0]).toMatch(/^ID +APP +NAME +STATE +CODE +AGE +TAGS$/);
    expect(ls.stdout).toMatch(new RegExp(`^${shared} +sbcli +- +running +- +\\d+s +role=shared$`, "m"));
    const json = JSON.parse((await g("sandbox", "ls", "--json", "--tag", "role=shared")).stdout) as SandboxView[];
    expect(json.map((v) => v.id)).toEqual([shared]);
    expect(json[0]).toMatchObject({ app: "sbcli", state: "running", returncode: null, block_network: true, tags: { role: "shared" } });
    expect((await g("sandbox", "ls", "--app", "other")).stdout).toBe("no running sandboxes (--all shows ended ones too)\n");
  });

  it("exec streams stdout and stderr apart and exits with the command's exit code", async () => {
    const r = await g("sandbox", "exec", shared, "--env", "WHO=cli", "--workdir", "/tmp", "--", "sh", "-c", 'echo "out $WHO $(pwd)"; echo err >&2; exit 7');
    expect(r).toEqual({ code: 7, stdout: "out cli /tmp\n", stderr: "err\n" });
    const ok = await g("sandbox", "exec", shared, "--", "true");
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("exec -i sends piped stdin, then EOF; without -i the command reads EOF at once", async () => {
    const piped = await withInput(["sandbox", "exec", shared, "-i", "--", "sh", "-c", "tr a-z A-Z; echo done"], "piped in\nline two\n");
    expect(piped).toEqual({ code: 0, stdout: "PIPED IN\nLINE TWO\ndone\n", stderr: "" });
    const closed = await withInput(["sandbox", "exec", shared, "--", "sh", "-c", "cat; echo eof"], "not sent\n");
    expect(closed).toEqual({ code: 0, stdout: "eof\n", stderr: "" });
  });

  it("exec -t gives the command a terminal and still passes its exit code", async () => {
    const r = await g("sandbox", "exec", shared, "-t", "--", "sh", "-c", "tty; exit 4");
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r?$/m);
  });

  it("logs prints the main command's output (--follow waits for its end), --json as one document, --exec an exec's", async () => {
    const id = (await g("sandbox", "create", "--app", "sbcli", "--block-network", "--", "sh", "-c", "echo main-out; echo main-err >&2")).stdout.trim();
    const followed = await g("sandbox", "logs", id, "--follow");
    expect(followed).toEqual({ code: 0, stdout: "main-out\n", stderr: "main-err\n" });
    const json = JSON.parse((await g("sandbox", "logs", id, "--json")).stdout) as Record<string, unknown>;
    expect(json).toEqual({ sandbox: id, process: "main", stdout: "main-out\n", stderr: "main-err\n", ended: true });
    const ex = await (await client.sandboxes.fromId(shared)).exec(["sh", "-c", "echo from-exec"]);
    await ex.wait();
    expect(await g("sandbox", "logs", shared, "--exec", ex.execId)).toEqual({ code: 0, stdout: "from-exec\n", stderr: "" });
  });

  it("a malformed ID is refused with exit 2, an unknown one exit 4, each naming it", async () => {
    const bad = await g("sandbox", "exec", "sb-nope", "--", "ls");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('Error: "sb-nope" is not a sandbox ID (expected sb- and 18 lowercase letters or digits)\n');
    const unknown = await g("sandbox", "logs", `sb-${"0".repeat(18)}`);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/sb-0{18}/);
    const json = JSON.parse((await g("sandbox", "terminate", "nope", "--json")).stdout) as { error: { code: string; message: string } };
    expect(json.error).toMatchObject({ code: "usage", message: expect.stringMatching(/not a sandbox ID/) });
  });

  it("terminate ends it with 137; ls no longer lists it, ls --all does; a second terminate says it had ended", async () => {
    const id = (await g("sandbox", "create", "--app", "sbcli", "--block-network", "--", "sleep", "300")).stdout.trim();
    const term = await g("sandbox", "terminate", id);
    expect(term).toEqual({ code: 0, stdout: `terminated ${id} (exit 137)\n`, stderr: "" });
    expect((await g("sandbox", "ls")).stdout).not.toContain(id);
    expect((await g("sandbox", "ls", "--all")).stdout).toMatch(new RegExp(`^${id} +sbcli +- +terminated +137 `, "m"));
    const again = JSON.parse((await g("sandbox", "terminate", id, "--json")).stdout) as SandboxView;
    expect(again).toMatchObject({ id, state: "terminated", returncode: 137 });
  });
});

describe("gantry shell", () => {
  it("opens a shell in a deployed function's image (its env too) that runs piped commands as a user other than root, then ends its sandbox", async () => {
    const deployed = await g("deploy", fixture("sandbox-shell.ts"));
    expect(deployed.code, deployed.stderr).toBe(0);
    const r = await withInput(["shell", "sbshell::hello", "--block-network"], "id -u\necho \"fixture=$SHELL_FIXTURE\"\nexit 3\n");
    expect(r.code, r.stderr + r.stdout).toBe(3);
    const text = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ""); // bash's terminal escapes (bracketed paste on and off)
    const uid = /^(\d+)\r?$/m.exec(text);
    expect(uid, text).not.toBeNull();
    expect(Number(uid![1])).not.toBe(0);
    expect(text).toMatch(/^fixture=from-function\r?$/m);
    const left = JSON.parse((await g("sandbox", "ls", "--app", "sbshell", "--json")).stdout) as SandboxView[];
    expect(left).toEqual([]);
  });

  it("refuses a function that is not deployed, naming it", async () => {
    const r = await g("shell", "sbshell::nope", "--block-network");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/nope/);
  });
});
