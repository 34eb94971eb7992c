/**
 * `gantry dict` and `gantry queue` (issue 20) without a daemon: the verbs run in this process
 * against the in-memory stand-in for /v1/dicts and /v1/queues (test/helpers/dq-fake.ts), their
 * output, --json, exit codes, and what they ask of the daemon (peek takes nothing out). The real
 * binary against a real daemon is test/e2e/dq-cli.test.ts.
 */
import { Command } from "commander";
import type http from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseKey, registerDicts, wireText } from "../../cli/commands/dicts.js";
import { registerQueues } from "../../cli/commands/queues.js";
import { run } from "../../cli/runner.js";
import { GantryClient } from "../../sdk/client.js";
import { DEFAULT, keyOf, startFake, type Fake } from "../helpers/dq-fake.js";

let fake: Fake;
let server: http.Server;
let url: string;
let client: GantryClient;
beforeAll(async () => {
  ({ fake, server, url } = await startFake());
  client = new GantryClient({ url });
});
afterAll(async () => {
  client.close();
  await new Promise((r) => server.close(r));
});

/** Runs `gantry ARGS` in this process: its exit code, stdout and stderr. */
async function g(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command("gantry").option("--json").option("--verbose").option("--url <url>").exitOverride();
  registerDicts(program, run);
  registerQueues(program, run);
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true));
  const saved = process.exitCode;
  process.exitCode = 0;
  try {
    await program.parseAsync(["node", "gantry", "--url", url, ...args]);
    return { code: Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    process.exitCode = saved;
    out.mockRestore();
    err.mockRestore();
  }
}

