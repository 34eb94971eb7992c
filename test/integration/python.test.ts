/**
 * Python functions on the real Docker engine, called from the TypeScript client, from the Python
 * client and through the CLI: results, keyword arguments, exceptions, retries, timeouts, expiry,
 * concurrency of sync and async functions, sibling modules, redeploys, and Modal's job-queue guide.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FunctionTimeoutError, OutputExpiredError, RemoteError } from "../../sdk/errors.js";
import { gantry, runProcess } from "../helpers/cli.js";
import { containersOf, deploy, fixture, guideFile, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const PYTHON_PACKAGE = join(import.meta.dirname, "..", "..", "python");
let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("behaviours/py_behaviours.py"));
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const fn = (name: string) => t.client.functions.fromName("py-behaviours", name);

/** Runs a Python program with the gantry package, against this test's daemon. */
const python = (code: string) => runProcess("/usr/bin/python3", ["-c", code], { ...process.env, PYTHONPATH: PYTHON_PACKAGE, GANTRY_HOME: t.home });

describe("Python functions, called from the TypeScript client", () => {
  it("return results", async () => {
    expect(await (await fn("echo")).remote({ hello: ["world", 1, null] })).toEqual({ hello: ["world", 1, null] });
  });

  it("take keyword arguments", async () => {
    const { call_id } = await t.client.transport.json<{ call_id: string }>("POST", "/v1/apps/py-behaviours/functions/kw/calls", {
      args: [1],
      kwargs: { c: 30 },
    });
    expect(await (await t.client.functionCalls.fromId(call_id)).get({ timeoutMs: 30_000 })).toEqual({ a: 1, b: 2, c: 30 });
  });

  it("raise the function's exception with its type, message and a traceback in the user's file", async () => {
    const err = await (await fn("boom")).remote("bad input").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ remoteType: "ValueError", message: "ValueError: bad input" });
    expect((err as RemoteError).traceback).toMatch(/py_behaviours\.py", line \d+, in boom\n\s+raise ValueError\(message\)/);
    expect((err as RemoteError).traceback).not.toContain("agent.py");
  });

  it("retry a failed attempt", async () => {
    const call = await (await fn("flaky")).spawn();
    expect(await call.get({ timeoutMs: 30_000 })).toEqual({ calls: 2 });
    expect(await call.status()).toMatchObject({ status: "succeeded", attempt: 2 });
  });

  it("fail an attempt past its timeout with FunctionTimeoutError, killing the container", async () => {
    const err = await (await fn("hang")).remote().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FunctionTimeoutError);
    await vi.waitFor(async () => expect(await containersOf(t, "hang")).toEqual([]), { timeout: 20_000 });
  });

  it("drop a result after its result_ttl", async () => {
    const call = await (await fn("ephemeral")).spawn("short");
    expect(await call.get({ timeoutMs: 30_000 })).toBe("short");
    await vi.waitFor(async () => expect((await call.status()).expired).toBe(true), { timeout: 10_000, interval: 200 });
    await expect(call.get({ timeoutMs: 0 })).rejects.toBeInstanceOf(OutputExpiredError);
  });

  it("import sibling modules of the app file", async () => {
    expect(await (await fn("double")).remote(21)).toBe(42);
  });

  it("run max_inputs calls at once in one container, sync functions in threads and async ones on an event loop", async () => {
    for (const name of ["together_sync", "together_async"]) {
      const f = await fn(name);
      const [a, b] = await Promise.all([f.remote("a"), f.remote("b")]);
      expect([a, b]).toEqual([expect.objectContaining({ tag: "a" }), expect.objectContaining({ tag: "b" })]);
      expect((a as { container: string }).container).toBe((b as { container: string }).container);
    }
  });

  it("refuse a return value that is not JSON, naming why", async () => {
    const err = await (await fn("not_json")).remote().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ remoteType: "TypeError" });
    expect((err as Error).message).toMatch(/not JSON-serialisable/);
  });

  it("send stdout and stderr to the app's log, tagged with the call", async () => {
    const call = await (await fn("chatty")).spawn(2);
    expect(await call.get({ timeoutMs: 30_000 })).toBe(2);
    const logFile = join(t.home, "logs", "apps", "py-behaviours.log");
    await vi.waitFor(() => {
      const text = readFileSync(logFile, "utf8");
      expect(text).toContain(`${call.callId} stdout: line 1`);
      expect(text).toContain(`${call.callId} stderr: to stderr`);
    });
  });

  it("redeploy unchanged without building anything", async () => {
    const events = await deploy(t, pyFixture("behaviours/py_behaviours.py"));
    expect(events.at(-1)).toMatchObject({ type: "done", built: [], cached: [expect.stringMatching(/^gantry\/fn-python:/)] });
  });
});

describe("the Python client", () => {
  it("calls a TypeScript function, and a Python one with keyword arguments", async () => {
    const r = await python(
      [
        "import gantry",
        "print(gantry.Function.from_name('behaviours', 'echo').remote({'from': 'python'}))",
        "print(gantry.Function.from_name('py-behaviours', 'kw').remote(1, b=20))",
      ].join("\n"),
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("{'from': 'python'}\n{'a': 1, 'b': 20, 'c': 3}\n");
  });

  it("raises a remote builtin exception as that type; one whose class does not import here as ExecutionError naming it, with the remote traceback", async () => {
    const r = await python(
      [
        "import gantry",
        "try:",
        "    gantry.Function.from_name('py-behaviours', 'boom').remote('no')",
        "except ValueError as e:",
        "    print('ValueError', e, 'in boom' in e.remote_traceback)",
        "try:",
        "    gantry.Function.from_name('py-behaviours', 'model_error').remote()",
        "except gantry.exception.ExecutionError as e:",
        "    print(type(e).__name__, e.remote_type, e)",
      ].join("\n"),
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^ValueError no True\nExecutionError ModelError .*raised ModelError: weights missing \(its class does not unpickle here/);
  });
});

describe("Modal's job-queue guide, with the import changed", () => {
  it("deploys my_job_queue.py and runs its local entrypoint: the result comes back", async () => {
    const guide = guideFile("my_job_queue.py");
    const deployed = await gantry(t.home, ["deploy", guide]);
    expect(deployed.code, deployed.stderr).toBe(0);
    const ran = await gantry(t.home, ["run", guide]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toMatch(/^Polling for result of call fc-[0-9a-z]{26}\n\{'result': 'my-data'\}\n$/);
  });
});
