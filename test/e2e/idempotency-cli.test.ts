import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gi-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
  const dep = await g("deploy", fixture("idempotency.ts"));
  expect(dep.code, dep.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop", "--grace", "2");
  rmSync(home, { recursive: true, force: true });
});

/** The calls of a function on record, as `gantry calls ls --json` lists them. */
async function callsOf(fn: string): Promise<string[]> {
  const ls = await g("calls", "ls", "--app", "idem", "--function", fn, "--json");
  expect(ls.code, ls.stderr).toBe(0);
  return (JSON.parse(ls.stdout) as Array<{ call_id: string }>).map((c) => c.call_id);
}

describe("gantry spawn/call --idempotency-key", () => {
  it("spawn prints the same call ID for a repeated key, and --json says replayed", async () => {
    const first = await g("spawn", "idem", "record", '{"n":1}', "--idempotency-key", "cli-order-1");
    expect(first.code, first.stderr).toBe(0);
    const id = first.stdout.trim();
    expect(id).toMatch(/^fc-[0-9a-z]{26}$/);
    expect(first.stderr).toBe("");

    const again = await g("spawn", "idem", "record", '{"n":2}', "--idempotency-key", "cli-order-1");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(id);
    expect(again.stderr).toContain(`the idempotency key already made call ${id}: nothing new was queued`);

    const json = await g("spawn", "idem", "record", '{"n":3}', "--idempotency-key", "cli-order-1", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ call_id: id, replayed: true });
    expect(await callsOf("record")).toEqual([id]);

    const got = await g("get", id, "--timeout", "30");
    expect(got.stdout.trim()).toBe('{"n":1}');
  });

  it("--json of a first spawn says replayed: false; call with a used key waits for the first call's result", async () => {
    const first = await g("spawn", "idem", "other", '"first"', "--idempotency-key", "cli-call", "--json");
    expect(first.code, first.stderr).toBe(0);
    const { call_id: id, replayed } = JSON.parse(first.stdout) as { call_id: string; replayed: boolean };
    expect(replayed).toBe(false);

    const called = await g("call", "idem", "other", '"second"', "--idempotency-key", "cli-call", "--json");
    expect(called.code, called.stderr).toBe(0);
    expect(JSON.parse(called.stdout)).toEqual({ call_id: id, replayed: true, result: "first" });
    const human = await g("call", "idem", "other", '"third"', "--idempotency-key", "cli-call");
    expect(human.stdout.trim()).toBe('"first"');
    expect(human.stderr).toContain(`call ${id} (made earlier with this idempotency key)`);
    expect(await callsOf("other")).toEqual([id]);
  });

  it("refuses a bad key as bad input (exit 2), naming the flag and the limit", async () => {
    const long = await g("spawn", "idem", "record", "1", "--idempotency-key", "k".repeat(256));
    expect(long.code).toBe(2);
    expect(long.stderr).toContain("--idempotency-key must be 1 to 255 characters; got 256");
    const tab = await g("spawn", "idem", "record", "1", "--idempotency-key", "a\tb");
    expect(tab.code).toBe(2);
    expect(tab.stderr).toContain("--idempotency-key must be printable ASCII");
  });
});
