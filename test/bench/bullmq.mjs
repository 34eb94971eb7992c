// BullMQ + Redis as a second yardstick (DESIGN 4): a redis-server on a loopback port with no
// persistence, a BullMQ worker in its own process (as gantry's function runs in a container), and
// the producer in the bench process. Optional: when redis-server or the bullmq/ioredis packages
// are missing, startBullmq() resolves { skipped: reason } and the benches report gantry alone.
//   node test/bench/bullmq.mjs worker PORT QUEUE CONCURRENCY   (the worker process)
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { log, now, onCleanup, sleep } from "./lib.mjs";

const QUEUE = "gantry-bench";
const self = fileURLToPath(import.meta.url);

function redisServerPath() {
  for (const p of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) {
    try {
      execFileSync(p, ["--version"], { stdio: "ignore" });
      return p;
    } catch {
      /* next */
    }
  }
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms) {
  const until = now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      c.once("connect", () => (c.destroy(), resolve(true)));
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (now() > until) throw new Error(`redis-server did not listen on ${port} within ${ms} ms`);
    await sleep(50);
  }
}

function waitLine(child, re, ms, what) {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${what} not ready within ${ms} ms`)), ms);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (c) => {
      buf += c;
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready`));
    });
  });
}

async function stopChild(child, ms = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  if ((await Promise.race([exited.then(() => "ok"), sleep(ms).then(() => "timeout")])) === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}

/**
 * Starts redis-server and a BullMQ worker process; resolves a contender with call(input) (add →
 * completed), bulk(n) (addBulk, then wait until all are completed; jobs/s) and stop().
 */
export async function startBullmq({ concurrency = 50 } = {}) {
  const redis = redisServerPath();
  if (!redis) return { skipped: "redis-server is not installed (apt-get install -y redis-server)" };
  let bull, IORedis;
  try {
    bull = await import("bullmq");
    IORedis = (await import("ioredis")).default;
  } catch {
    return { skipped: "the bullmq and ioredis packages are not installed (npm install)" };
  }
  const dir = mkdtempSync(join(tmpdir(), "gt-bench-redis-"));
  const port = await freePort();
  let server = null;
  let worker = null;
  const closers = [];
  const stop = async () => {
    forget();
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await stopChild(worker);
    await stopChild(server);
    rmSync(dir, { recursive: true, force: true });
  };
  const forget = onCleanup(() => stop());
  try {
    server = spawn(redis, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitForPort(port, 10_000);
    worker = spawn(process.execPath, [self, "worker", String(port), QUEUE, String(concurrency)], { stdio: ["pipe", "pipe", "inherit"] });
    await waitLine(worker, /^WORKER READY$/m, 15_000, "BullMQ worker");

    const connection = new IORedis({ host: "127.0.0.1", port, maxRetriesPerRequest: null });
    closers.push(async () => connection.disconnect());
    const queue = new bull.Queue(QUEUE, { connection });
    queue.setMaxListeners(0); // each waitUntilFinished listens on the queue while it waits
    closers.push(() => queue.close());
    const events = new bull.QueueEvents(QUEUE, { connection: { host: "127.0.0.1", port } });
    events.setMaxListeners(0);
    closers.push(() => events.close());
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);

    return {
      name: "BullMQ",
      async call(input) {
        const job = await queue.add("noop", input);
        await job.waitUntilFinished(events, 60_000);
      },
      /** addBulk of n no-op jobs, then waits until the worker completed them all; jobs/s. */
      async bulk(n, chunk = 1000) {
        await queue.drain();
        const base = await queue.getCompletedCount();
        const t0 = now();
        for (let i = 0; i < n; i += chunk) {
          const jobs = Array.from({ length: Math.min(chunk, n - i) }, (_, k) => ({ name: "noop", data: { i: i + k } }));
          await queue.addBulk(jobs);
        }
        const until = now() + 60_000;
        while ((await queue.getCompletedCount()) - base < n) {
          if (now() > until) throw new Error(`BullMQ did not complete ${n} bulk jobs within 60 s`);
          await sleep(10);
        }
        return n / ((now() - t0) / 1000);
      },
      stop,
    };
  } catch (err) {
    log(`BullMQ could not start: ${err.message}`);
    await stop();
    return { skipped: `BullMQ could not start: ${err.message}` };
  }
}

// ── the worker process ──────────────────────────────────────────────────────────────────────
if (process.argv[1] === self && process.argv[2] === "worker") {
  const [port, queue, concurrency] = [Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
  const { Worker } = await import("bullmq");
  const w = new Worker(queue, async (job) => job.data, { connection: { host: "127.0.0.1", port, maxRetriesPerRequest: null }, concurrency });
  await w.waitUntilReady();
  const bye = async () => {
    await w.close().catch(() => undefined);
    process.exit(0);
  };
  process.on("SIGTERM", bye);
  process.stdin.on("end", bye);
  process.stdin.resume();
  process.stdout.write("WORKER READY\n");
}
