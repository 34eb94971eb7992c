/**
 * Secrets on the real Docker engine: a secret reaches TypeScript and Python functions as
 * environment variables (later secrets win over earlier ones and over env), is kept 0600 in a
 * 0700 folder and out of the database, never appears in the image, the app logs or an API
 * answer, and changing it rolls the containers of the functions using it.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView, FunctionView, SecretView } from "../../protocol/api.js";
import { GantryError, RemoteError } from "../../sdk/errors.js";
import { deploy, docker, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

interface SecretChange {
  secret: SecretView;
  replaced: boolean;
  rolled: string[];
}

const unique = (what: string) => `${what}-${randomBytes(12).toString("hex")}`;
const FIRST = { SHARED: "first", FIRST_ONLY: unique("first-only") };
const SECOND = { SHARED: "second", TOKEN: unique("token-v1") };
const TOKEN_V2 = unique("token-v2");
/** Every value any secret of this file ever holds (the empty and short ones aside). */
const VALUES = [FIRST.FIRST_ONLY, SECOND.TOKEN, TOKEN_V2];
const KEYS = ["SHARED", "FIRST_ONLY", "TOKEN", "ONLY_ENV"];

const sha = (v: string) => createHash("sha256").update(v).digest("hex");

let t: TestDaemon;
/** The text of every API answer the tests read: none may hold a value. */
const answers: string[] = [];

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await t.client.transport.json<T>(method, path, body);
  answers.push(JSON.stringify(res));
  return res;
}

/** An answer that may not be JSON (NDJSON log lines), as text. */
async function apiText(path: string): Promise<string> {
  const res = await t.client.transport.raw("GET", path);
  expect(res.status).toBe(200);
  const text = typeof res.body === "string" ? res.body : JSON.stringify(res.body);
  answers.push(text);
  return text;
}

const createSecret = (name: string, values: Record<string, string>, force = false) => api<SecretChange>("POST", "/v1/secrets", { name, values, force });

async function digests(app: string, req: { keys: string[]; sleepMs?: number } = { keys: KEYS }) {
  const fn = await t.client.functions.fromName(app, "env_digests");
  const call = await fn.spawn(req);
  const result = await call.get({ timeoutMs: 60_000 });
  return { result: result as Record<string, string | null>, view: await api<CallView>("GET", `/v1/calls/${call.callId}`) };
}

beforeAll(async () => {
  t = await startTestDaemon();
});
afterAll(async () => {
  await t?.dispose();
});

