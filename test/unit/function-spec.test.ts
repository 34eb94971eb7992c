import { describe, it, expect } from "vitest";
import { DEFAULTS, LIMITS, normalizeRetries, resolveFunctionSpec, type FunctionSpec } from "../../protocol/function-spec.js";

const DEFAULT_SPEC: FunctionSpec = {
  name: "f",
  image: { base: { kind: "node" }, steps: [] },
  retries: { maxRetries: 0, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 },
  timeoutMs: 300_000,
  startupTimeoutMs: 300_000,
  maxContainers: 10,
  minContainers: 0,
  bufferContainers: 0,
  scaledownWindowMs: 60_000,
  maxInputs: 1,
  gpu: null,
  cpu: null,
  memoryMiB: null,
  env: {},
  resultTtlMs: 3_600_000,
  network: "bridge",
  web: null,
  public: false,
};

describe("resolveFunctionSpec defaults", () => {
  it("fills every option with its default", () => {
    expect(resolveFunctionSpec("f", {})).toEqual(DEFAULT_SPEC);
    expect(resolveFunctionSpec("f", undefined)).toEqual(DEFAULT_SPEC);
  });

  it("uses the documented default values", () => {
    const s = resolveFunctionSpec("f", {});
    expect(s.timeoutMs).toBe(DEFAULTS.timeout * 1000);
    expect(DEFAULTS.timeout).toBe(300);
    expect(s.scaledownWindowMs).toBe(60_000);
    expect(s.maxInputs).toBe(1);
    expect(s.resultTtlMs).toBe(3600 * 1000);
  });

  it("startupTimeout follows timeout unless set", () => {
    expect(resolveFunctionSpec("f", { timeout: 30 }).startupTimeoutMs).toBe(30_000);
    expect(resolveFunctionSpec("f", { timeout: 30, startupTimeout: 600 })).toMatchObject({ timeoutMs: 30_000, startupTimeoutMs: 600_000 });
  });

  it("integer retries wait a fixed 1 s", () => {
    expect(resolveFunctionSpec("f", { retries: 3 }).retries).toEqual({ maxRetries: 3, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 });
  });

  it("a retries object defaults to backoff 2 from 1 s up to 60 s", () => {
    expect(resolveFunctionSpec("f", { retries: { maxRetries: 2 } }).retries).toEqual({
      maxRetries: 2,
      backoffCoefficient: 2,
      initialDelayMs: 1000,
      maxDelayMs: 60_000,
    });
    expect(normalizeRetries({ maxRetries: 1, backoffCoefficient: 3, initialDelay: 0.25, maxDelay: 10 })).toEqual({
      maxRetries: 1,
      backoffCoefficient: 3,
      initialDelayMs: 250,
      maxDelayMs: 10_000,
    });
  });

  it("converts seconds to milliseconds and keeps the other options", () => {
    const s = resolveFunctionSpec("embed", {
      timeout: 1.5,
      scaledownWindow: 2,
      resultTtl: 60,
      maxContainers: 4,
      minContainers: 1,
      bufferContainers: 2,
      maxInputs: 8,
      cpu: 2,
      memory: 2048,
      env: { MODEL: "small" },
      network: "none",
    });
    expect(s).toMatchObject({
      name: "embed",
      timeoutMs: 1500,
      scaledownWindowMs: 2000,
      resultTtlMs: 60_000,
      maxContainers: 4,
      minContainers: 1,
      bufferContainers: 2,
      maxInputs: 8,
      cpu: 2,
      memoryMiB: 2048,
      env: { MODEL: "small" },
      network: "none",
    });
  });

  it("a single gpu becomes a list", () => {
    expect(resolveFunctionSpec("f", { gpu: "A100" }).gpu).toEqual(["A100"]);
    expect(resolveFunctionSpec("f", { gpu: ["H100:2", "any"] }).gpu).toEqual(["H100:2", "any"]);
  });

  it("accepts the bounds themselves", () => {
    expect(() => resolveFunctionSpec("f", { timeout: 1, retries: 10, scaledownWindow: 2, maxContainers: 100, maxInputs: 1000 })).not.toThrow();
    expect(() => resolveFunctionSpec("f", { timeout: LIMITS.timeoutSeconds.max, scaledownWindow: LIMITS.scaledownWindowSeconds.max })).not.toThrow();
  });
});

