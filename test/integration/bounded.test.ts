/**
 * Bounded memory and disk (issue 22): a log follower that never reads is cut off instead of
 * buffered, while one that reads gets every line; app log files rotate under their cap; Docker's
 * own container logs are capped; a container with this daemon's label that it does not know is
 * removed by the periodic sweep, and one of another daemon is left alone.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { createInterface } from "node:readline";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { containersOf, deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const MiB = 1024 * 1024;
const LOG_CAP = 4 * MiB;
const LOG_FILES = 3;

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ logMaxBytes: LOG_CAP, logMaxFiles: LOG_FILES, leftoverSweepMs: 200, leftoverMarginMs: 1000 });
  await deploy(t, fixture("bounded.ts"));
}, 180_000);
afterAll(async () => {
  await t?.dispose();
});

const sock = () => join(t.home, "gantry.sock");

/** A follower on the unix socket that takes its answer's head, then reads nothing until `drain()`. */
async function stalledFollower(path: string) {
  const s = net.connect({ path: sock() });
  s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  const head = await new Promise<string>((resolve, reject) => {
    s.once("data", (d) => {
      s.pause();
      resolve(d.toString("latin1"));
    });
    s.once("error", reject);
  });
  let text = head;
  let received = head.length;
  const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
  return {
    head,
    /** Reads the rest of the answer to its end: what it held, its last line, the close. */
    async drain(): Promise<{ received: number; tail: string }> {
      s.on("data", (d: Buffer) => {
        received += d.length;
        text = (text + d.toString("latin1")).slice(-4096);
      });
      s.resume();
      await closed;
      return { received, tail: text };
    },
  };
}

/**
 * A follower in a process of its own (as a real client is: the daemon here runs in this test's
 * process), reading as lines come: it reports the bytes it has read, then, once it has `lines`
 * lines or its answer ends, its line count and the answer's last 1000 bytes.
 */
function readingFollower(path: string, want: number) {
  const script = `
    const http = require("node:http");
    let bytes = 0, lines = 0, last = Buffer.alloc(0), told = 0;
    const done = () => { console.log("end " + JSON.stringify({ lines, bytes, last: last.toString("latin1") })); process.exit(0); };
    http.get({ socketPath: process.argv[1], path: process.argv[2] }, (res) => {
      console.log("ready");
      res.on("data", (d) => {
        bytes += d.length;
        for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
        last = Buffer.concat([last, d.subarray(-1000)]).subarray(-1000);
        if (bytes - told > 4 * 1024 * 1024) { told = bytes; console.log("bytes " + bytes); }
        if (lines >= Number(process.argv[3])) done();
      });
      res.on("end", done);
    });
    process.stdin.on("end", done).resume();
  `;
  const child = spawn(process.execPath, ["-e", script, sock(), path, String(want)], { stdio: ["pipe", "pipe", "inherit"] });
  let onBytes: (n: number) => void = () => undefined;
  let listening!: () => void;
  let finished!: (r: { lines: number; bytes: number; last: string }) => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const result = new Promise<{ lines: number; bytes: number; last: string }>((resolve) => (finished = resolve));
  createInterface({ input: child.stdout! }).on("line", (l) => {
    if (l === "ready") listening();
    else if (l.startsWith("bytes ")) onBytes(Number(l.slice(6)));
    else if (l.startsWith("end ")) finished(JSON.parse(l.slice(4)));
  });
  return {
    ready,
    onBytes: (f: (n: number) => void) => (onBytes = f),
    /** What it read, once it has all it wants or its answer ended. */
    result,
    /** Stops it now. */
    stop: () => child.stdin!.end(),
  };
}

