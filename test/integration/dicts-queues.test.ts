/**
 * Dicts and Queues (issue 20) on the real daemon and Docker engine: Python values of every
 * picklable kind, a Queue and a Dict passed to spawned functions, a consumer draining with
 * get(timeout=) until queue.Empty, 12 racing put(skip_if_exists=True) with one winner,
 * partitions, an ephemeral Dict gone after its block, contents after a restart, TypeScript and
 * Python reading what the other wrote, and a pickle kept from another app's function.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython } from "../helpers/cli.js";
import { deploy, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("dq/py_dq.py"));
  await deploy(t, pyFixture("dq/py_dq_other.py"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

const python = async (code: string) => {
  const r = await runPython(t.home, code);
  expect(r.stderr).toBe("");
  return r.stdout;
};

describe("Dicts and Queues", () => {
  it("keep Python values of every picklable kind, and hand JSON ones to TypeScript", async () => {
    const out = await python(`
import datetime, decimal, fractions, collections
import gantry as modal
d = modal.Dict.from_name("kinds", create_if_missing=True)
values = {
    "str": "héllo", "int": 2**70, "float": 1.0, "none": None, "bool": True, "list": [1, [2, "x"]],
    "tuple": (1, 2), "bytes": b"\\x00\\xff", "set": {1, 2}, "dict": {"a": {"b": None}}, "intkey": {1: "one"},
    "date": datetime.date(2026, 12, 7), "decimal": decimal.Decimal("1.10"), "fraction": fractions.Fraction(1, 3),
    "counter": collections.Counter("aab"), "complex": 1 + 2j,
}
for k, v in values.items():
    d[k] = v
d[(1, "tuple key")] = "by tuple"
back = {k: d[k] for k in values}
print(all(back[k] == v and type(back[k]) is type(v) for k, v in values.items()), d[(1, "tuple key")], len(d))
print(d.get("missing", "default"), "str" in d, d.put("str", "new", skip_if_exists=True), d.pop("str"), "str" in d)
`);
    expect(out).toBe("True by tuple 17\ndefault True False héllo False\n");
    const kinds = await t.client.dicts.fromName("kinds");
    expect(await kinds.get("list")).toEqual([1, [2, "x"]]);
    expect(await kinds.get("dict")).toEqual({ a: { b: null } });
    await expect(kinds.get("tuple")).rejects.toThrow(/pickled/);
  }, 120_000);

  it("pass to spawned functions: producers fill partitions, a consumer drains with get(timeout=) until queue.Empty", async () => {
    const out = await python(`
import gantry as modal
q = modal.Queue.from_name("work", create_if_missing=True)
produce = modal.Function.from_name("py-dq", "produce")
drain = modal.Function.from_name("py-dq", "drain")
print(sum(produce.map([q, q, q], [5, 5, 5])), produce.remote(q, 3, partition="side"))
print(q.len(), q.len(partition="side"), q.len(total=True))
got = drain.remote(q, 1.0)
print(len(got), sorted(x["i"] for x in got)[:6], q.len())
print([x["i"] for x in q.get_many(10, partition="side")], q.get(block=False))
`);
    expect(out).toBe("15 3\n15 3 18\n15 [0, 0, 0, 1, 1, 1] 0\n[0, 1, 2] None\n");
  }, 120_000);

  it("let exactly one of 12 racing put(skip_if_exists=True) from containers win", async () => {
    const out = await python(`
import gantry as modal
d = modal.Dict.from_name("locks", create_if_missing=True)
claim = modal.Function.from_name("py-dq", "claim")
wins = list(claim.map([d] * 12, list(range(12))))
print(wins.count(True), wins.count(False), d["lock"] == wins.index(True))
`);
    expect(out).toBe("1 11 True\n");
  }, 120_000);

  it("keep a value one app's function pickled from another app's function, while JSON values pass", async () => {
    const out = await python(`
import gantry as modal
d = modal.Dict.from_name("shared", create_if_missing=True)
print(modal.Function.from_name("py-dq", "stash").remote(d))
peek = modal.Function.from_name("py-dq-other", "peek")
print(peek.remote(d, "shared"))
r = peek.remote(d, "python-only")
print(r["error"], "may not unpickle it" in r["message"])
print(d["python-only"])
`);
    expect(out).toBe("2\n{'value': {'from': 'python', 'n': [1, 2]}}\nPermissionDeniedError True\n(1, b'two', frozenset({3}))\n");
  }, 120_000);

  it("are read by TypeScript what Python wrote and the other way round", async () => {
    const q = await t.client.queues.fromName("cross", { createIfMissing: true });
    await q.put({ from: "ts" });
    await q.put("to-python", { partition: "p" });
    const out = await python(`
import gantry as modal
q = modal.Queue.from_name("cross")
print(q.get(), q.get(partition="p"))
q.put({"from": "python", "n": 3})
d = modal.Dict.from_name("cross-d", create_if_missing=True)
d["k"] = [1, "two"]
`);
    expect(out).toBe("{'from': 'ts'} to-python\n");
    expect(await q.get({ timeoutMs: 5000 })).toEqual({ from: "python", n: 3 });
    expect(await (await t.client.dicts.fromName("cross-d")).get("k")).toEqual([1, "two"]);
  }, 120_000);

  it("drop an ephemeral Dict after its block, and keep named ones across a daemon restart", async () => {
    const out = await python(`
import gantry as modal
with modal.Dict.ephemeral() as d:
    d["x"] = 1
    name = d.name
    print(d["x"])
try:
    modal.Dict.from_name(name)["x"]
except modal.exception.NotFoundError:
    print("gone")
`);
    expect(out).toBe("1\ngone\n");
    await t.restart();
    const after = await python(`
import gantry as modal
print(modal.Dict.from_name("locks")["lock"] is not None, modal.Dict.from_name("kinds")[(1, "tuple key")], modal.Queue.from_name("work").len())
`);
    expect(after).toBe("True by tuple 0\n");
    const listed = (await (await fetch(`${t.baseUrl}/v1/dicts`)).json()) as { dicts: Array<{ name: string; len: number }> };
    expect(listed.dicts.find((x) => x.name === "kinds")?.len).toBe(16); // 17 put, one popped
  }, 180_000);
});