describe("gantry dict", () => {
  it("ls lists dicts (ephemeral marked) and says how to make one when there is none", async () => {
    expect((await g("dict", "ls")).stdout).toMatch(/^no dicts: make one with client\.dicts\.fromName/);
    const d = await client.dicts.fromName("cache", { createIfMissing: true });
    await d.update({ a: 1, b: { x: [1, 2] } });
    await client.dicts.ephemeral();
    const ls = await g("dicts", "list");
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^NAME +ENTRIES +CREATED\ncache +2 +\ds ago\neph-1 \(ephemeral\) +0 +\ds ago\n$/);
    const json = JSON.parse((await g("dict", "ls", "--json")).stdout) as Array<{ name: string; len: number; ephemeral: boolean }>;
    expect(json.map((v) => [v.name, v.len, v.ephemeral])).toEqual([
      ["cache", 2, false],
      ["eph-1", 0, true],
    ]);
  });

  it("get prints a value as JSON, KEY read as JSON when it parses; a missing key or dict exits 4", async () => {
    expect(parseKey("1")).toBe(1);
    expect(parseKey('"1"')).toBe("1");
    expect(parseKey("[1,2]")).toEqual([1, 2]);
    expect(parseKey("plain text")).toBe("plain text");
    const d = await client.dicts.fromName("cache");
    await d.put(1, "number key");
    const b = await g("dict", "get", "cache", "b");
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toBe('{\n  "x": [\n    1,\n    2\n  ]\n}\n');
    expect((await g("dict", "get", "cache", "1")).stdout).toBe('"number key"\n');
    expect(JSON.parse((await g("dict", "get", "cache", "a", "--json")).stdout)).toEqual({ dict: "cache", key: "a", value: 1 });

    const missing = await g("dict", "get", "cache", '"1"');
    expect(missing).toMatchObject({ code: 4, stderr: 'Error: dict cache has no key "1"\n' });
    const noDict = await g("dict", "get", "nope", "a");
    expect(noDict).toMatchObject({ code: 4, stderr: "Error: no dict named nope\n" });
    expect(JSON.parse((await g("dict", "get", "nope", "a", "--json")).stdout)).toEqual({ error: { code: "not_found", message: "no dict named nope" } });
    const bad = await g("dict", "get", "bad/name", "a");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^Error: "bad\/name" is not a Dict name/);
  });

  it("items lists keys and values (pickled ones by size), up to --limit; get of a pickled value shows its size", async () => {
    const pickled = { pickled: Buffer.alloc(40, 1).toString("base64") };
    fake.dicts.get("cache")!.entries.set(keyOf({ value: "py" }), { key: { value: "py" }, value: pickled });
    const items = await g("dict", "items", "cache");
    expect(items.code, items.stderr).toBe(0);
    expect(items.stdout).toBe(['KEY   VALUE', '"a"   1', '"b"   {"x":[1,2]}', '1     "number key"', '"py"  <pickled 40 bytes>', ""].join("\n"));
    const limited = await g("dict", "items", "cache", "--limit", "2", "--json");
    expect(JSON.parse(limited.stdout)).toEqual([
      { key: "a", value: 1 },
      { key: "b", value: { x: [1, 2] } },
    ]);
    const withNote = await g("dict", "items", "cache", "--limit", "2");
    expect(withNote.stderr).toBe("showing the first 2 entries; --limit N shows more\n");
    const all = JSON.parse((await g("dict", "items", "cache", "--json")).stdout) as unknown[];
    expect(all.at(-1)).toEqual({ key: "py", value_pickled: pickled.pickled });
    expect((await g("dict", "get", "cache", "py")).stdout).toBe("<pickled 40 bytes>\n");
    expect(JSON.parse((await g("dict", "get", "cache", "py", "--json")).stdout)).toEqual({ dict: "cache", key: "py", value_pickled: pickled.pickled });
    expect(wireText({ value: "x".repeat(200) })).toHaveLength(80);
    const bad = await g("dict", "items", "cache", "--limit", "0");
    expect(bad).toMatchObject({ code: 2, stderr: 'Error: --limit must be a whole number ≥ 1, got "0"\n' });
    await client.dicts.fromName("void", { createIfMissing: true });
    expect((await g("dict", "items", "void")).stdout).toBe("dict void is empty\n");
  });

  it("clear empties a dict; delete asks for --yes without a terminal, then deletes (again: exit 4)", async () => {
    const cleared = await g("dict", "clear", "cache");
    expect(cleared).toMatchObject({ code: 0, stdout: "cleared dict cache (4 entries)\n" });
    expect(await (await client.dicts.fromName("cache")).len()).toBe(0);
    await (await client.dicts.fromName("cache")).put("k", "v");
    const unconfirmed = await g("dict", "delete", "cache");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toBe("Error: deleting dict cache and its 1 entry cannot be undone: pass --yes to confirm (there is no terminal to ask on)\n");
    const deleted = await g("dict", "delete", "cache", "--yes", "--json");
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ name: "cache", deleted: true });
    expect((await g("dict", "delete", "cache", "--yes")).code).toBe(4);
    expect((await g("dict", "delete", "cache")).code).toBe(4);
  });
});

