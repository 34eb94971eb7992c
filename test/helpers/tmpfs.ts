/**
 * A small disk of its own for a test (a tmpfs, so the test needs root, as the Docker tests do):
 * filled up to make writes fail for want of space, grown to give room again.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmallDisk {
  /** The folder the tmpfs is mounted on (mode 0700). */
  dir: string;
  /** Writes zeros to `dir/filler` until the tmpfs refuses more (ENOSPC). */
  fill(): void;
  /** Remounts it with more room; files stay. */
  grow(sizeMiB: number): void;
  /** Unmounts and removes it. */
  remove(): void;
}

export function mountSmallDisk(prefix: string, sizeMiB: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", dir]);
  return {
    dir,
    fill() {
      const fd = openSync(join(dir, "filler"), "w");
      const chunk = Buffer.alloc(256 * 1024);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOSPC") throw err;
      } finally {
        closeSync(fd);
      }
    },
    grow(size) {
      execFileSync("mount", ["-o", `remount,size=${size}m`, dir]);
    },
    remove() {
      execFileSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
