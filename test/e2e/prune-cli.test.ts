/**
 * Expiry and the history window (issue 22) with the real daemon, CLI binary and Docker: an expired
 * call's input, result and items are gone from gantry.db as the sqlite3 CLI reads it, and
 * `gantry calls prune` deletes finished calls whose results expired, saying what it removed.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { GantryClient } from "../../sdk/client.js";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

const execFileP = promisify(execFile);
let home: string;
const g = (...args: string[]) => gantry(home, args);

/** A query of gantry.db through the sqlite3 CLI, beside the running daemon. */
async function sql(query: string): Promise<string> {
  const { stdout } = await execFileP("/usr/bin/sqlite3", [join(home, "gantry.db"), query]);
  return stdout.trim();
}

async function spawn(fn: string, marker: string): Promise<string> {
  const r = await g("spawn", "hist", fn, JSON.stringify(marker));
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** Waits (with a deadline) until `gantry get` says the call's result expired (exit 7). */
async function expiredSoon(id: string): Promise<void> {
  await vi.waitFor(async () => expect((await g("get", id)).code).toBe(7), { timeout: 30_000, interval: 250 });
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gp-"));
  const started = await g("daemon", "start", "--container-network", "none", "--history", "0.5");
  expect(started.code, started.stderr).toBe(0);
  const dep = await g("deploy", fixture("history.ts"));
  expect(dep.code, dep.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await g("daemon", "stop", "--grace", "2");
  rmSync(home, { recursive: true, force: true });
});

describe("expiry and gantry calls prune", () => {
  const marker = randomBytes(6).toString("hex");
  let briefId = "";
  let keptId = "";

  it("an expired call's input, result and items are gone from the database; an unexpired one's are whole", async () => {
    briefId = await spawn("brief", `IN-${marker}`);
    keptId = await spawn("kept", `KEEP-${marker}`);
    expect((await g("get", keptId, "--timeout", "60")).stdout.trim()).toBe(JSON.stringify(`OUT-KEEP-${marker}`));
    const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
    const items: unknown[] = [];
    const gen = await client.functions.fromName("hist", "briefItems");
    for await (const item of gen.remoteGen(`GEN-${marker}`)) items.push(item);
    client.close();
    expect(items).toEqual([`ITEM-GEN-${marker}`]);
    const genId = await sql(`SELECT id FROM calls WHERE function = 'briefItems'`);

    await expiredSoon(briefId);
    await vi.waitFor(async () => expect(await sql(`SELECT expired FROM calls WHERE id = '${genId}'`)).toBe("1"), { timeout: 30_000, interval: 250 });

    expect(await sql(`SELECT quote(input) || ' ' || quote(result) || ' ' || expired FROM calls WHERE id = '${briefId}'`)).toBe("'' NULL 1");
    expect(await sql(`SELECT count(*) FROM call_items WHERE call_id = '${genId}'`)).toBe("0");
    expect(await sql(`SELECT count(*) FROM calls WHERE input LIKE '%IN-${marker}%' OR result LIKE '%IN-${marker}%' OR input LIKE '%GEN-${marker}%'`)).toBe("0");
    // The call still answers, as expired (404 output_expired on /result, exit 7 here).
    const shown = await g("calls", "show", briefId, "--json");
    expect(JSON.parse(shown.stdout)).toMatchObject({ call_id: briefId, status: "succeeded", expired: true });
    expect(JSON.parse(shown.stdout).input).toBeUndefined();
    // Not expired yet: whole.
    expect(await sql(`SELECT input || ' ' || result FROM calls WHERE id = '${keptId}'`)).toBe(`["KEEP-${marker}"] "OUT-KEEP-${marker}"`);
  }, 120_000);

  it("gantry calls prune deletes finished calls whose results expired, reports it, and keeps the rest", async () => {
    expect(briefId).not.toBe("");
    const pruned = await g("calls", "prune", "--older-than-days", "0");
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/^pruned 2 calls that finished before \S+ \(older than 0 days, results expired\), 0 attempts, 0 items, 0 idempotency keys: \d+ B of stored values$/m);
    expect(pruned.stdout).toMatch(/^database [\d.]+ (B|KiB|MiB) → [\d.]+ (B|KiB|MiB) \(\d+ pages handed back\) in [\d.]+ s$/m);
    expect(pruned.stderr).toMatch(/pruning: 2 calls/); // progress (a plain line when stderr is not a terminal)

    expect(await sql(`SELECT count(*) FROM calls WHERE id = '${briefId}'`)).toBe("0");
    expect(await sql(`SELECT count(*) FROM calls WHERE function = 'briefItems'`)).toBe("0");
    expect(await sql(`SELECT count(*) FROM calls WHERE id = '${keptId}'`)).toBe("1"); // its result has not expired
    expect((await g("get", briefId)).code).toBe(4); // no such call any more
    expect((await g("get", keptId)).code).toBe(0);

    // The daemon's --history window is the default; nothing is left to prune.
    const again = await g("calls", "prune", "--json");
    expect(again.code, again.stderr).toBe(0);
    const report = JSON.parse(again.stdout);
    expect(report).toMatchObject({ calls: 0, attempts: 0, older_than_days: 0.5, incremental_vacuum: true, interrupted: false });
    expect(report.db_bytes_after).toBeGreaterThan(0);
    expect(again.stderr).toBe("");
  }, 60_000);

  it("refuses a bad --older-than-days, older_than_days and --history, naming the limit", async () => {
    for (const bad of ["-1", "x", "40000"]) {
      const r = await g("calls", "prune", "--older-than-days", bad);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--older-than-days must be a number of days from 0 to 36500");
    }
    // The route refuses them too, with a 400 before any prune starts.
    const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
    try {
      for (const [body, message] of [
        [{ older_than_days: -1 }, "older_than_days must be a number of days from 0 to 36500, got -1"],
        [{ older_than_days: "7" }, 'older_than_days must be a number of days from 0 to 36500, got "7"'],
        [{ days: 7 }, 'unknown field "days": the body takes older_than_days only'],
      ] as const) {
        await expect(client.transport.stream("POST", "/v1/calls/prune", body, () => undefined)).rejects.toMatchObject({ code: "invalid_argument", message });
      }
    } finally {
      client.close();
    }
    const elsewhere = mkdtempSync(join(tmpdir(), "gp-bad-"));
    const started = await gantry(elsewhere, ["daemon", "start", "--history", "0"]);
    rmSync(elsewhere, { recursive: true, force: true });
    expect(started.code).toBe(2);
    expect(started.stderr).toMatch(/--history="0": give the days finished calls are kept, a number above 0 and at most 36500/);
  });
});