describe("secrets", () => {
  it("deploy refuses a function naming a secret that does not exist, saying how to create it", async () => {
    const err = await deploy(t, fixture("secrets.ts")).catch((e: Error) => e);
    expect(String(err)).toContain("function secrets.env_digests uses secret gt-first, which does not exist: create it with gantry secret create gt-first KEY=VALUE");
    expect((await api<{ apps: Array<{ name: string }> }>("GET", "/v1/apps")).apps.map((a) => a.name)).not.toContain("secrets");
  });

  it("reach TypeScript and Python functions as environment variables: later secrets win, and secrets win over env", async () => {
    expect(await createSecret("gt-first", FIRST)).toMatchObject({ replaced: false, rolled: [], secret: { name: "gt-first", keys: ["FIRST_ONLY", "SHARED"], used_by: [] } });
    await createSecret("gt-second", SECOND);
    await deploy(t, fixture("secrets.ts"));
    await deploy(t, pyFixture("secrets/py_secrets.py"));
    const want = { SHARED: sha("second"), FIRST_ONLY: sha(FIRST.FIRST_ONLY), TOKEN: sha(SECOND.TOKEN), ONLY_ENV: sha("env") };
    expect((await digests("secrets")).result).toEqual(want);
    expect((await digests("py-secrets")).result).toEqual(want);

    const fn = await api<FunctionView>("GET", "/v1/apps/secrets/functions/env_digests");
    expect(fn.secrets).toEqual(["gt-first", "gt-second"]);
    const listed = await api<{ secrets: SecretView[] }>("GET", "/v1/secrets");
    expect(listed.secrets.map((s) => [s.name, s.keys, s.used_by])).toEqual([
      ["gt-first", ["FIRST_ONLY", "SHARED"], ["py-secrets.env_digests", "secrets.env_digests"]],
      ["gt-second", ["SHARED", "TOKEN"], ["py-secrets.env_digests", "secrets.env_digests"]],
    ]);
  });

  it("are kept 0600 in a 0700 folder of GANTRY_HOME, and not in the database", () => {
    const dir = join(t.home, "secrets");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(["gt-first.json", "gt-second.json"]);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    for (const db of readdirSync(t.home).filter((f) => f.startsWith("gantry.db"))) {
      const bytes = readFileSync(join(t.home, db));
      for (const v of VALUES) expect(bytes.includes(v), `${db} holds a secret value`).toBe(false);
    }
  });

  it("are not in the function images: not in docker history, not in the image's env or labels", async () => {
    for (const app of ["secrets", "py-secrets"]) {
      const fn = await api<FunctionView>("GET", `/v1/apps/${app}/functions/env_digests`);
      const image = docker.getImage(fn.image);
      const text = JSON.stringify(await image.history()) + JSON.stringify(await image.inspect());
      expect(text).toContain("gantry"); // the image is the function's, and was read
      for (const v of VALUES) expect(text).not.toContain(v);
    }
  });

  it("changing one rolls the containers: a running call finishes where it was, the next call sees the new value", async () => {
    const conflict = await createSecret("gt-second", { ...SECOND, TOKEN: TOKEN_V2 }).catch((e: GantryError) => e);
    expect(conflict).toMatchObject({ code: "conflict" });
    expect((conflict as GantryError).message).toContain('secret gt-second already exists (keys SHARED, TOKEN); replace it with --force');

    const warm = await digests("secrets", { keys: ["TOKEN"] });
    expect(warm.result).toEqual({ TOKEN: sha(SECOND.TOKEN) });
    const fn = await t.client.functions.fromName("secrets", "env_digests");
    const running = await fn.spawn({ keys: ["TOKEN"], sleepMs: 3000 });
    await vi.waitFor(async () => expect((await running.status()).status).toBe("running"), { timeout: 30_000, interval: 50 });

    const change = await createSecret("gt-second", { ...SECOND, TOKEN: TOKEN_V2 }, true);
    expect(change.replaced).toBe(true);
    expect(change.rolled.sort()).toEqual(["py-secrets.env_digests", "secrets.env_digests"]);
    expect(Date.parse(change.secret.updated_at)).toBeGreaterThan(Date.parse(change.secret.created_at));

    // A new call goes to a new container, which sees the new value; the running one finishes with the old.
    const next = await digests("secrets", { keys: ["TOKEN"] });
    expect(next.result).toEqual({ TOKEN: sha(TOKEN_V2) });
    expect(next.view.container_id).not.toBe(warm.view.container_id);
    expect(await running.get({ timeoutMs: 30_000 })).toEqual({ TOKEN: sha(SECOND.TOKEN) });
    expect(await running.status()).toMatchObject({ status: "succeeded", attempt: 1, container_id: warm.view.container_id });
    // The old container stops once its call is done (it would otherwise stay warm for 60 s).
    await vi.waitFor(async () => {
      const { containers } = await api<{ containers: Array<{ id: string }> }>("GET", "/v1/containers");
      expect(containers.map((c) => c.id)).not.toContain(warm.view.container_id);
    }, { timeout: 20_000, interval: 100 });
    expect((await digests("secrets", { keys: ["TOKEN"] })).result).toEqual({ TOKEN: sha(TOKEN_V2) });
    expect((await digests("py-secrets", { keys: ["TOKEN"] })).result).toEqual({ TOKEN: sha(TOKEN_V2) });
  });

  it("removing one that functions use is refused unless forced; then their new containers fail, naming it, until it exists again", async () => {
    const refused = await api("DELETE", "/v1/secrets/gt-first").catch((e: GantryError) => e);
    expect(refused).toMatchObject({ code: "conflict" });
    expect((refused as GantryError).message).toContain("secret gt-first is used by py-secrets.env_digests, secrets.env_digests");

    expect(await api("DELETE", "/v1/secrets/gt-first?force=1")).toMatchObject({ name: "gt-first", removed: true });
    const failed = await digests("secrets").catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RemoteError);
    expect((failed as RemoteError).message).toContain("secret gt-first does not exist (it was removed); create it with: gantry secret create gt-first KEY=VALUE");

    await createSecret("gt-first", FIRST);
    expect((await digests("secrets", { keys: ["FIRST_ONLY"] })).result).toEqual({ FIRST_ONLY: sha(FIRST.FIRST_ONLY) });
  });

  it("are read again from their files after a daemon restart", async () => {
    await t.restart();
    expect((await digests("secrets", { keys: ["TOKEN", "FIRST_ONLY"] })).result).toEqual({ TOKEN: sha(TOKEN_V2), FIRST_ONLY: sha(FIRST.FIRST_ONLY) });
  });

  it("never appear in the app logs or in any API answer", async () => {
    expect(await apiText("/v1/apps/secrets/logs?tail=1000")).toContain("reading 4 variables"); // the function's own lines are there
    expect(await apiText("/v1/apps/py-secrets/logs?tail=1000")).toContain("reading 4 variables");
    for (const path of ["/v1/apps", "/v1/apps/secrets", "/v1/apps/py-secrets", "/v1/containers", "/v1/calls?limit=1000", "/v1/secrets/gt-second", "/v1/health"]) {
      await api("GET", path);
    }
    const files = readdirSync(join(t.home, "logs", "apps")).map((f) => readFileSync(join(t.home, "logs", "apps", f), "utf8"));
    expect(files.join("")).toContain("reading");
    for (const text of [...answers, ...files]) for (const v of VALUES) expect(text).not.toContain(v);
  });

  it("refuse bad requests with messages that name keys, never values", async () => {
    const bad = async (body: unknown) => (await api("POST", "/v1/secrets", body).catch((e: GantryError) => e)) as GantryError;
    expect(await bad({ name: "9lives", values: { A: "x" } })).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("secret name must start with a letter") });
    expect((await bad({ name: "s", values: { "1A": VALUES[0] } })).message).toContain('"1A" is not a valid key');
    expect((await bad({ name: "s", values: { GANTRY_AGENT_TOKEN: VALUES[0] } })).message).toContain("starts with GANTRY_, which is reserved");
    expect((await bad({ name: "s", values: {} })).message).toContain("a secret needs at least one KEY=VALUE");
    const tooLong = await bad({ name: "s", values: { BIG: `${VALUES[0]}${"x".repeat(40_000)}` } });
    expect(tooLong.message).toMatch(/the value of BIG is \d+ bytes; a value may have at most 32768/);
    for (const e of [tooLong, await bad({ name: "s", values: { A: 1 } })]) expect(e.message).not.toContain(VALUES[0]);
    expect(await api("GET", "/v1/secrets/nope").catch((e: GantryError) => e)).toMatchObject({ code: "not_found" });
  });
});