describe("resolveFunctionSpec errors", () => {
  it.each([
    ["timeout 0", { timeout: 0 }, /^function f: timeout must be between 1 and 86400 seconds$/],
    ["timeout over 24 h", { timeout: 24 * 3600 + 1 }, /timeout must be between 1 and 86400 seconds/],
    ["a negative startupTimeout", { startupTimeout: -1 }, /startupTimeout must be between 1 and 86400 seconds/],
    ["retries 11", { retries: 11 }, /^function f: retries must be at most 10$/],
    ["retries.maxRetries 11", { retries: { maxRetries: 11 } }, /retries\.maxRetries must be at most 10/],
    ["scaledownWindow 1", { scaledownWindow: 1 }, /scaledownWindow must be between 2 and 1200 seconds/],
    ["maxInputs 0", { maxInputs: 0 }, /maxInputs must be at least 1/],
    ["maxContainers 101", { maxContainers: 101 }, /maxContainers must be at most 100/],
    ["maxContainers 1.5", { maxContainers: 1.5 }, /maxContainers must be a whole number/],
    ["resultTtl over 30 days", { resultTtl: 30 * 24 * 3600 + 1 }, /resultTtl must be between 1 and 2592000 seconds/],
  ])("%s names the option and its limit", (_what, options, message) => {
    expect(() => resolveFunctionSpec("f", options)).toThrow(message);
  });

  it("explains a bad retries value from the form the user meant", () => {
    expect(() => resolveFunctionSpec("f", { retries: 1.5 })).toThrow(/^function f: retries must be a whole number$/);
    expect(() => resolveFunctionSpec("f", { retries: { max_retries: 1 } })).toThrow(/Unrecognized key: "max_retries"/);
    expect(() => resolveFunctionSpec("f", { retries: "3" })).toThrow(/retries must be a whole number from 0 to 10, or \{maxRetries/);
  });

  it("names the function", () => {
    expect(() => resolveFunctionSpec("resize_image", { timeout: 0 })).toThrow(/^function resize_image: /);
  });

  it("rejects an unknown option key, naming it", () => {
    expect(() => resolveFunctionSpec("f", { timeuot: 10 })).toThrow(/Unrecognized key.*timeuot/);
  });

  it("rejects minContainers above maxContainers, naming both values", () => {
    expect(() => resolveFunctionSpec("f", { minContainers: 5, maxContainers: 2 })).toThrow(
      "function f: minContainers (5) must not exceed maxContainers (2)",
    );
    // the default maxContainers (10) counts too
    expect(() => resolveFunctionSpec("f", { minContainers: 11 })).toThrow(/minContainers \(11\) must not exceed maxContainers \(10\)/);
  });

  it("rejects a non-object", () => {
    expect(() => resolveFunctionSpec("f", 42)).toThrow(/^function f: /);
  });
});

describe("snake_case and camelCase are not mixed", () => {
  it("takes only camelCase keys (the SDK maps snake_case before)", () => {
    expect(() => resolveFunctionSpec("f", { max_containers: 3 })).toThrow(/Unrecognized key.*max_containers/);
    expect(() => resolveFunctionSpec("f", { scaledown_window: 10 })).toThrow(/scaledown_window/);
  });

  it("rejects both spellings given together", () => {
    expect(() => resolveFunctionSpec("f", { maxContainers: 3, max_containers: 3 })).toThrow(/max_containers/);
  });

  it("rejects snake_case inside the retries object", () => {
    expect(() => resolveFunctionSpec("f", { retries: { maxRetries: 1, initial_delay: 2 } })).toThrow(/retries: Unrecognized key.*initial_delay/);
  });
});

describe("web endpoints", () => {
  it("take the handler kind of their language, and public", () => {
    expect(resolveFunctionSpec("api", { web: { kind: "fetch" }, public: true })).toMatchObject({ web: { kind: "fetch" }, public: true });
    expect(resolveFunctionSpec("f", { web: { kind: "fastapi", method: "POST" } }, "python").web).toEqual({ kind: "fastapi", method: "POST" });
  });

  it("refuse another language's kind, and public on a plain function", () => {
    expect(() => resolveFunctionSpec("api", { web: { kind: "asgi" } })).toThrow("function api: a asgi web endpoint is not a node one (node takes fetch)");
    expect(() => resolveFunctionSpec("api", { web: { kind: "fetch" } }, "python")).toThrow(/python takes asgi, wsgi, fastapi/);
    expect(() => resolveFunctionSpec("f", { public: true })).toThrow("function f: public is for web endpoints only");
  });
});
