/**
 * `gantry daemon start --durability` (issue 25) with the real CLI, daemon and Docker: relaxed
 * acknowledges writes once committed (the log synced within 50 ms), says so in /v1/health, and
 * runs calls end to end; a bad value is refused naming the two that are taken.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GantryClient } from "../../sdk/client.js";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gd-"));
  const started = await g("daemon", "start", "--container-network", "none", "--durability", "relaxed");
  expect(started.code, started.stderr).toBe(0);
  const dep = await g("deploy", fixture("prefetch.ts"));
  expect(dep.code, dep.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await g("daemon", "stop", "--grace", "2");
  rmSync(home, { recursive: true, force: true });
});

describe("gantry daemon start --durability", () => {
  it("relaxed: says so in /v1/health and runs calls end to end (map, spawn and get)", async () => {
    const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
    try {
      expect(await client.transport.json<{ durability: string }>("GET", "/v1/health")).toMatchObject({ durability: "relaxed" });
      const step = await client.functions.fromName("prefetch", "step");
      const out: unknown[] = [];
      for await (const r of step.map([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])) out.push((r as { ms: number }).ms);
      expect(out).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      client.close();
    }
    const id = (await g("spawn", "prefetch", "step", "3")).stdout.trim();
    const got = await g("get", id, "--timeout", "60");
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ ms: 3 });
  }, 120_000);

  it("refuses a value other than full or relaxed, naming both", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "gd-bad-"));
    try {
      const started = await gantry(elsewhere, ["daemon", "start", "--durability", "sometimes"]);
      expect(started.code).toBe(2);
      expect(started.stderr).toMatch(/--durability="sometimes": give full \(a write is acknowledged once on disk, the default\) or relaxed/);
      const byEnv = await gantry(elsewhere, ["daemon", "start"], { GANTRY_DURABILITY: "off" });
      expect(byEnv.code).toBe(2);
      expect(byEnv.stderr).toMatch(/GANTRY_DURABILITY="off": give full/);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
