/**
 * `gantry sandbox` and `gantry shell` (issue 24) without a daemon: their arguments (K=V options,
 * APP::FUNCTION, seconds, the command after --), the terminal attach's small rules, and the verbs
 * run in this process against an in-memory stand-in for /v1/sandboxes (test/helpers/sandbox-fake.ts):
 * output, --json, exit codes. The real binary against a real daemon is test/e2e/sandbox-cli.test.ts.
 */
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createParams, parseFunctionRef, parseKeyValues, parseSeconds, registerSandbox, sandboxesTable } from "../../cli/commands/sandbox.js";
import { DEFAULT_SHELL, registerShell, shellCommand } from "../../cli/commands/shell.js";
import { UsageError } from "../../cli/exit-codes.js";
import { run } from "../../cli/runner.js";
import { exitCodeFromReason, resizeFrame } from "../../cli/tty-attach.js";
import type { SandboxView } from "../../protocol/sandboxes.js";
import { Transport } from "../../sdk/transport.js";
import { startSandboxFake, type FakeSandboxes } from "../helpers/sandbox-fake.js";

let fake: FakeSandboxes;
beforeAll(async () => {
  fake = await startSandboxFake();
});
afterAll(async () => {
  await fake.close();
});

/** Runs `gantry ARGS` in this process: its exit code, stdout and stderr. */
async function g(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command("gantry").option("--json").option("--verbose").option("--url <url>").exitOverride();
  registerSandbox(program, run);
  registerShell(program, run);
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => ((stdout += Buffer.from(c).toString()), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => ((stderr += Buffer.from(c).toString()), true));
  const saved = process.exitCode;
  process.exitCode = 0;
  try {
    await program.parseAsync(["node", "gantry", "--url", fake.url, ...args]);
    return { code: Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    process.exitCode = saved;
    out.mockRestore();
    err.mockRestore();
  }
}

describe("argument parsing", () => {
  it("KEY=VALUE options: the first = splits, a value may hold more; no = or no key is refused naming the option", () => {
    expect(parseKeyValues(["a=1", "b=x=y", "c="], "--tag")).toEqual({ a: "1", b: "x=y", c: "" });
    expect(parseKeyValues(undefined, "--tag")).toBeUndefined();
    expect(() => parseKeyValues(["novalue"], "--env")).toThrow(/--env takes KEY=VALUE, got "novalue"/);
    expect(() => parseKeyValues(["=v"], "--tag")).toThrow(UsageError);
  });

  it("APP::FUNCTION names a deployed function; anything else is refused with the expected form", () => {
    expect(parseFunctionRef("jobs::process")).toEqual({ app: "jobs", function: "process" });
    for (const bad of ["jobs", "jobs.process", "jobs::", "::f", "a::b::c"]) expect(() => parseFunctionRef(bad)).toThrow(/APP::FUNCTION/);
  });

  it("seconds are whole and within the contract's limits", () => {
    expect(parseSeconds("60", "--timeout")).toBe(60);
    expect(parseSeconds(undefined, "--timeout")).toBeUndefined();
    for (const bad of ["0", "1.5", "-3", "abc", String(24 * 3600 + 1)]) expect(() => parseSeconds(bad, "--timeout")).toThrow(/--timeout takes whole seconds from 1 to 86400/);
  });

  it("create's options become the SDK's; --app is required", () => {
    expect(createParams({ app: "a", imageFrom: "a::f", timeout: "30", blockNetwork: true, tag: ["k=v"], env: ["X=1"] }, ["sleep", "9"])).toEqual({
      app: "a",
      fromFunction: { app: "a", function: "f" },
      command: ["sleep", "9"],
      timeout: 30,
      blockNetwork: true,
      tags: { k: "v" },
      env: { X: "1" },
    });
    expect(() => createParams({}, [])).toThrow(/needs --app/);
  });

  it("the terminal: the daemon's close reason gives the exit code; resize frames only for a known size", () => {
    expect(exitCodeFromReason("exit 0")).toBe(0);
    expect(exitCodeFromReason("exit 137")).toBe(137);
    expect(exitCodeFromReason("")).toBeNull();
    expect(exitCodeFromReason("exit -1")).toBeNull();
    expect(exitCodeFromReason("going away")).toBeNull();
    expect(JSON.parse(resizeFrame(120, 40)!)).toEqual({ type: "resize", cols: 120, rows: 40 });
    expect(resizeFrame(undefined, undefined)).toBeNull();
  });

  it("the terminal's WebSocket goes where the client's requests go, with its token", () => {
    expect(new Transport({ url: "https://gantry.example:8700", token: "s3cret-token-0123456789" }).webSocketTarget("/v1/sandboxes/sb-1/procs/main/attach")).toEqual({
      address: "wss://gantry.example:8700/v1/sandboxes/sb-1/procs/main/attach",
      headers: { authorization: "Bearer s3cret-token-0123456789" },
    });
    expect(new Transport({ url: "http://127.0.0.1:8700" }).webSocketTarget("/v1/x").address).toBe("ws://127.0.0.1:8700/v1/x");
    expect(new Transport({ socketPath: "/run/g.sock" }).webSocketTarget("/v1/x")).toEqual({ address: "ws+unix:///run/g.sock:/v1/x", headers: {} });
  });

  it("the shell: bash where there is one (its prompt not hidden), else sh; --cmd runs with sh -c", () => {
    expect(shellCommand(undefined)).toBe(DEFAULT_SHELL);
    expect(DEFAULT_SHELL.join(" ")).not.toContain("2>/dev/null ||");
    expect(shellCommand("ls -l /")).toEqual(["/bin/sh", "-c", "ls -l /"]);
  });

  it("ls's table fits a terminal: a long tag list is cut", () => {
    const v = { id: "sb-000000000000000001", app: "a", name: null, state: "finished", returncode: 0, created_at: new Date(Date.now() - 90_000).toISOString(), tags: { long: "x".repeat(100) } } as unknown as SandboxView;
    const text = sandboxesTable([v], true);
    expect(text.split("\n")[0]).toMatch(/^ID +APP +NAME +STATE +CODE +AGE +TAGS$/);
    expect(text.split("\n")[1]).toMatch(/^sb-000000000000000001 +a +- +finished +0 +1m +long=x+…$/);
    expect(sandboxesTable([], false)).toMatch(/no running sandboxes \(--all shows ended ones too\)/);
  });
});

describe("gantry sandbox against a stand-in daemon", () => {
  it("create prints the ID (the sandbox's record with --json); the command after -- keeps its options", async () => {
    const made = await g("sandbox", "create", "--app", "cli", "--tag", "k=v", "--block-network", "--", "sh", "-c", "echo hi");
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/^sb-[0-9a-z]{18}\n$/);
    expect(fake.created.at(-1)).toMatchObject({ app: "cli", command: ["sh", "-c", "echo hi"], tags: { k: "v" }, block_network: true });
    const json = await g("sandbox", "create", "--app", "cli", "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({ id: expect.stringMatching(/^sb-/), app: "cli", state: "running" });
  });

  it("exec streams the output and exits with the command's exit code; without -i its stdin is closed", async () => {
    const id = (await g("sandbox", "create", "--app", "cli")).stdout.trim();
    fake.nextExec = { stdout: "to out\n", stderr: "to err\n", returncode: 3 };
    const r = await g("sandbox", "exec", id, "--", "sh", "-c", "echo x; exit 3");
    expect(r).toEqual({ code: 3, stdout: "to out\n", stderr: "to err\n" });
    const procs = [...fake.sandboxes.get(id)!.procs.values()];
    expect(procs.at(-1)!.command).toEqual(["sh", "-c", "echo x; exit 3"]);
    expect(procs.at(-1)!.stdin).toEqual([{ bytes: "", eof: true }]);
  });

  it("a malformed ID is refused (exit 2) before anything is sent; an unknown one is exit 4", async () => {
    const before = fake.requests.length;
    const bad = await g("sandbox", "exec", "nope", "--", "ls");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^Error: "nope" is not a sandbox ID \(expected sb- and 18 lowercase letters or digits\)\n$/);
    expect(fake.requests.length).toBe(before);
    const unknown = await g("sandbox", "terminate", `sb-${"z".repeat(18)}`);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/^Error: no sandbox sb-z{18}/);
  });

  it("logs prints what was written so far (--json: as one document); --json with --follow is refused", async () => {
    const id = (await g("sandbox", "create", "--app", "cli")).stdout.trim();
    const logs = await g("sandbox", "logs", id);
    expect(logs).toEqual({ code: 0, stdout: "héllo\nwörld\nlast", stderr: "oops\n" });
    const json = JSON.parse((await g("sandbox", "logs", id, "--json")).stdout) as Record<string, unknown>;
    expect(json).toEqual({ sandbox: id, process: "main", stdout: "héllo\nwörld\nlast", stderr: "oops\n", ended: true });
    expect((await g("sandbox", "logs", id, "--json", "--follow")).code).toBe(2);
    const badExec = await g("sandbox", "logs", id, "--exec", "main2");
    expect(badExec.code).toBe(2);
    expect(badExec.stderr).toMatch(/not an exec ID/);
  });

  it("terminate says what it did, and that one already ended was left", async () => {
    const id = (await g("sandbox", "create", "--app", "cli")).stdout.trim();
    expect((await g("sandbox", "terminate", id)).stdout).toBe(`terminated ${id} (exit 137)\n`);
    expect((await g("sandbox", "terminate", id)).stdout).toBe(`${id} had already ended: terminated, exit 137\n`);
    expect(JSON.parse((await g("sandbox", "terminate", id, "--json")).stdout)).toMatchObject({ id, state: "terminated", returncode: 137 });
  });

  it("ls shows a table, --json the records", async () => {
    const ls = await g("sandbox", "ls", "--app", "cli");
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split("\n")[0]).toMatch(/^ID +APP +NAME +STATE +CODE +AGE +TAGS$/);
    expect(fake.requests.at(-1)).toBe("GET /v1/sandboxes?app=cli&state=running");
    await g("sandbox", "ls", "--all", "--tag", "k=v");
    expect(fake.requests.at(-1)).toBe("GET /v1/sandboxes?tag=k%3Dv");
    const json = JSON.parse((await g("sandbox", "ls", "--json")).stdout) as SandboxView[];
    expect(json.length).toBeGreaterThan(0);
    expect((await g("sandbox", "ls", "--tag", "bad")).code).toBe(2);
  });

  it("shell refuses a function not named APP::FUNCTION (exit 2) before anything is sent", async () => {
    const before = fake.requests.length;
    const r = await g("shell", "justanapp");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/APP::FUNCTION/);
    expect(fake.requests.length).toBe(before);
  });
});
