/**
 * Generator functions (issue 17) on the real Docker engine: Python `def`/`async def` generators
 * and a TypeScript `async function*`, their items streamed to remote_gen / remoteGen as they are
 * yielded (the first before the function ends), a failure after some items, cancel, and the
 * verbs a generator refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallView } from "../../protocol/api.js";
import { InvalidArgumentError, RemoteError } from "../../sdk/errors.js";
import { runPython } from "../helpers/cli.js";
import { deploy, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("generators/py_gen.py"));
  await deploy(t, fixture("generators.ts"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

const python = (code: string) => runPython(t.home, code);

describe("Python generators", () => {
  it("stream their items to remote_gen, pickled for a Python caller; async generators too, with remote_gen.aio", async () => {
    const r = await python(`
import asyncio
import gantry as modal
print(list(modal.Function.from_name("py-gen", "stream").remote_gen(3)))
async def main():
    return [x async for x in modal.Function.from_name("py-gen", "agen").remote_gen.aio(4)]
print(asyncio.run(main()))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[{'i': 0, 'square': {0}}, {'i': 1, 'square': {1}}, {'i': 2, 'square': {4}}]\n[0, 10, 20, 30]\n");
  });

  it("deliver the first item while the function still runs; a cancelled call ends the stream with CancelledError", async () => {
    const r = await python(`
import json, urllib.request
import gantry as modal
from gantry._client import Client
items = modal.Function.from_name("py-gen", "slow").remote_gen()
print(next(items))
import time
deadline = time.monotonic() + 30  # the running mark is written once the call has run a moment
while True:
    call = Client.from_env().json("GET", "/v1/calls?app=py-gen&function=slow&limit=1")["calls"][0]
    if call["status"] != "queued" or time.monotonic() > deadline:
        break
    time.sleep(0.1)
print(call["status"])
modal.FunctionCall.from_id(call["call_id"]).cancel()
try:
    next(items)
except modal.exception.CancelledError as e:
    print("CancelledError")
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("first\nrunning\nCancelledError\n");
  }, 60_000);

  it("deliver the items before a failure, then raise it", async () => {
    const r = await python(`
import gantry as modal
got = []
try:
    for x in modal.Function.from_name("py-gen", "fails_midway").remote_gen():
        got.append(x)
except ValueError as e:
    print(got, e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[1, 2] broke after two items\n");
  });

  it("refuse spawn, remote and map on a generator, and remote_gen on a plain function, with InvalidError", async () => {
    const r = await python(`
import gantry as modal
gen = modal.Function.from_name("py-gen", "stream")
for verb in (lambda: gen.spawn(1), lambda: gen.remote(1), lambda: list(gen.map([1]))):
    try:
        verb()
    except modal.exception.InvalidError as e:
        print(e)
try:
    list(modal.Function.from_name("py-gen", "plain").remote_gen(1))
except modal.exception.InvalidError as e:
    print(e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual([
      "py-gen.stream is a generator function: call it with remote_gen (or remote_gen.aio), not spawn or remote",
      "py-gen.stream is a generator function: call it with remote_gen (or remote_gen.aio), not spawn or remote",
      "py-gen.stream is a generator function: call it with remote_gen (or remote_gen.aio), not map",
      "py-gen.plain is not a generator function: call it with remote, spawn or map, not remote_gen",
    ]);
  });

  it("stream JSON items to a TypeScript caller", async () => {
    const fn = await t.client.functions.fromName("py-gen", "agen");
    const items: unknown[] = [];
    for await (const x of fn.remoteGen(3)) items.push(x);
    expect(items).toEqual([0, 10, 20]);
  });
});

describe("TypeScript generators", () => {
  it("stream an async function*'s items to remoteGen, and its failure after them", async () => {
    const countdown = await t.client.functions.fromName("ts-gen", "countdown");
    const items: unknown[] = [];
    for await (const x of countdown.remoteGen(3)) items.push(x);
    expect(items).toEqual([{ left: 3 }, { left: 2 }, { left: 1 }]);

    const failing = await t.client.functions.fromName("ts-gen", "failing");
    const got: unknown[] = [];
    const err = await (async () => {
      for await (const x of failing.remoteGen()) got.push(x);
    })().catch((e: unknown) => e);
    expect(got).toEqual(["one"]);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).message).toContain("no more");
    await expect(countdown.spawn(1)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("are calls: listed with their status, and refused retries at deploy", async () => {
    const list = await t.client.transport.json<{ calls: CallView[] }>("GET", "/v1/calls?app=ts-gen&function=countdown");
    expect(list.calls[0]).toMatchObject({ status: "succeeded" });
    const res = await t.client.transport.raw("POST", "/v1/apps/deploy", {
      app: "gen-retries",
      functions: [{ name: "g", options: { generator: true, retries: 2 } }],
      bundle: "export {}",
    });
    expect(JSON.stringify(res.body)).toContain("a generator function cannot have retries");
  });
});
