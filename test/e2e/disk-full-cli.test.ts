/**
 * The daemon as `gantry daemon start` runs it, its log file on a GANTRY_HOME that fills up: the
 * daemon's own log lines cannot be written, and it stays up; the CLI says the disk is full.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";
import { mountSmallDisk, type SmallDisk } from "../helpers/tmpfs.js";

let disk: SmallDisk;
let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  disk = mountSmallDisk("ge-full-", 24);
  home = disk.dir;
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
  const dep = await g("deploy", fixture("faults.ts"));
  expect(dep.code, dep.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await g("daemon", "stop");
  disk?.remove();
});

describe("gantry with its home on a full disk", () => {
  it("keeps the daemon up while its log cannot be written; spawn says the disk is full; all resumes with room", { timeout: 120_000 }, async () => {
    const spawned = await g("spawn", "faults", "talk", '{"ms": 1000, "lines": 100}');
    expect(spawned.code, spawned.stderr).toBe(0);
    const talkId = spawned.stdout.trim();
    disk.fill(); // throws unless the write stopped for want of space (ENOSPC)

    const pad = JSON.stringify({ ms: 0, lines: 0, pad: "x".repeat(100 * 1024) });
    let refused = null;
    for (let i = 0; i < 100 && !refused; i++) {
      const r = await g("spawn", "faults", "talk", pad);
      if (r.code !== 0) refused = r;
    }
    expect(refused, "a spawn was refused once the disk was full").not.toBeNull();
    expect(refused!.code).toBe(1);
    expect(refused!.stderr).toContain(`the disk holding ${home} is full`);
    // The daemon logged that (to a log file it cannot write) and answers still.
    const status = await g("daemon", "status");
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/running \(pid \d+\)/);

    disk.grow(64);
    const got = await g("get", talkId, "--timeout", "60");
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ talked: 100 });
    const again = await g("call", "faults", "hold", "[0]");
    expect(again.code, again.stderr).toBe(0);
  });
});