describe("log followers", () => {
  it("one that reads gets every line of a steady stream (32 MiB in 64 KiB lines, 20 MiB/s at most)", async () => {
    const reader = readingFollower("/v1/apps/bounded/logs?function=flood&follow=1&tail=0", 512);
    await reader.ready;
    try {
      expect(await (await t.client.functions.fromName("bounded", "flood")).remote(32, 50)).toEqual({ lines: 512 });
    } catch (err) {
      reader.stop();
      throw err;
    }
    const read = await reader.result;
    expect(read.last).not.toContain(`"cut_off"`);
    expect(read.lines).toBe(512);
  }, 120_000);

  it("one that never reads is cut off with a last line saying why, and the daemon's memory stays bounded (200 MB of logs)", async () => {
    const stalled = await stalledFollower("/v1/apps/bounded/logs?function=flood&follow=1&tail=0");
    expect(stalled.head).toMatch(/^HTTP\/1\.1 200/);
    // Once a reading follower has taken three times the bound, the stalled one must have been cut off: read what it got then.
    const reader = readingFollower("/v1/apps/bounded/logs?function=flood&follow=1&tail=0", 3200);
    let drained: Promise<{ received: number; tail: string }> | null = null;
    reader.onBytes((n) => {
      if (n > 24 * MiB) drained ??= stalled.drain();
    });
    await reader.ready;
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
    try {
      expect(await (await t.client.functions.fromName("bounded", "flood")).remote(200, 0)).toEqual({ lines: 3200 });
    } catch (err) {
      reader.stop();
      throw err;
    } finally {
      clearInterval(sampler);
    }
    drained ??= stalled.drain(); // the reader was itself cut off before 24 MiB
    // 200 MB went through the daemon (this process) in seconds; it held little of it at any time.
    expect((peak - base) / MiB).toBeLessThan(120);
    // The stalled follower got at most what it held when cut off, its answer ended with the reason, and the connection closed.
    const got = await drained;
    expect(got.received).toBeLessThan(24 * MiB);
    expect(got.tail).toContain(`"type":"cut_off"`);
    expect(got.tail).toContain(`"reason":"client_too_slow"`);
    expect(got.tail).toMatch(/reconnect with since=\d{4}-\d\d-\d\dT/);
    expect(got.tail).toMatch(/\r\n0\r\n\r\n$/); // the chunked answer's proper end
    // A flood this fast outruns even a reading client (the daemon sends a socket's buffer per turn while
    // it takes in more): it may be cut off too, but never loses lines silently.
    const read = await reader.result;
    expect(read.lines).toBeGreaterThan(0);
    if (read.lines < 3200) expect(read.last).toContain(`"type":"cut_off"`);
  }, 300_000);

  it("keeps each app log file under its cap, and the count of files, while reads still find lines in rotated files", async () => {
    expect(await (await t.client.functions.fromName("bounded", "flood")).remote(16, 0)).toEqual({ lines: 256 }); // 4 files' worth
    const dir = join(t.home, "logs", "apps");
    const files = readdirSync(dir).filter((f) => f.startsWith("bounded.log"));
    expect(files.sort()).toEqual(["bounded.log", "bounded.log.1", "bounded.log.2"]);
    for (const f of files) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(LOG_CAP);
    const res = await t.client.transport.raw("GET", "/v1/apps/bounded/logs?function=flood&tail=5");
    const text = typeof res.body === "string" ? res.body : JSON.stringify(res.body);
    expect(text).toContain("zzzz");
  });

  it("takes since= to go on from a line, and refuses a since that is no time", async () => {
    const say = await t.client.functions.fromName("bounded", "say");
    await say.remote(5);
    const lines = async (q: string) => {
      const res = await fetch(`${t.baseUrl}/v1/apps/bounded/logs?function=say&${q}`);
      expect(res.status).toBe(200);
      return (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as { line: string; ts: string });
    };
    const all = await lines("tail=100");
    expect(all.map((l) => l.line)).toEqual(["said 0", "said 1", "said 2", "said 3", "said 4"]);
    expect((await lines(`since=${encodeURIComponent(all[2]!.ts)}`)).map((l) => l.line)).toEqual(["said 2", "said 3", "said 4"]);
    const bad = await fetch(`${t.baseUrl}/v1/apps/bounded/logs?since=yesterday`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("since must be a time");
  });
});

describe("containers", () => {
  it("cap Docker's own copy of their output (json-file, max-size)", async () => {
    const hold = await t.client.functions.fromName("bounded", "hold");
    const call = await hold.spawn(2000);
    let info: Awaited<ReturnType<ReturnType<typeof docker.getContainer>["inspect"]>> | undefined;
    await vi.waitFor(async () => {
      const [c] = await containersOf(t, "hold");
      expect(c).toBeDefined();
      info = await docker.getContainer(c!.Id).inspect();
    }, { timeout: 60_000, interval: 100 });
    expect(info!.HostConfig.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    await call.get({ timeoutMs: 60_000 });
  });

  it("with this daemon's label but unknown to it are removed by the sweep; its own and another daemon's stay", async () => {
    const make = (daemonId: string, name: string) =>
      docker.createContainer({
        name,
        Image: "gantry/base-node:2",
        Cmd: ["sleep", "600"],
        Labels: { "gantry.daemon": daemonId, "gantry.app": "bounded", "gantry.function": "hold", "gantry.container": `ct-left-${name}` },
        HostConfig: { NetworkMode: "none", AutoRemove: false },
      });
    const suffix = Date.now().toString(36);
    const ours = await make(t.daemon.daemonId, `gt-leftover-${suffix}`);
    const theirs = await make("gd-someone-else", `gt-other-${suffix}`);
    try {
      await ours.start();
      await theirs.start();
      // A call running meanwhile keeps its container: the daemon knows it.
      const hold = await t.client.functions.fromName("bounded", "hold");
      const running = hold.remote(3000);
      await vi.waitFor(
        async () => {
          const gone = await ours.inspect().then(() => false, (err: { statusCode?: number }) => err.statusCode === 404);
          expect(gone).toBe(true);
        },
        { timeout: 30_000, interval: 100 },
      );
      expect(await running).toMatch(/^ct-/);
      expect((await theirs.inspect()).State.Running).toBe(true);
    } finally {
      await ours.remove({ force: true }).catch(() => undefined);
      await theirs.remove({ force: true }).catch(() => undefined);
    }
  }, 90_000);
});
