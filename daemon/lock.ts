import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";

/**
 * One daemon per GANTRY_HOME: a pid file created exclusively. A pid file left by a dead process
 * is replaced; a live one makes the second daemon refuse with a clear message.
 */
export function acquirePidLock(pidPath: string): () => void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(pidPath, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(pidPath, "utf8").trim() === String(process.pid)) unlinkSync(pidPath);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const seen = readFileSync(pidPath, "utf8");
      const pid = Number(seen.trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new Error(`another gantry daemon (pid ${pid}) already runs on this GANTRY_HOME (${pidPath}); stop it with: gantry daemon stop`);
      }
      // Stale: its process is gone. Re-read first, so a lock another starting daemon has just
      // taken in its place is not removed (the window left is a few microseconds).
      if (readFileSync(pidPath, "utf8") === seen) unlinkSync(pidPath);
    }
  }
  throw new Error(`could not take the daemon lock ${pidPath}`);
}

/** Whether a process runs; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (not Linux): trust kill(0)
  }
}