describe("gantry queue", () => {
  it("ls lists queues with their items and partitions; len counts a partition or all", async () => {
    expect((await g("queue", "ls")).stdout).toMatch(/^no queues: make one with client\.queues\.fromName/);
    const q = await client.queues.fromName("jobs", { createIfMissing: true });
    await q.putMany([{ n: 1 }, { n: 2 }, "three"]);
    await q.put("side", { partition: "p" });
    const ls = await g("queues", "ls");
    expect(ls.stdout).toMatch(/^NAME +ITEMS +PARTITIONS +CREATED\njobs +4 +2 +\ds ago\n$/);
    expect(JSON.parse((await g("queue", "ls", "--json")).stdout)).toEqual([
      { name: "jobs", created_at: expect.any(String), ephemeral: false, expires_at: null, len: 4, partitions: 2 },
    ]);
    expect((await g("queue", "len", "jobs")).stdout).toBe("3\n");
    expect((await g("queue", "len", "jobs", "--partition", "p")).stdout).toBe("1\n");
    expect(JSON.parse((await g("queue", "len", "jobs", "--total", "--json")).stdout)).toEqual({ queue: "jobs", total: true, len: 4 });
    expect(await g("queue", "len", "jobs", "--total", "--partition", "p")).toMatchObject({ code: 2, stderr: "Error: give --partition or --total, not both\n" });
    const badPartition = await g("queue", "len", "jobs", "--partition", "x".repeat(65));
    expect(badPartition.code).toBe(2);
    expect(badPartition.stderr).toMatch(/is 65 bytes; at most 64 are allowed/);
    expect(await g("queue", "len", "nope")).toMatchObject({ code: 4, stderr: "Error: no queue named nope\n" });
  });

  it("peek prints the oldest items, one a line, taking none out; pickled ones by size", async () => {
    const one = await g("queue", "peek", "jobs");
    expect(one).toMatchObject({ code: 0, stdout: '{"n":1}\n' });
    expect((await g("queue", "peek", "jobs", "10")).stdout).toBe('{"n":1}\n{"n":2}\n"three"\n');
    expect(JSON.parse((await g("queue", "peek", "jobs", "2", "--json")).stdout)).toEqual([
      { seq: 1, value: { n: 1 } },
      { seq: 2, value: { n: 2 } },
    ]);
    expect((await g("queue", "peek", "jobs", "5", "--partition", "p")).stdout).toBe('"side"\n');
    expect((await g("queue", "peek", "jobs", "--partition", "none")).stdout).toBe('queue jobs (partition "none") is empty\n');
    expect(await (await client.queues.fromName("jobs")).len({ total: true })).toBe(4);
    expect(fake.requests.filter((r) => r.url.startsWith("/v1/queues/") && r.url.endsWith("/get"))).toEqual([]);
    expect(await g("queue", "peek", "jobs", "0")).toMatchObject({ code: 2, stderr: 'Error: N must be a whole number ≥ 1, got "0"\n' });

    fake.queues.get("jobs")!.partitions.get(DEFAULT)!.push({ seq: 99, value: { pickled: Buffer.alloc(7).toString("base64") } });
    expect((await g("queue", "peek", "jobs", "4")).stdout).toBe('{"n":1}\n{"n":2}\n"three"\n<pickled 7 bytes>\n');
    expect(JSON.parse((await g("queue", "peek", "jobs", "4", "--json")).stdout).at(-1)).toEqual({ seq: 99, value_pickled: "AAAAAAAAAA==" });

    // More than one page of items.
    const big = await client.queues.fromName("big", { createIfMissing: true });
    await big.putMany(Array.from({ length: 1500 }, (_, i) => i));
    const lines = (await g("queue", "peek", "big", "1200")).stdout.trim().split("\n");
    expect(lines.length).toBe(1200);
    expect(lines.at(-1)).toBe("1199");
  });

  it("clear takes --partition or --all; delete asks for --yes without a terminal", async () => {
    expect(await g("queue", "clear", "jobs", "--partition", "p", "--all")).toMatchObject({ code: 2, stderr: "Error: give --partition or --all, not both\n" });
    expect((await g("queue", "clear", "jobs", "--partition", "p")).stdout).toBe('cleared partition "p" of queue jobs (1 item)\n');
    expect((await g("queue", "len", "jobs", "--total")).stdout).toBe("4\n");
    expect((await g("queue", "clear", "jobs")).stdout).toBe("cleared the default partition of queue jobs (4 items)\n");
    expect((await g("queue", "len", "jobs", "--total")).stdout).toBe("0\n");
    await (await client.queues.fromName("jobs")).putMany([1, 2], { partition: "a" });
    expect(JSON.parse((await g("queue", "clear", "jobs", "--all", "--json")).stdout)).toEqual({ queue: "jobs", all: true, cleared: 2 });
    expect(fake.requests.at(-1)!.body).toEqual({ all: true });

    await (await client.queues.fromName("jobs")).putMany([1, 2], { partition: "a" });
    const unconfirmed = await g("queue", "delete", "jobs");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toBe("Error: deleting queue jobs and its 2 items in 1 partition cannot be undone: pass --yes to confirm (there is no terminal to ask on)\n");
    expect(await g("queue", "delete", "jobs", "-y")).toMatchObject({ code: 0, stdout: "deleted queue jobs\n" });
    expect((await g("queue", "delete", "jobs", "--yes")).code).toBe(4);
  });
});
