/**
 * `gantry dict ls|get|items|clear|delete` and `gantry queue ls|len|peek|clear|delete` as a user
 * drives them (issue 20), against a daemon the CLI started: what the TypeScript SDK put (and a
 * Python program's pickled value, written as the Python client sends it) shown as JSON, --json,
 * peek taking nothing out, partitions, ephemeral ones marked, clear errors and exit codes, delete
 * confirmed with --yes, and a deployed function filling a Queue and a Dict from its container.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DictView, QueueView } from "../../protocol/dicts-queues.js";
import { GantryClient } from "../../sdk/client.js";
import { gantry, type CliResult } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
let client: GantryClient;
const g = (...args: string[]): Promise<CliResult> => gantry(home, args);
/** A Python value as the Python client sends it (the pickle of a set, say): bytes the daemon never unpickles. */
const PICKLED = Buffer.from("80049510000000000000008f94284b014b024b03902e", "hex").toString("base64");

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gdq-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
  client = new GantryClient({ socketPath: join(home, "gantry.sock") });
});
afterAll(async () => {
  client?.close();
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("gantry dict", () => {
  it("ls says how to make one when there is none, then lists them: entries, age, ephemeral ones marked", async () => {
    const empty = await g("dict", "ls");
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toMatch(/^no dicts: make one with client\.dicts\.fromName\(NAME, \{ createIfMissing: true \}\)/);

    const d = await client.dicts.fromName("gt-dict", { createIfMissing: true });
    expect(await d.update({ a: 1, b: { x: [1, 2] } })).toBe(2);
    expect(await d.put(1, "number key")).toBe(true);
    const eph = await client.dicts.ephemeral();

    const ls = await g("dicts", "ls");
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^NAME +ENTRIES +CREATED$/m);
    expect(ls.stdout).toMatch(/^gt-dict +3 +\d+s ago$/m);
    expect(ls.stdout).toContain(`${eph.name} (ephemeral)`);
    const json = JSON.parse((await g("dict", "ls", "--json")).stdout) as DictView[];
    expect(json.find((v) => v.name === "gt-dict")).toEqual({ name: "gt-dict", created_at: expect.any(String), ephemeral: false, expires_at: null, len: 3 });
    expect(json.find((v) => v.name === eph.name)).toMatchObject({ ephemeral: true, expires_at: expect.any(String) });

    await eph.closeEphemeral();
    expect((await g("dict", "ls")).stdout).not.toContain(eph.name);
  });

  it("get prints a value as JSON, KEY read as JSON when it parses; missing keys and dicts exit 4, bad names 2", async () => {
    const b = await g("dict", "get", "gt-dict", "b");
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toEqual({ x: [1, 2] });
    expect((await g("dict", "get", "gt-dict", "1")).stdout).toBe('"number key"\n');
    expect(JSON.parse((await g("dict", "get", "gt-dict", "a", "--json")).stdout)).toEqual({ dict: "gt-dict", key: "a", value: 1 });

    const cases: Array<[string[], number, RegExp]> = [
      [["dict", "get", "gt-dict", '"1"'], 4, /^Error: dict gt-dict has no key "1"$/m],
      [["dict", "get", "nope", "a"], 4, /^Error: .*nope/],
      [["dict", "items", "nope"], 4, /^Error: .*nope/],
      [["dict", "clear", "nope"], 4, /^Error: .*nope/],
      [["dict", "get", "bad/name", "a"], 2, /^Error: "bad\/name" is not a Dict name/],
      [["dict", "items", "gt-dict", "--limit", "0"], 2, /^Error: --limit must be a whole number ≥ 1, got "0"$/m],
    ];
    for (const [args, code, message] of cases) {
      const r = await g(...args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    const json = await g("dict", "get", "nope", "a", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ error: { code: "not_found", message: expect.stringContaining("nope") } });
  });

  it("items lists keys and values oldest write first, a Python program's pickled value by its size, up to --limit", async () => {
    await client.transport.json("POST", "/v1/dicts/gt-dict/put", { key: { value: "py" }, value: { pickled: PICKLED } });
    const items = await g("dict", "items", "gt-dict");
    expect(items.code, items.stderr).toBe(0);
    expect(items.stdout).toBe(['KEY   VALUE', '"a"   1', '"b"   {"x":[1,2]}', '1     "number key"', `"py"  <pickled ${Buffer.from(PICKLED, "base64").length} bytes>`, ""].join("\n"));
    expect(JSON.parse((await g("dict", "items", "gt-dict", "--json")).stdout)).toEqual([
      { key: "a", value: 1 },
      { key: "b", value: { x: [1, 2] } },
      { key: 1, value: "number key" },
      { key: "py", value_pickled: PICKLED },
    ]);
    const limited = await g("dict", "items", "gt-dict", "--limit", "2");
    expect(limited.stdout.trim().split("\n")).toHaveLength(3);
    expect(limited.stderr).toBe("showing the first 2 entries; --limit N shows more\n");
    expect(JSON.parse((await g("dict", "get", "gt-dict", "py", "--json")).stdout)).toEqual({ dict: "gt-dict", key: "py", value_pickled: PICKLED });
  });

  it("clear empties it; delete asks for --yes without a terminal, then deletes it; again: exit 4", async () => {
    const cleared = await g("dict", "clear", "gt-dict");
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toBe("cleared dict gt-dict (4 entries)\n");
    expect((await g("dict", "items", "gt-dict")).stdout).toBe("dict gt-dict is empty\n");

    await (await client.dicts.fromName("gt-dict")).put("k", "v");
    const unconfirmed = await g("dict", "delete", "gt-dict");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toBe("Error: deleting dict gt-dict and its 1 entry cannot be undone: pass --yes to confirm (there is no terminal to ask on)\n");
    const deleted = await g("dict", "delete", "gt-dict", "--yes", "--json");
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ name: "gt-dict", deleted: true });
    expect((await g("dict", "delete", "gt-dict", "--yes")).code).toBe(4);
  });
});

