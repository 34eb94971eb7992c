import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LIMITS, resolveFunctionSpec } from "../../protocol/function-spec.js";
import { parseCreateSecretRequest } from "../../protocol/secrets.js";
import { SecretStore } from "../../daemon/store/secret-store.js";
import type { Logger } from "../../daemon/logger.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "gt-secrets-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const add = (msg: string, fields?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, info: add, warn: add, error: add };
}

describe("SecretStore", () => {
  it("writes each secret to a 0600 file in a 0700 folder and reads them all back at open", async () => {
    const dir = join(tempDir(), "secrets");
    const store = await SecretStore.open(dir, recordingLog());
    await store.put({ name: "b", values: { K: "v1" }, createdAt: 1, updatedAt: 2 });
    await store.put({ name: "a", values: { K: "v2", L: "line\nbreak" }, createdAt: 3, updatedAt: 3 });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(["a.json", "b.json"]);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);

    const again = await SecretStore.open(dir, recordingLog());
    expect(again.list().map((s) => s.name)).toEqual(["a", "b"]);
    expect(again.get("a")).toEqual({ name: "a", values: { K: "v2", L: "line\nbreak" }, createdAt: 3, updatedAt: 3 });
  });

  it("tightens the modes of a folder and files found looser, removes half-written files, skips a broken one without quoting it", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "ok.json"), JSON.stringify({ name: "ok", values: { A: "1" }, created_at: 1, updated_at: 1 }), { mode: 0o644 });
    writeFileSync(join(dir, "x.json.123.tmp"), "half");
    writeFileSync(join(dir, "broken.json"), "{ TOPSECRET");
    const log = recordingLog();
    const store = await SecretStore.open(dir, log);
    expect(store.list().map((s) => s.name)).toEqual(["ok"]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "ok.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(["broken.json", "ok.json"]);
    expect(log.lines.join("\n")).toContain("broken.json");
    expect(log.lines.join("\n")).toContain("not valid JSON");
    expect(log.lines.join("\n")).not.toContain("TOPSECRET");
  });

  it("replaces a secret whole and removes one; remove says whether there was one", async () => {
    const dir = tempDir();
    const store = await SecretStore.open(dir, recordingLog());
    await store.put({ name: "s", values: { A: "1", B: "2" }, createdAt: 1, updatedAt: 1 });
    await store.put({ name: "s", values: { A: "3" }, createdAt: 1, updatedAt: 5 });
    expect(JSON.parse(readFileSync(join(dir, "s.json"), "utf8"))).toEqual({ name: "s", values: { A: "3" }, created_at: 1, updated_at: 5 });
    expect(await store.remove("s")).toBe(true);
    expect(await store.remove("s")).toBe(false);
    expect(store.get("s")).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a name that is not a secret name before it becomes a file name", async () => {
    const store = await SecretStore.open(tempDir(), recordingLog());
    await expect(store.put({ name: "../escape", values: { A: "1" }, createdAt: 1, updatedAt: 1 })).rejects.toThrow('"../escape" is not a secret name');
  });
});

describe("what a secret may hold", () => {
  const problem = (body: unknown) => {
    const r = parseCreateSecretRequest(body);
    return r.ok ? null : r.message;
  };

  it("takes names, keys and values within the limits", () => {
    expect(problem({ name: "openai", values: { OPENAI_API_KEY: "sk-x", EMPTY: "" }, force: true })).toBeNull();
  });

  it("names the key at fault and never a value", () => {
    expect(problem({ name: "s", values: { A: "v\0" } })).toBe("secret s: the value of A contains a NUL character, which an environment variable cannot hold");
    expect(problem({ name: "s", values: { "A B": "hidden" } })).toBe('secret s: "A B" is not a valid key: use letters, digits and _, not starting with a digit');
    expect(problem({ name: "s", values: { GANTRY_APP: "hidden" } })).toContain("key GANTRY_APP starts with GANTRY_");
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`K${i}`, "v"]));
    expect(problem({ name: "s", values: many })).toBe("secret s: a secret holds at most 100 keys; this one has 101");
    const big = Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`K${i}`, "v".repeat(30_000)]));
    expect(problem({ name: "s", values: big })).toMatch(/^secret s: the secret's keys and values come to \d+ bytes; at most 65536 are allowed$/);
    expect(problem({ name: "s", values: { A: 5 } })).toBe("values.A: each value must be a string");
    expect(problem({ name: "s", values: { A: "x" }, extra: "hidden" })).toContain('Unrecognized key: "extra"');
  });
});

describe("the secrets option of a function", () => {
  it("keeps the names in order, and is absent when none are named", () => {
    expect(resolveFunctionSpec("f", { secrets: [{ name: "b" }, { name: "a" }] }).secrets).toEqual(["b", "a"]);
    expect(resolveFunctionSpec("f", {})).not.toHaveProperty("secrets");
    expect(resolveFunctionSpec("f", { secrets: [] })).not.toHaveProperty("secrets");
  });

  it("refuses bad names, repeats, plain strings and too many", () => {
    expect(() => resolveFunctionSpec("f", { secrets: [{ name: "a/b" }] })).toThrow("function f: secrets.0.name: secret name must start with a letter or _");
    expect(() => resolveFunctionSpec("f", { secrets: [{ name: "a" }, { name: "a" }] })).toThrow("function f: secrets names the same secret twice");
    expect(() => resolveFunctionSpec("f", { secrets: ["a"] })).toThrow('function f: secrets.0: secrets takes Secret.fromName("NAME") items');
    const many = Array.from({ length: LIMITS.secretsPerFunction + 1 }, (_, i) => ({ name: `s${i}` }));
    expect(() => resolveFunctionSpec("f", { secrets: many })).toThrow(`function f: secrets: a function may use at most ${LIMITS.secretsPerFunction} secrets`);
  });
});
