import { afterEach, beforeEach, describe, it, expect } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquirePidLock, isAlive } from "../../daemon/lock.js";

let dir: string;
let pidPath: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-lock-test-"));
  pidPath = join(dir, "daemon.pid");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited (spawned synchronously, so it is gone and reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "0"]);
  expect(child.status).toBe(0);
  return child.pid;
}

describe("acquirePidLock", () => {
  it("creates the pid file with this process's pid, readable by the owner only", () => {
    const release = acquirePidLock(pidPath);
    expect(readFileSync(pidPath, "utf8")).toBe(`${process.pid}\n`);
    expect(statSync(pidPath).mode & 0o077).toBe(0);
    release();
  });

  it("refuses while another live process holds the lock, naming its pid and how to stop it", () => {
    // a second daemon: a live process whose pid is in the file
    const other = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
    try {
      const otherPid = other.pid!;
      expect(isAlive(otherPid)).toBe(true);
      writeFileSync(pidPath, `${otherPid}\n`);

      expect(() => acquirePidLock(pidPath)).toThrow(`another gantry daemon (pid ${otherPid}) already runs`);
      expect(() => acquirePidLock(pidPath)).toThrow("gantry daemon stop");
      expect(readFileSync(pidPath, "utf8")).toBe(`${otherPid}\n`); // left alone
    } finally {
      other.kill();
    }
  });

  it("replaces a stale pid file left by a dead process", () => {
    const pid = deadPid();
    expect(isAlive(pid)).toBe(false);
    writeFileSync(pidPath, `${pid}\n`);

    const release = acquirePidLock(pidPath);
    expect(readFileSync(pidPath, "utf8")).toBe(`${process.pid}\n`);
    release();
  });

  it("replaces an empty or garbled pid file", () => {
    for (const content of ["", "not a pid\n"]) {
      writeFileSync(pidPath, content);
      const release = acquirePidLock(pidPath);
      expect(readFileSync(pidPath, "utf8")).toBe(`${process.pid}\n`);
      release();
    }
  });

  it("release removes the file, and can run twice", () => {
    const release = acquirePidLock(pidPath);
    release();
    expect(existsSync(pidPath)).toBe(false);
    expect(() => release()).not.toThrow();
  });

  it("the lock can be taken again after release", () => {
    acquirePidLock(pidPath)();
    const release = acquirePidLock(pidPath);
    expect(existsSync(pidPath)).toBe(true);
    release();
    expect(existsSync(pidPath)).toBe(false);
  });

  it("release leaves a pid file that now belongs to another process", () => {
    const release = acquirePidLock(pidPath);
    writeFileSync(pidPath, "999999999\n");
    release();
    expect(readFileSync(pidPath, "utf8")).toBe("999999999\n");
  });

  it("fails with the file system's error when the directory does not exist", () => {
    expect(() => acquirePidLock(join(dir, "missing", "daemon.pid"))).toThrow(/ENOENT/);
  });
});

describe("isAlive", () => {
  it("is true for this process and false for an exited one", () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(deadPid())).toBe(false);
  });
});
