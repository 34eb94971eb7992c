/**
 * Python values and exceptions as Modal passes them (issue 17), on the real Docker engine: pickled
 * between a Python program and Python functions (a round-trip table, a dataclass of the app file,
 * numpy arrays between two functions), the caller's own exception classes, ExecutionError when a
 * class does not unpickle, JSON for TypeScript and HTTP callers (406 for a pickled result), and
 * the call context functions see.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultNotJsonError } from "../../sdk/errors.js";
import { gantry, runPython } from "../helpers/cli.js";
import { deploy, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const FIXTURE_DIR = join(import.meta.dirname, "..", "fixtures", "py", "values");
let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("values/py_values.py"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

/** Runs a Python program against this test's daemon; `importable` puts the app file's folder on its path. */
function python(code: string, importable = true) {
  return runPython(t.home, code, importable ? [FIXTURE_DIR] : []);
}

describe("values between Python programs and Python functions", () => {
  it("round-trip as Python values: bytes, sets, nested tuples, big ints, NaN, non-string keys, a dataclass of the app file", async () => {
    const r = await python(`
import math
import gantry as modal
from py_values import Point
echo = modal.Function.from_name("py-values", "echo")
table = [b"\\x00\\xffraw", {1, 2}, frozenset({"a"}), (1, (2, (3,))), 2**70, {1: "int key", (1, 2): "tuple key"}, Point(1, 2), None, [1.5, "s"]]
for v in table:
    out = echo.remote(v)
    print(type(out).__name__, out == v and type(out) is type(v))
print("nan", math.isnan(echo.remote(float("nan"))))
move = modal.Function.from_name("py-values", "move")
print(move.remote(Point(1, 2), dx=5))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      ["bytes True", "set True", "frozenset True", "tuple True", "int True", "dict True", "Point True", "NoneType True", "list True", "nan True", "Point(x=6, y=2)", ""].join("\n"),
    );
  });

  it("raise the function's own exception class, with its fields and the remote traceback; map(return_exceptions=True) yields them", async () => {
    const r = await python(`
import gantry as modal
from py_values import NotReady
f = modal.Function.from_name("py-values", "not_ready")
try:
    f.remote("job-1")
except NotReady as e:
    print("caught", e.job, e.eta, "raise NotReady" in e.remote_traceback)
out = list(f.map(["a", "b"], return_exceptions=True))
print([type(x).__name__ for x in out], [x.job for x in out])
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("caught job-1 30 True\n['NotReady', 'NotReady'] ['a', 'b']\n");
  });

  it("raise ExecutionError naming the class when it does not unpickle in the caller, and RemoteError when it never pickled", async () => {
    const r = await python(
      `
import gantry as modal
try:
    modal.Function.from_name("py-values", "not_ready").remote("job-2")
except modal.exception.ExecutionError as e:
    print("ExecutionError", e.remote_type, "NotReady" in str(e), "raise NotReady" in e.remote_traceback)
try:
    modal.Function.from_name("py-values", "local_class_error").remote()
except modal.exception.RemoteError as e:
    print("RemoteError", e.remote_type)
`,
      false,
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ExecutionError NotReady True True\nRemoteError Hidden\n");
  });

  it("refuse an argument that cannot be pickled in the caller, naming it, before anything is sent", async () => {
    const r = await python(`
import threading
import gantry as modal
try:
    modal.Function.from_name("py-values", "echo").remote(1, lock=threading.Lock())
except modal.exception.SerializationError as e:
    print(e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^py-values\.echo: keyword argument 'lock' \(lock\) cannot be pickled/);
    const calls = (await t.client.transport.json<{ calls: unknown[] }>("GET", "/v1/calls?app=py-values&function=echo&limit=1000")).calls;
    expect(calls.length).toBe(10); // the round-trip table's and NaN, none for the refused one
  });

  it("refuse pickled arguments over the request limit in the caller, naming the limit", async () => {
    const r = await python(`
import gantry as modal
try:
    modal.Function.from_name("py-values", "echo").spawn(b"x" * (7 * 1024 * 1024))
except modal.exception.RequestSizeError as e:
    print(e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^py-values\.echo: the arguments are \d+ bytes pickled \(base64\), over the limit of 8388608 bytes\n$/);
  });

  it("carry numpy arrays between two functions whose image has numpy (pickled within the app)", async () => {
    const r = await python(`
import gantry as modal
print(modal.Function.from_name("py-values", "numpy_roundtrip").remote(10))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("{'type': 'ndarray', 'dtype': 'int64', 'sum': 90}\n");
  }, 180_000);

  it("gather calls, and await the .aio forms of remote, map, starmap and gather", async () => {
    const r = await python(`
import asyncio
import gantry as modal
echo = modal.Function.from_name("py-values", "echo")
print(modal.FunctionCall.gather(*[echo.spawn(i) for i in range(3)]))
async def main():
    one = await echo.remote.aio({1})
    mapped = [x async for x in echo.map.aio([b"a", b"b"])]
    starred = [x async for x in modal.Function.from_name("py-values", "move").starmap.aio([(modal_point(), 2)])]
    calls = [await echo.spawn.aio(i) for i in range(2)]
    gathered = await modal.FunctionCall.gather.aio(*calls)
    print(one, mapped, starred, gathered)
def modal_point():
    from py_values import Point
    return Point(0, 0)
asyncio.run(main())
echo.for_each([1, 2, 3])
print("for_each done")
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[0, 1, 2]\n{1} [b'a', b'b'] [Point(x=2, y=0)] [0, 1]\nfor_each done\n");
  });

  it("tell a function its call ID, its input ID and that it is not local", async () => {
    const r = await python(`
import gantry as modal
call = modal.Function.from_name("py-values", "context").spawn()
out = call.get()
print(out["call_id"] == call.object_id, out["input_id"] == "in-" + call.object_id[3:] + "-1", out["is_local"], modal.is_local(), modal.current_function_call_id())
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("True True False True None\n");
  });
});

describe("the call graph", () => {
  it("lists the calls a call spawned from inside its container, with their status", async () => {
    const r = await python(`
import gantry as modal
from gantry.call_graph import InputStatus
call = modal.Function.from_name("py-values", "fan_out").spawn(2)
print(call.get())
root = call.get_call_graph()[0]
print(root.function_name, root.status.name, sorted((c.function_name, c.status.name) for c in root.children), root.children[0].children)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[0, 1]\nfan_out SUCCESS [('echo', 'SUCCESS'), ('echo', 'SUCCESS')] []\n");
  });

  it("takes a parent only from a container of the parent's own app", async () => {
    const r = await python(`
import gantry as modal
from gantry._client import Client
root = modal.Function.from_name("py-values", "echo").spawn(1)
root.get()
# A program outside any container names a parent: ignored.
Client.from_env().json("POST", "/v1/apps/py-values/functions/echo/calls", {"args": [2]}, headers={"X-Gantry-Parent-Call": root.object_id})
print(len(root.get_call_graph()[0].children))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\n");
  });
});

describe("JSON for everyone else", () => {
  it("a TypeScript client calls a Python function with JSON values and gets JSON back", async () => {
    const echo = await t.client.functions.fromName("py-values", "echo");
    expect(await echo.remote({ list: [1, 2], nested: { ok: true } })).toEqual({ list: [1, 2], nested: { ok: true } });
  });

  it("a pickled result read over HTTP /result is a 406 naming how to read it; the TypeScript client and gantry calls show say the same", async () => {
    const r = await python(`
import gantry as modal
print(modal.Function.from_name("py-values", "echo").spawn({1, 2}).object_id)
`);
    const id = r.stdout.trim();
    expect(id).toMatch(/^fc-/);
    const res = await fetch(`${t.baseUrl}/result/${id}?timeout=30`);
    expect(res.status).toBe(406);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("result_not_json");
    expect(body.error.message).toContain(`only a Python client can read: gantry.FunctionCall.from_id("${id}").get()`);
    const call = await t.client.functionCalls.fromId(id);
    await expect(call.get()).rejects.toBeInstanceOf(ResultNotJsonError);
    const view = await t.client.transport.json<{ result?: unknown; result_pickle?: string; input?: { pickled_bytes?: number } }>("GET", `/v1/calls/${id}`);
    expect(view.result).toBeUndefined();
    expect(view.result_pickle).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(view.input?.pickled_bytes).toBeGreaterThan(0);
    const cli = await gantry(t.home, ["get", id]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("returned a Python value (pickled for the Python caller that spawned it), which only a Python client can read");
  });

  it("refuse pickled arguments for a TypeScript function, and from another app's container", async () => {
    await deploy(t, pyFixture("values/py_other_app.py"));
    const r = await python(`
import gantry as modal
print(modal.Function.from_name("py-other-app", "call_values").remote())
`);
    expect(r.stderr).toBe("");
    // From another app's container the client sends JSON: a set cannot go, a list can.
    expect(r.stdout).toBe("{'list': [1, 2], 'set': 'TypeError', 'raw': 'forbidden'}\n");
    const notBase64 = await t.client.transport.raw("POST", "/v1/apps/py-values/functions/echo/calls", { pickle: "not base64!" });
    expect(notBase64.status).toBe(400);
    await deploy(t, fixture("behaviours.ts"));
    const toTs = await t.client.transport.raw("POST", "/v1/apps/behaviours/functions/echo/calls", { pickle: "gAR9lC4=" });
    expect(toTs.status).toBe(400);
    expect(JSON.stringify(toTs.body)).toContain("is a node function: send its arguments as JSON");
  });
});