describe("gantry queue", () => {
  it("ls lists queues with their items and partitions; len counts a partition, or all with --total", async () => {
    const empty = await g("queue", "ls");
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toMatch(/^no queues: make one with client\.queues\.fromName/);

    const q = await client.queues.fromName("gt-q", { createIfMissing: true });
    await q.putMany([{ n: 1 }, { n: 2 }, "three"]);
    await q.put("side", { partition: "p" });
    const ls = await g("queues", "ls");
    expect(ls.stdout).toMatch(/^NAME +ITEMS +PARTITIONS +CREATED$/m);
    expect(ls.stdout).toMatch(/^gt-q +4 +2 +\d+s ago$/m);
    expect(JSON.parse((await g("queue", "ls", "--json")).stdout)).toEqual([
      { name: "gt-q", created_at: expect.any(String), ephemeral: false, expires_at: null, len: 4, partitions: 2 },
    ]);
    expect((await g("queue", "len", "gt-q")).stdout).toBe("3\n");
    expect((await g("queue", "len", "gt-q", "--partition", "p")).stdout).toBe("1\n");
    expect((await g("queue", "len", "gt-q", "--partition", "never-used")).stdout).toBe("0\n");
    expect(JSON.parse((await g("queue", "len", "gt-q", "--total", "--json")).stdout)).toEqual({ queue: "gt-q", total: true, len: 4 });
  });

  it("peek prints the oldest items as JSON, one a line, and takes none out", async () => {
    const one = await g("queue", "peek", "gt-q");
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe('{"n":1}\n');
    expect((await g("queue", "peek", "gt-q", "10")).stdout).toBe('{"n":1}\n{"n":2}\n"three"\n');
    const json = JSON.parse((await g("queue", "peek", "gt-q", "2", "--json")).stdout) as Array<{ seq: number; value: unknown }>;
    expect(json.map((i) => i.value)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(json[0]!.seq).toBeLessThan(json[1]!.seq);
    expect((await g("queue", "peek", "gt-q", "5", "--partition", "p")).stdout).toBe('"side"\n');
    expect((await g("queue", "peek", "gt-q", "--partition", "none")).stdout).toBe('queue gt-q (partition "none") is empty\n');
    expect((await g("queue", "len", "gt-q", "--total")).stdout).toBe("4\n");

    await client.transport.json("POST", "/v1/queues/gt-q/put", { values: [{ pickled: PICKLED }], partition: "py" });
    expect((await g("queue", "peek", "gt-q", "--partition", "py")).stdout).toBe(`<pickled ${Buffer.from(PICKLED, "base64").length} bytes>\n`);
    expect(JSON.parse((await g("queue", "peek", "gt-q", "--partition", "py", "--json")).stdout)).toEqual([{ seq: expect.any(Number), value_pickled: PICKLED }]);
  });

  it("refuses what it cannot do, with exit codes", async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [["queue", "len", "gt-q", "--total", "--partition", "p"], 2, /^Error: give --partition or --total, not both$/m],
      [["queue", "clear", "gt-q", "--all", "--partition", "p"], 2, /^Error: give --partition or --all, not both$/m],
      [["queue", "peek", "gt-q", "0"], 2, /^Error: N must be a whole number ≥ 1, got "0"$/m],
      [["queue", "len", "gt-q", "--partition", "x".repeat(65)], 2, /is 65 bytes; at most 64 are allowed/],
      [["queue", "len", "bad/name"], 2, /^Error: "bad\/name" is not a Queue name/],
      [["queue", "len", "nope"], 4, /^Error: .*nope/],
      [["queue", "peek", "nope"], 4, /^Error: .*nope/],
      [["queue", "delete", "nope", "--yes"], 4, /^Error: .*nope/],
    ];
    for (const [args, code, message] of cases) {
      const r = await g(...args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
  });

  it("a deployed function fills a queue and a dict from its container; the CLI sees what it put", async () => {
    const deployed = await g("deploy", fixture("dq-cli.ts"));
    expect(deployed.code, deployed.stderr).toBe(0);
    const called = await g("call", "dqcli", "produce", JSON.stringify({ queue: "gt-q", dict: "gt-fn-dict", n: 3 }), "--json");
    expect(called.code, called.stderr).toBe(0);
    expect(JSON.parse(called.stdout).result).toEqual({ first: { job: 0 }, left: 2 });
    expect((await g("queue", "peek", "gt-q", "5", "--partition", "from-fn")).stdout).toBe('{"job":1}\n{"job":2}\n');
    expect(JSON.parse((await g("dict", "get", "gt-fn-dict", "from-fn", "--json")).stdout)).toEqual({ dict: "gt-fn-dict", key: "from-fn", value: { n: 3 } });
    expect((await g("apps", "stop", "dqcli")).code).toBe(0);
  });

  it("clear empties a partition, the default one, or all; delete asks for --yes, then deletes", async () => {
    const part = await g("queue", "clear", "gt-q", "--partition", "p");
    expect(part.code, part.stderr).toBe(0);
    expect(part.stdout).toBe('cleared partition "p" of queue gt-q (1 item)\n');
    expect((await g("queue", "len", "gt-q", "--partition", "p")).stdout).toBe("0\n");
    expect((await g("queue", "clear", "gt-q")).stdout).toBe("cleared the default partition of queue gt-q (3 items)\n");
    expect((await g("queue", "len", "gt-q")).stdout).toBe("0\n");
    expect((await g("queue", "len", "gt-q", "--total")).stdout).toBe("3\n"); // py's 1 and from-fn's 2
    expect(JSON.parse((await g("queue", "clear", "gt-q", "--all", "--json")).stdout)).toEqual({ queue: "gt-q", all: true, cleared: 3 });
    expect((await g("queue", "len", "gt-q", "--total")).stdout).toBe("0\n");

    await (await client.queues.fromName("gt-q")).putMany([1, 2], { partition: "a" });
    const unconfirmed = await g("queue", "delete", "gt-q");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toBe("Error: deleting queue gt-q and its 2 items in 1 partition cannot be undone: pass --yes to confirm (there is no terminal to ask on)\n");
    const deleted = await g("queue", "delete", "gt-q", "--yes", "--json");
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ name: "gt-q", deleted: true });
    expect(JSON.parse((await g("queue", "ls", "--json")).stdout)).toEqual([]);
    expect((await g("queue", "delete", "gt-q", "--yes")).code).toBe(4);
  });
});
