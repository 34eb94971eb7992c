/**
 * Classes with a lifecycle (issue 18, first part) on the real Docker engine: @enter once per
 * container before any call, every method in the one container, sync, async and generator
 * methods, @exit when the container scales down, an @enter failure reaching the caller.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, NotFoundError, RemoteError } from "../../sdk/errors.js";
import { gantry, runPython } from "../helpers/cli.js";
import { deploy, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/engine.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("classes/py_cls.py"));
  await deploy(t, fixture("classes.ts"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

const python = (code: string) => runPython(t.home, code);

describe("Python classes", () => {
  it("run @enter once per container, before any call, and serve every method from that container", async () => {
    const r = await python(`
import gantry as modal
Model = modal.Cls.from_name("py-cls", "Model")
m = Model()
outs = [m.predict.remote(i) for i in range(4)] + [m.predict_async.remote(1)]
print([o["y"] for o in outs], {o["loads"] for o in outs}, len({o["container"] for o in outs}))
print(list(m.count.remote_gen(3)))
try:
    Model.predict.remote(1)
except modal.exception.InvalidError as e:
    print("InvalidError")
try:
    m.nope
except AttributeError as e:
    print(e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[0, 3, 6, 9, 6] {1} 1\n[0, 3, 6]\nInvalidError\nclass Model has no method 'nope' (its methods: predict, predict_async, count)\n");
  });

  it("run @exit when the container scales down", async () => {
    await waitFor(
      "the Model container's scale-down",
      async () => (await t.client.transport.json<{ containers: Array<{ function: string }> }>("GET", "/v1/containers")).containers.every((c) => c.function !== "Model"),
      60_000,
    );
    await waitFor(
      "the exit hook's line in the app's log",
      async () => JSON.stringify(await t.client.transport.raw("GET", "/v1/apps/py-cls/logs?function=Model&tail=50")).includes("exit hook ran after 1 load(s)"),
      30_000,
    );
    const logs = await t.client.transport.raw("GET", "/v1/apps/py-cls/logs?function=Model&tail=50");
    expect(JSON.stringify(logs.body)).toContain("exit hook ran after 1 load(s)");
  }, 120_000);

  it("fail calls with the user's own error when @enter raises, never hang", async () => {
    const r = await python(`
import gantry as modal
try:
    modal.Cls.from_name("py-cls", "Broken")().predict.remote(1)
except RuntimeError as e:
    print("RuntimeError", e)
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^RuntimeError no container of py-cls\/Broken could start \(3 tries\): weights missing at \/models\/broken/);
  }, 120_000);

  it("@batched: calls arriving together run as one call of lists, each gets its own result; a batch that raises fails each input", async () => {
    const r = await python(`
import gantry as modal
add = modal.Function.from_name("py-cls", "add_batch")
outs = list(add.map([1, 2, 3, 4], [10, 20, 30, 40]))
print([o["sum"] for o in outs], max(o["batch"] for o in outs) > 1)
print([type(e).__name__ for e in add.map([-1, 2], [1, 2], return_exceptions=True)])
emb = modal.Cls.from_name("py-cls", "Embedder")()
print(emb.embed.remote("abcd"), list(emb.embed.map(["a", "bb", "ccc"])))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("[11, 22, 33, 44] True\n['ValueError', 'ValueError']\n4 [1, 2, 3]\n");
  }, 120_000);

  it("are called from a TypeScript client: cls.fromName, instance(), method(name).remote and remoteGen", async () => {
    const Model = await t.client.cls.fromName("py-cls", "Model");
    expect(Model.methods).toEqual(["predict", "predict_async", "count"]);
    const m = await Model.instance();
    expect(await m.method("predict").remote(5)).toMatchObject({ y: 15, loads: 1 });
    const items: unknown[] = [];
    for await (const x of m.method("count").remoteGen(2)) items.push(x);
    expect(items).toEqual([0, 3]);
    expect(() => m.method("nope")).toThrow(InvalidArgumentError);
    await expect(Model.instance({ size: 2 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(t.client.cls.fromName("py-cls", "nope")).rejects.toBeInstanceOf(NotFoundError);
  }, 120_000);

  it("are called over the API by method: a JSON caller names it; a wrong or missing method is refused naming the methods", async () => {
    const ok = await t.client.transport.json<{ call_id: string }>("POST", "/v1/apps/py-cls/functions/Model/calls", { args: [2], method: "predict" });
    const call = await t.client.functionCalls.fromId(ok.call_id);
    expect(await call.get({ timeoutMs: 60_000 })).toMatchObject({ y: 6 });
    const missing = await t.client.transport.raw("POST", "/v1/apps/py-cls/functions/Model/calls", { args: [2] });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toContain("names no method: its methods are predict, predict_async, count");
    const wrong = await t.client.transport.raw("POST", "/v1/apps/py-cls/functions/Model/calls", { args: [2], method: "train" });
    expect(JSON.stringify(wrong.body)).toContain('names method \\"train\\", which it does not have');
    const broken = await t.client.functions.fromName("py-cls", "Broken");
    expect(broken.info.methods).toEqual(["predict"]);
    const batchedInfo = await t.client.functions.fromName("py-cls", "add_batch");
    expect(batchedInfo.info.max_inputs).toBe(4); // at least max_batch_size: a batch reaches one container
    await expect(t.client.transport.json("POST", "/v1/apps/py-cls/functions/Broken/calls", { args: [1], method: "predict" }).then(async (c) => (await t.client.functionCalls.fromId((c as { call_id: string }).call_id)).get({ timeoutMs: 90_000 }))).rejects.toBeInstanceOf(RemoteError);
  }, 120_000);
});

describe("class parameters", () => {
  it("give each distinct parameter set its own pool, set before @enter; the defaults share the class's own; bad ones raise Modal's errors", async () => {
    const r = await python(`
import gantry as modal
Sized = modal.Cls.from_name("py-cls", "Sized")
r1 = Sized(size=2, label="two", blob=b"\\x00\\x01", flag=True).describe.remote(5)
r2 = Sized(size=3).describe.remote(5)
r3 = Sized().describe.remote(5)
r4 = Sized(size=1, flag=False).describe.remote(5)
print(r1["y"], r1["loaded"], r1["label"], r1["blob"], r1["flag"], r2["y"], r3["y"], r4["y"])
print(len({r1["container"], r2["container"], r3["container"]}), r3["container"] == r4["container"])
print([o["y"] for o in Sized(size=2, label="two", blob=b"\\x00\\x01", flag=True).describe.map([1, 2])])
for bad in (lambda: Sized(size="x"), lambda: Sized(nope=1), lambda: Sized(2)):
    try:
        bad()
    except Exception as e:
        print(type(e).__name__, e)
Needs = modal.Cls.from_name("py-cls", "Needs")
try:
    Needs()
except modal.exception.InvalidError as e:
    print("InvalidError", e)
print(Needs(name="bo").hello.remote())
other = Sized.with_options(max_containers=1, timeout=30)(size=2, label="two", blob=b"\\x00\\x01", flag=True).describe.remote(1)
print(other["container"] != r1["container"])
try:
    Sized.with_options(secrets=[])
except modal.exception.InvalidError as e:
    print("InvalidError", e)
try:
    Sized.with_options(gpu="H100")().describe.remote(1)
except Exception as e:
    print(type(e).__name__, "H100" in str(e))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")).toEqual([
      "10 2 two 0001 True 15 5 5",
      "3 True",
      "[2, 4]",
      "TypeError Sized: parameter size takes int, got str 'x' as its value",
      "InvalidError Sized() got unknown parameter nope: it takes blob, flag, label, size",
      "InvalidError Sized() takes its parameters by keyword only, as Sized(name=value)",
      "InvalidError Needs() is missing parameter name, which has no default",
      "hello bo",
      "True",
      expect.stringMatching(/^InvalidError Sized\.with_options\(secrets=\.\.\.\) is not supported by gantry: it takes buffer_containers, cpu, gpu,/),
      "InvalidError True",
      "",
    ]);
    // containers ls names each container's parameter set; the function's live view its pools.
    const listed = await gantry(t.home, ["containers", "ls"]);
    expect(listed.stdout).toContain('Sized(blob=b64:AAE=, flag=true, label="two", size=2)');
    const app = await t.client.transport.json<{ functions: Array<{ name: string; live: { variants: Array<{ variant: string }> } }> }>("GET", "/v1/apps/py-cls");
    expect(app.functions.find((f) => f.name === "Sized")!.live.variants.map((v) => v.variant)).toContain('blob=b64:, flag=false, label="x", size=3');
  }, 300_000);

  it("come from JSON callers and the TypeScript client too, checked by the daemon", async () => {
    const ok = await t.client.transport.json<{ call_id: string }>("POST", "/v1/apps/py-cls/functions/Sized/calls", { args: [2], method: "describe", params: { size: 3 } });
    expect(await (await t.client.functionCalls.fromId(ok.call_id)).get({ timeoutMs: 60_000 })).toMatchObject({ y: 6, loaded: 3 });
    const bad = await t.client.transport.raw("POST", "/v1/apps/py-cls/functions/Sized/calls", { args: [2], method: "describe", params: { size: "3" } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain("py-cls.Sized: parameter size: expected an int");
    const missing = await t.client.transport.raw("POST", "/v1/apps/py-cls/functions/Needs/calls", { args: [], method: "hello" });
    expect(JSON.stringify(missing.body)).toContain("py-cls.Needs: missing parameter name (str), which has no default");
    const Sized = await t.client.cls.fromName("py-cls", "Sized");
    const m = await Sized.instance({ size: 4, blob: new Uint8Array([1, 2]) });
    expect(await m.method("describe").remote(2)).toMatchObject({ y: 8, loaded: 4, blob: "0102" });
    await expect(Sized.instance({ size: "4" })).rejects.toThrow("parameter size: expected an int");
    await expect(Sized.instance({ nope: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => Sized.withOptions({ maxContainers: 0 })).toThrow(InvalidArgumentError);
    const capped = await Sized.withConcurrency({ maxInputs: 2 }).instance({ size: 4 });
    expect(await capped.method("describe").remote(1)).toMatchObject({ y: 4 });
  }, 300_000);
});

describe("TypeScript classes", () => {
  it("run enter() once per container; every method but enter and exit is callable, from TypeScript and Python clients", async () => {
    const Counter = await t.client.cls.fromName("ts-cls", "Counter");
    expect(Counter.methods).toEqual(["times", "upTo"]);
    const c = await Counter.instance();
    const outs = [await c.method("times").remote(1), await c.method("times").remote(2), await c.method("times").remote(3)];
    expect(outs).toEqual([{ y: 10, loads: 1 }, { y: 20, loads: 1 }, { y: 30, loads: 1 }]);
    const items: unknown[] = [];
    for await (const x of c.method("upTo").remoteGen(3)) items.push(x);
    expect(items).toEqual([0, 10, 20]);
    const r = await python(`
import gantry as modal
print(modal.Cls.from_name("ts-cls", "Counter")().times.remote(4))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("{'y': 40, 'loads': 1}\n");
  }, 120_000);

  it("take parameters in the constructor, one pool per set, from either language's client", async () => {
    const Scaled = await t.client.cls.fromName("ts-cls", "Scaled");
    expect(Scaled.info.params).toEqual([{ name: "factor", type: "int", default: 1 }, { name: "tag", type: "str", default: "t" }]);
    const three = await (await Scaled.instance({ factor: 3 })).method("apply").remote(2);
    const plain = await (await Scaled.instance()).method("apply").remote(2);
    expect(three).toMatchObject({ y: 6, tag: "t" });
    expect(plain).toMatchObject({ y: 2, tag: "t" });
    expect((three as { container: string }).container).not.toBe((plain as { container: string }).container);
    const r = await python(`
import gantry as modal
print(modal.Cls.from_name("ts-cls", "Scaled")(factor=5, tag="py").apply.remote(2))
`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^\{'y': 10, 'tag': 'py', 'container': 'ct-/);
  }, 300_000);

  it("run exit() when the container scales down", async () => {
    await waitFor(
      "the exit() line in the app's log",
      async () => JSON.stringify((await t.client.transport.raw("GET", "/v1/apps/ts-cls/logs?function=Counter&tail=50")).body).includes("ts exit after 1 load(s)"),
      60_000,
    );
    expect(JSON.stringify((await t.client.transport.raw("GET", "/v1/apps/ts-cls/logs?function=Counter&tail=50")).body)).toContain("ts exit after 1 load(s)");
  }, 90_000);
});

describe("daemon stop", () => {
  it("runs a class's @exit hooks before its containers go (a warm one, far from its scale-down)", async () => {
    const r = await python(`
import gantry as modal
print(modal.Cls.from_name("py-cls", "Sized")(size=9).describe.remote(1)["y"])
`);
    expect(r.stdout).toBe("9\n");
    await t.restart();
    const logs = await t.client.transport.raw("GET", "/v1/apps/py-cls/logs?function=Sized&tail=200");
    expect(JSON.stringify(logs.body)).toContain("sized exit size=9");
  }, 120_000);
});
