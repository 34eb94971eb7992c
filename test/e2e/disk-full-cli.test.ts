/**
 * The daemon as `gantry daemon start` runs it, its log file on a GANTRY_HOME that fills up: the
 * daemon's own log lines cannot be written, and it stays up; the CLI says the disk is full.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "ge-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", home]);
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
  const dep = await g("deploy", fixture("faults.ts"));
  expect(dep.code, dep.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await g("daemon", "stop");
  execFileSync("umount", ["-l", home]);
  rmSync(home, { recursive: true, force: true });
});

describe("gantry with its home on a full disk", () => {
  it("keeps the daemon up while its log cannot be written; spawn says the disk is full; all resumes with room", { timeout: 120_000 }, async () => {
    const spawned = await g("spawn", "faults", "talk", '{"ms": 1000, "lines": 100}');
    expect(spawned.code, spawned.stderr).toBe(0);
    const talkId = spawned.stdout.trim();
    const fd = openSync(join(home, "filler"), "w");
    try {
      for (;;) writeSync(fd, Buffer.alloc(256 * 1024));
    } catch (err) {
      expect((err as { code?: string }).code).toBe("ENOSPC");
    } finally {
      closeSync(fd);
    }

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

    execFileSync("mount", ["-o", "remount,size=64m", home]);
    const got = await g("get", talkId, "--timeout", "60");
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ talked: 100 });
    const again = await g("call", "faults", "hold", "[0]");
    expect(again.code, again.stderr).toBe(0);
  });
});
