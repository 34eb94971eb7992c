/**
 * `gantry secret create|ls|rm` as a user drives them, against a daemon the CLI started: pairs and
 * dotenv files, --json, --force, bad input with clear messages and exit codes, deploy refusing an
 * unknown secret, and no value in any output, the daemon's log file or the app logs.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SecretView } from "../../protocol/api.js";
import { gantry, type CliResult } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

const unique = (what: string) => `${what}-${randomBytes(12).toString("hex")}`;
const TOKEN = unique("token");
const TOKEN_V2 = unique("token-v2");
const PEM_LINE = unique("pem");
const VALUES = [TOKEN, TOKEN_V2, PEM_LINE];
const sha = (v: string) => createHash("sha256").update(v).digest("hex");

let home: string;
let files: string;
/** Every stdout and stderr the CLI wrote: none may hold a value. */
const outputs: string[] = [];

async function g(...args: string[]): Promise<CliResult> {
  const r = await gantry(home, args);
  outputs.push(r.stdout, r.stderr);
  return r;
}

function dotenv(name: string, text: string): string {
  const path = join(files, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gs-"));
  files = mkdtempSync(join(tmpdir(), "gs-files-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });
});

describe("gantry secret", () => {
  it("create takes KEY=VALUE pairs and a dotenv file (pairs win); ls shows names and keys, never values", async () => {
    const env = dotenv(
      "first.env",
      `# a comment\nexport SHARED=from-dotenv   # trailing comment\nPEM="-----BEGIN-----\\n${PEM_LINE}\n-----END-----"\nEMPTY=\nQUOTED='a # b'\n`,
    );
    const created = await g("secret", "create", "gt-first", "--from-dotenv", env, "SHARED=first", `EXTRA=${TOKEN}`);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toBe("created secret gt-first (keys: EMPTY, EXTRA, PEM, QUOTED, SHARED)\n");

    const ls = await g("secret", "ls");
    expect(ls.stdout).toMatch(/^NAME +KEYS +USED BY +CREATED +UPDATED$/m);
    expect(ls.stdout).toMatch(/^gt-first +EMPTY,EXTRA,PEM,QUOTED,SHARED +- +\ds ago +\ds ago$/m);
    const json = JSON.parse((await g("secret", "ls", "--json")).stdout) as SecretView[];
    expect(json).toEqual([{ name: "gt-first", keys: ["EMPTY", "EXTRA", "PEM", "QUOTED", "SHARED"], created_at: expect.any(String), updated_at: expect.any(String), used_by: [] }]);
  });

  it("refuses to replace a secret without --force; --force replaces it", async () => {
    const again = await g("secret", "create", "gt-first", "A=1");
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('Error: secret gt-first already exists (keys EMPTY, EXTRA, PEM, QUOTED, SHARED); replace it with --force ("force": true in the API)\n');
    const forced = await g("secret", "create", "gt-first", "SHARED=first", `EXTRA=${TOKEN}`, "--force", "--json");
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ replaced: true, rolled: [], secret: { name: "gt-first", keys: ["EXTRA", "SHARED"] } });
  });

  it("refuses bad input with a clear message and exit code 2, never echoing a value", async () => {
    const unreadable = dotenv("unreadable.env", "A=1\n");
    chmodSync(unreadable, 0o000);
    const cases: Array<[string[], string]> = [
      [["secret", "create", "9lives", "A=1"], '"9lives" is not a secret name'],
      [["secret", "create", "s", "1A=x"], '"1A" is not a valid key'],
      [["secret", "create", "s", "GANTRY_TOKEN=x"], "key GANTRY_TOKEN starts with GANTRY_, which is reserved"],
      [["secret", "create", "s", "API_KEY"], 'API_KEY has no "=": write API_KEY=VALUE'],
      [["secret", "create", "s", "A=1", TOKEN], 'argument 3 has no "=": write each as KEY=VALUE'],
      [["secret", "create", "s", "A=1", "A=2"], "key A is given twice"],
      [["secret", "create", "s"], "secret s needs at least one KEY=VALUE (or --from-dotenv FILE)"],
      [["secret", "create", "s", "--from-dotenv", join(files, "missing.env")], `cannot read the dotenv file ${join(files, "missing.env")}: ENOENT`],
      [["secret", "create", "s", "--from-dotenv", dotenv("no-eq.env", `A=1\n\n${TOKEN}\n`)], `${join(files, "no-eq.env")}:3: expected KEY=VALUE`],
      [["secret", "create", "s", "--from-dotenv", dotenv("bad-key.env", "A=1\nB-C=2\n")], `${join(files, "bad-key.env")}:2: "B-C" is not a valid key`],
      [["secret", "create", "s", "--from-dotenv", dotenv("open.env", `A="${TOKEN}\nB=2\n`)], `${join(files, "open.env")}:1: the double-quoted value of A has no closing quote`],
      [["secret", "rm", "bad/name"], '"bad/name" is not a secret name'],
    ];
    if (process.getuid?.() !== 0) cases.push([["secret", "create", "s", "--from-dotenv", unreadable], "EACCES"]); // root reads any file
    for (const [args, message] of cases) {
      const r = await g(...args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`Error: ${message}`);
    }
    const json = await g("secret", "create", "s", "1A=x", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ error: { code: "usage", message: expect.stringContaining('"1A" is not a valid key') } });
    expect((await g("secret", "ls", "--json")).stdout).not.toContain('"s"');
  });

  it("deploy refuses an unknown secret; a deployed function sees the secret; rm refuses while it is used", async () => {
    const refused = await g("deploy", fixture("secrets.ts"));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("function secrets.env_digests uses secret gt-second, which does not exist: create it with gantry secret create gt-second KEY=VALUE");

    expect((await g("secret", "create", "gt-second", `TOKEN=${TOKEN}`)).code).toBe(0);
    const deployed = await g("deploy", fixture("secrets.ts"));
    expect(deployed.code, deployed.stderr).toBe(0);
    const called = await g("call", "secrets", "env_digests", '{"keys": ["TOKEN", "SHARED", "EXTRA"]}');
    expect(called.code, called.stderr).toBe(0);
    expect(JSON.parse(called.stdout)).toEqual({ TOKEN: sha(TOKEN), SHARED: sha("first"), EXTRA: sha(TOKEN) });

    const rotated = await g("secret", "create", "gt-second", `TOKEN=${TOKEN_V2}`, "--force");
    expect(rotated.stdout).toBe("replaced secret gt-second (keys: TOKEN)\ncontainers of secrets.env_digests restart to see it\n");
    expect(JSON.parse((await g("call", "secrets", "env_digests", '{"keys": ["TOKEN"]}')).stdout)).toEqual({ TOKEN: sha(TOKEN_V2) });
    expect((await g("secret", "ls")).stdout).toMatch(/^gt-second +TOKEN +secrets\.env_digests /m);

    const inUse = await g("secret", "rm", "gt-second");
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toContain("Error: secret gt-second is used by secrets.env_digests: their containers could not start without it.");
    expect(inUse.stderr).toContain("or remove it anyway with --force");
  });

  it("rm removes a secret; an unknown one exits 4", async () => {
    expect((await g("apps", "stop", "secrets")).code).toBe(0);
    const removed = await g("secret", "rm", "gt-second");
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe("removed secret gt-second\n");
    const again = await g("secret", "rm", "gt-second");
    expect(again.code).toBe(4);
    expect(again.stderr).toBe("Error: no secret named gt-second\n");
    expect(JSON.parse((await g("secret", "list", "--json")).stdout).map((s: SecretView) => s.name)).toEqual(["gt-first"]);
  });

  it("no value appears in the CLI's output, the daemon's log file or the app logs", () => {
    const daemonLog = readFileSync(join(home, "logs", "daemon.log"), "utf8");
    expect(daemonLog).toContain("secret replaced secret=gt-second");
    const appLogs = readdirSync(join(home, "logs", "apps")).map((f) => readFileSync(join(home, "logs", "apps", f), "utf8"));
    expect(appLogs.join("")).toContain("reading 3 variables");
    for (const text of [...outputs, daemonLog, ...appLogs]) for (const v of VALUES) expect(text).not.toContain(v);
  });
});
