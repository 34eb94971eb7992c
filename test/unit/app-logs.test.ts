import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppLogs, DEFAULT_LOG_ROTATION } from "../../daemon/service/app-logs.js";
import { EventBus } from "../../daemon/service/event-bus.js";

const BASE = Date.parse("2026-01-01T00:00:00.000Z");
const ts = (i: number) => new Date(BASE + i * 1000).toISOString();

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gt-logs-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Publishes lines `from` to `to - 1` of app "a" (about 100 bytes a line in the file). */
function publish(bus: EventBus, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    bus.publish({ type: "log", app: "a", function: "f", container_id: "ct-1", stream: "stdout", line: `line ${String(i).padStart(4, "0")} ${"x".repeat(30)}`, ts: ts(i) });
  }
}

/** The numbers of the lines in one file, in order. */
const numbersIn = (path: string) => [...readFileSync(path, "utf8").matchAll(/line (\d{4})/g)].map((m) => Number(m[1]));

describe("AppLogs rotation", () => {
  it("defaults to 50 MiB a file and 5 files per app", () => {
    expect(DEFAULT_LOG_ROTATION).toEqual({ maxBytes: 50 * 1024 * 1024, maxFiles: 5 });
  });

  it("rotates a file before it passes its size cap, keeps maxFiles in all and deletes the oldest", async () => {
    const bus = new EventBus();
    const logs = new AppLogs(dir, bus, undefined, { maxBytes: 1000, maxFiles: 3 });
    publish(bus, 0, 100);
    await logs.close();
    const path = join(dir, "a.log");
    expect([path, `${path}.1`, `${path}.2`].map(existsSync)).toEqual([true, true, true]);
    expect(existsSync(`${path}.3`)).toBe(false);
    for (const p of [path, `${path}.1`, `${path}.2`]) expect(statSync(p).size).toBeLessThanOrEqual(1000);
    // Oldest first across the files: one unbroken run that ends with the newest line; the first lines are gone.
    const kept = [...numbersIn(`${path}.2`), ...numbersIn(`${path}.1`), ...numbersIn(path)];
    expect(kept.at(-1)).toBe(99);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 100 - kept.length + i));
    expect(kept.length).toBeGreaterThan(20);
    expect(kept).not.toContain(0);
  });

  it("tail() reads back through the rotated files, and from `since` on", async () => {
    const bus = new EventBus();
    const logs = new AppLogs(dir, bus, undefined, { maxBytes: 1000, maxFiles: 3 });
    publish(bus, 0, 100);
    await logs.close();
    const current = numbersIn(join(dir, "a.log")).length;
    const all = await logs.tail("a", 100_000);
    expect(all.length).toBeGreaterThan(current); // more than the current file holds
    expect(all.at(-1)).toMatchObject({ type: "log", app: "a", function: "f", stream: "stdout", ts: ts(99) });
    const nums = all.map((e) => Number(/line (\d{4})/.exec(e.line)![1]));
    expect(nums).toEqual(Array.from({ length: nums.length }, (_, i) => 100 - nums.length + i));
    expect((await logs.tail("a", 5)).map((e) => e.ts)).toEqual([95, 96, 97, 98, 99].map(ts));
    const since = await logs.tail("a", 100_000, undefined, undefined, ts(90));
    expect(since.map((e) => e.ts)).toEqual(Array.from({ length: 10 }, (_, i) => ts(90 + i)));
    expect(await logs.tail("a", 100, "other-fn")).toEqual([]);
    expect(await logs.tail("nothing-here", 100)).toEqual([]);
  });

  it("rotates a file left over a restart that is already past its cap before writing to it", async () => {
    const path = join(dir, "a.log");
    writeFileSync(path, `${ts(0)} f ct-0 - stdout: old ${"o".repeat(2000)}\n`);
    const bus = new EventBus();
    const logs = new AppLogs(dir, bus, undefined, { maxBytes: 1000, maxFiles: 2 });
    publish(bus, 1, 3);
    await logs.close();
    expect(numbersIn(path)).toEqual([1, 2]);
    expect(readFileSync(`${path}.1`, "utf8")).toContain("old o");
  });

  it("with one file kept, starts the file afresh when it is full", async () => {
    const bus = new EventBus();
    const logs = new AppLogs(dir, bus, undefined, { maxBytes: 500, maxFiles: 1 });
    publish(bus, 0, 30);
    await logs.close();
    const path = join(dir, "a.log");
    expect(statSync(path).size).toBeLessThanOrEqual(500);
    expect(numbersIn(path).at(-1)).toBe(29);
    expect(existsSync(`${path}.1`)).toBe(false);
  });
});
