/**
 * A class's parameter sets and options (issue 18): the pure rules (cls-variant.ts), and the
 * dispatcher's pools for them with a fake launcher (containers are entries the test readies and
 * ends): one pool per distinct set, the class's own for the defaults, containers given their
 * parameters, unused variants dropped, a flood of distinct sets refused at the limit, and calls of
 * an earlier daemon going back to their parameter set's pool.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PARAM_LIMITS, paramsFromQuery, resolveVariant, variantSpec, VariantError, type ClsParam } from "../../protocol/cls-variant.js";
import { resolveFunctionSpec, type FunctionSpec } from "../../protocol/function-spec.js";
import type { CallStore } from "../../daemon/store/call-store.js";
import type { Dispatcher } from "../../daemon/service/dispatcher.js";
import { ServiceError } from "../../daemon/service/errors.js";
import { waitFor } from "../helpers/engine.js";
import { fakeDispatcher, tempCallStore, type fakeLauncher } from "../helpers/fake-launcher.js";

const declared: ClsParam[] = [
  { name: "size", type: "int", default: 1 },
  { name: "label", type: "str", default: "x" },
  { name: "blob", type: "bytes", default: { bytes: "" } },
  { name: "flag", type: "bool", default: false },
];

describe("resolveVariant", () => {
  it("gives the class's own pool (null) for the defaults, whether named or not, and one canonical key per distinct set", () => {
    expect(resolveVariant("a.M", declared, {}, {})).toBeNull();
    expect(resolveVariant("a.M", declared, { size: 1, flag: false }, undefined)).toBeNull();
    const a = resolveVariant("a.M", declared, { label: "y", size: 2 }, {})!;
    const b = resolveVariant("a.M", declared, { size: 2, label: "y", flag: false }, {})!;
    expect(a.key).toBe(b.key);
    expect(a.variant.params).toEqual({ blob: { bytes: "" }, flag: false, label: "y", size: 2 });
    expect(resolveVariant("a.M", declared, { size: 3 }, {})!.key).not.toBe(a.key);
    const withGpu = resolveVariant("a.M", declared, {}, { maxContainers: 2, gpu: "A100" })!;
    expect(withGpu.variant.options).toEqual({ gpu: "A100", maxContainers: 2 });
    expect(Object.keys(withGpu.variant.options)).toEqual(["gpu", "maxContainers"]); // sorted: one key per set
  });

  it("refuses unknown and missing parameters (invalid) and wrong types (type), naming them", () => {
    const fail = (params: unknown, options: unknown = {}, decl = declared): VariantError => {
      try {
        resolveVariant("a.M", decl, params, options);
      } catch (err) {
        return err as VariantError;
      }
      throw new Error("no error");
    };
    expect(fail({ nope: 1 })).toMatchObject({ kind: "invalid", message: 'a.M has no parameter "nope": it takes size, label, blob, flag' });
    expect(fail({}, {}, [{ name: "name", type: "str" }])).toMatchObject({ kind: "invalid", message: "a.M: missing parameter name (str), which has no default" });
    expect(fail({ size: "2" })).toMatchObject({ kind: "type", message: 'a.M: parameter size: expected an int (a whole number within ±2^53), got string "2"' });
    expect(fail({ size: 1.5 }).kind).toBe("type");
    expect(fail({ flag: 1 }).kind).toBe("type");
    expect(fail({ blob: "abc" }).message).toContain('expected bytes ({"bytes": base64})');
    expect(fail({ label: "x".repeat(PARAM_LIMITS.valueLength + 1) }).message).toContain(`at most ${PARAM_LIMITS.valueLength} characters`);
    expect(fail([1])).toMatchObject({ kind: "invalid", message: "a.M: params must be an object of parameter values" });
    expect(fail({}, { secrets: [] }).message).toContain("secrets");
    expect(fail({}, { maxContainers: 0 }).message).toContain("maxContainers must be at least 1");
  });
});

describe("paramsFromQuery", () => {
  it("reads the declared parameters a web request's query names, as their types; the app's own query parameters are left alone", () => {
    expect(paramsFromQuery("a.M", declared, "size=-3&flag=TRUE&label=caf%C3%A9&blob=hi&page=2")).toEqual({ size: -3, flag: true, label: "café", blob: { bytes: "aGk=" } });
    expect(paramsFromQuery("a.M", declared, "")).toEqual({});
  });
  it("refuses a value that is not its parameter's type, naming both", () => {
    expect(() => paramsFromQuery("a.M", declared, "size=1e3")).toThrow('a.M: query parameter size must be a whole number, got "1e3"');
    expect(() => paramsFromQuery("a.M", declared, "flag=yes")).toThrow('a.M: query parameter flag must be true or false, got "yes"');
  });
});

describe("variantSpec", () => {
  const base = resolveFunctionSpec("M", { maxContainers: 4, cls: { methods: [{ name: "run" }] } }, "python");
  it("applies a variant's options over the class's spec", () => {
    const s = variantSpec(base, { gpu: ["H100", "A100"], maxContainers: 1, timeout: 5, retries: 2 });
    expect(s).toMatchObject({ gpu: ["H100", "A100"], maxContainers: 1, timeoutMs: 5000, retries: { maxRetries: 2 } });
    expect(variantSpec(base, {})).toEqual(base);
  });
  it("keeps the class's rules: minContainers within maxContainers, no retries for generator methods", () => {
    expect(() => variantSpec(base, { minContainers: 5 })).toThrow("minContainers (5) must not exceed maxContainers (4)");
    const gen = resolveFunctionSpec("G", { cls: { methods: [{ name: "stream", generator: true }] } }, "python");
    expect(() => variantSpec(gen, { retries: 1 })).toThrow("retries on a class with generator methods");
    expect(() => resolveFunctionSpec("G", { retries: 1, cls: { methods: [{ name: "stream", generator: true }] } }, "python")).toThrow("cannot have retries");
  });
});

describe("Dispatcher: a pool per parameter set", () => {
  let store: ReturnType<typeof tempCallStore>;
  let calls: CallStore;
  let dispatcher: Dispatcher;
  let fake: ReturnType<typeof fakeLauncher>;
  let spec: FunctionSpec;

  const start = async () => {
    ({ dispatcher, fake } = await fakeDispatcher(calls, spec, { runtime: "python" }));
  };

  beforeEach(async () => {
    store = tempCallStore("gantry-variants-");
    calls = store.calls;
    spec = resolveFunctionSpec("M", { scaledownWindow: 2, cls: { methods: [{ name: "run" }], params: declared } }, "python");
    await start();
  });
  afterEach(async () => {
    await dispatcher.shutdown();
    store.close();
  });

  const call = (params?: Record<string, unknown>, options?: Record<string, unknown>) =>
    dispatcher.submit("a", "M", { args: [], kwargs: null, method: "run", ...(params || options ? { variant: { params: params ?? {}, options: options ?? {} } as never } : {}) });

  it("starts a container per parameter set with its parameters; the defaults share the class's own", async () => {
    await call();
    await call({ size: 1 });
    await call({ size: 2 });
    await call({ size: 2, label: "x" });
    await call({ size: 3 }, { maxContainers: 1 });
    // The class's own pool starts a container per queued call (one input each); each parameter set's its own.
    await waitFor("five containers", async () => fake.launched.length === 5, 5000);
    const byPool = new Map(fake.launched.map((l) => [l.pool, l.params]));
    expect([...byPool.values()]).toEqual([
      { size: 1, label: "x", blob: { bytes: "" }, flag: false },
      { blob: { bytes: "" }, flag: false, label: "x", size: 2 },
      { blob: { bytes: "" }, flag: false, label: "x", size: 3 },
    ]);
    expect([...byPool.keys()].map((p) => p.spec.maxContainers)).toEqual([10, 10, 1]);
    const live = dispatcher.functionLive("a", "M");
    expect(live.queued).toBe(5);
    expect(live.variants.map((v) => [v.variant, v.queued])).toEqual([
      ['blob=b64:, flag=false, label="x", size=2', 2],
      ['blob=b64:, flag=false, label="x", size=3, maxContainers=1', 1],
    ]);
    // The stored input keeps the canonical parameter set (a restart finds its pool again).
    const ids = calls.list({ app: "a", function: "M", limit: 10 }).map((r) => r.id);
    expect(ids.map((id) => calls.inputOf(id)?.variant?.params.size ?? "own")).toEqual([3, 2, 2, "own", "own"]); // newest first
  });

  it("drops a parameter set's pool once nothing uses it, and makes it again for the next call", async () => {
    const id = await call({ size: 2 });
    await waitFor("its container", async () => fake.launched.length === 1, 5000);
    const { pool, c, h } = fake.launched[0]!;
    h.onReady();
    await waitFor("the call running", async () => c.leases.has(id), 5000);
    dispatcher.onOutput(pool, c, { callId: id, attempt: 1, ok: true, value: 1 });
    h.onGone({ kind: "stopped", reason: "idle" }, false);
    await waitFor("the variant's pool dropped", async () => dispatcher.functionLive("a", "M").variants.length === 0, 5000);
    await call({ size: 2 });
    await waitFor("a new container for it", async () => fake.launched.length === 2, 5000);
    expect(fake.launched[1]!.pool).not.toBe(pool);
  });

  it("refuses a flood of distinct parameter sets at the limit, naming it; known sets still go", async () => {
    for (let i = 0; i < PARAM_LIMITS.variantsPerClass; i++) await call({ size: 100 + i });
    const err = await call({ size: 99 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).message).toBe(`class a.M has ${PARAM_LIMITS.variantsPerClass} pools for parameter sets and options in use, the limit; retry once idle ones have scaled down`);
    await expect(call({ size: 100 })).resolves.toMatch(/^fc-/);
    await expect(call()).resolves.toMatch(/^fc-/);
  });

  it("refuses calls naming no parameter of a class that needs one, and options it cannot meet", async () => {
    spec = resolveFunctionSpec("M", { cls: { methods: [{ name: "run" }], params: [{ name: "name", type: "str" }] } }, "python");
    await dispatcher.shutdown();
    await start();
    await expect(call()).rejects.toThrow("a.M: missing parameter name (str), which has no default");
    await expect(call({ name: "x" }, { gpu: "H100" })).rejects.toThrow(/a\.M\.with_options asks for gpu "H100", which no GPU of this machine can meet/);
    expect(fake.launched).toEqual([]); // the class's own pool warms nothing: no instance could be made
  });

  it("sends calls of an earlier daemon back to their parameter set's pool", async () => {
    await call({ size: 7 });
    await call();
    await dispatcher.shutdown();
    await start();
    expect(await dispatcher.recover()).toEqual({ requeued: 2, failed: 0 });
    await waitFor("two containers", async () => fake.launched.length === 2, 5000);
    expect(fake.launched.map((l) => (l.params as { size: number }).size).sort()).toEqual([1, 7]);
  });
});
