// Shared pieces of the benchmarks: server processes, a keep-alive HTTP client, the
// submit → result call, deploys, Docker look-ups, percentiles and the result hand-off.
import { spawn, execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { bundleApp } from "../../dist/cli/bundle-app.js";
import { GantryClient } from "../../dist/sdk/client.js";

export const benchDir = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(benchDir, "..", "..");
export const benchApp = join(benchDir, "bench-app.ts");
export const APP = "gantry-bench";
export const execFileP = promisify(execFile);

export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => process.stderr.write(`  ${a.join(" ")}\n`);

// ── servers ─────────────────────────────────────────────────────────────────────────────────

/**
 * Starts test/bench/server.mjs (mode "gantry" or "noop") in its own process; resolves once it
 * serves. `env` adds to its environment (BENCH_HOME, BENCH_STOP_GRACE_MS: see server.mjs). BENCH_SERVER_NODE_ARGS adds node flags to that process, e.g. to profile the daemon:
 *   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node test/bench/throughput.bench.mjs
 */
export async function startServer(mode, { env = {} } = {}) {
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(benchDir, "server.mjs"), mode], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const info = await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${mode} server did not start within 30 s`)), 30_000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buf += chunk;
      const m = /^READY (.*)$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(JSON.parse(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${mode} server exited with code ${code} before it was ready`));
    });
  });
  const exited = new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
  const server = {
    mode,
    ...info,
    baseUrl: `http://127.0.0.1:${info.port}`,
    /** Stops the server process, then makes sure its containers and home are gone. */
    async stop() {
      forget();
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const code = await Promise.race([exited, sleep(25_000).then(() => "timeout")]);
        if (code === "timeout") {
          child.kill("SIGKILL");
          await exited;
        }
      }
      if (info.daemonId) {
        const left = await ownedContainers(info.daemonId);
        if (left.length) await execFileP("docker", ["rm", "-f", ...left.map((c) => c.id)]).catch(() => undefined);
      }
      if (info.home && !info.keepHome) rmSync(info.home, { recursive: true, force: true });
    },
  };
  const forget = onCleanup(() => server.stop());
  return server;
}

/** Runs fn with the servers started, stopping them whatever happens. */
export async function withServers(modes, fn) {
  const servers = [];
  try {
    for (const m of modes) servers.push(await startServer(m));
    return await fn(...servers);
  } finally {
    for (const s of servers.reverse()) await s.stop().catch((e) => log(`stopping ${s.mode} failed: ${e.message}`));
  }
}

// ── HTTP client ─────────────────────────────────────────────────────────────────────────────

/** A keep-alive client for one server; the same code drives gantry and the no-op server. */
export function makeClient(baseUrl, maxSockets = 64) {
  const u = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const request = (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers = payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {};
      const req = http.request({ method, hostname: u.hostname, port: u.port, path, headers, agent }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode, body: json });
        });
      });
      req.setTimeout(90_000, () => req.destroy(new Error(`${method} ${path} got no answer within 90 s`)));
      req.on("error", reject);
      req.end(payload);
    });

  /**
   * One call the job-queue way: POST /submit/{app}/{fn}, then GET /result/{id}?timeout=S until it
   * answers 200 (a 202 means still pending: ask again). Returns the number of result requests
   * and how long the submit took (ms).
   */
  async function call(app, fn, input, { timeoutS = 30, deadlineMs = 120_000 } = {}) {
    const t0 = now();
    const sub = await request("POST", `/submit/${app}/${fn}`, input);
    const submitMs = now() - t0;
    if (sub.status !== 202 || !sub.body?.call_id) throw new Error(`submit answered ${sub.status}: ${JSON.stringify(sub.body)}`);
    const until = now() + deadlineMs;
    for (let polls = 1; ; polls++) {
      const r = await request("GET", `/result/${sub.body.call_id}?timeout=${timeoutS}`);
      if (r.status === 200) return { polls, submitMs };
      if (r.status !== 202) throw new Error(`result of ${sub.body.call_id} answered ${r.status}: ${JSON.stringify(r.body)}`);
      if (now() > until) throw new Error(`call ${sub.body.call_id} did not finish within ${deadlineMs} ms`);
    }
  }

  return { request, call, close: () => agent.destroy() };
}

/** The TS client's map of `n` inputs over one function, checked in order; calls/s. */
export async function gantryMap(client, fnName, n) {
  const fn = await client.functions.fromName(APP, fnName);
  const t0 = now();
  let i = 0;
  for await (const r of fn.map(Array.from({ length: n }, (_, k) => ({ k })))) {
    if (r?.k !== i++) throw new Error(`map yielded ${JSON.stringify(r)} at ${i - 1}`);
  }
  return n / ((now() - t0) / 1000);
}

/** `clients` loops share a counter, each calling `call` in turn until `calls` are made; calls/s. */
export async function perCall(call, calls, clients) {
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < calls) await call({ i: next++ });
    }),
  );
  return calls / ((now() - t0) / 1000);
}

// ── gantry specifics ────────────────────────────────────────────────────────────────────────

/** Bundles and deploys an app file the way `gantry deploy` does; returns timings and the done event. */
export async function deploy(server, file = benchApp) {
  const t0 = now();
  const app = await bundleApp(file);
  const t1 = now();
  const client = new GantryClient({ socketPath: server.socketPath });
  const events = [];
  try {
    await client.transport.stream("POST", "/v1/apps/deploy", { app: app.app, functions: app.functions, bundle: app.bundle, source: file }, (e) => events.push(e));
  } finally {
    client.close();
  }
  const t2 = now();
  const done = events.at(-1);
  if (done?.type !== "done") throw new Error(`deploy of ${file} failed: ${JSON.stringify(done)}`);
  return { totalMs: t2 - t0, bundleMs: t1 - t0, requestMs: t2 - t1, done };
}

/** The Docker containers a daemon owns (optionally of one function), running or not. */
export async function ownedContainers(daemonId, fn) {
  const args = ["ps", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter", `label=gantry.daemon=${daemonId}`];
  if (fn) args.push("--filter", `label=gantry.function=${fn}`);
  const { stdout } = await execFileP("docker", args);
  return stdout.split("\n").filter(Boolean).map((id) => ({ id }));
}

// ── statistics & output ─────────────────────────────────────────────────────────────────────

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 1000) / 1000;
  return { n: s.length, p50: r(percentile(s, 50)), p95: r(percentile(s, 95)), p99: r(percentile(s, 99)), min: r(s[0]), max: r(s.at(-1)) };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export const round = (x, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Hands a bench's figures to scripts/bench.mjs (the file in $BENCH_OUT), or prints them when the
 * bench runs alone. `rows` are the summary-table lines: {what, gantry, baseline, ratio, target, ok}.
 */
export function report(name, result) {
  const text = JSON.stringify({ name, ...result }, null, 2);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, text);
  else process.stdout.write(text + "\n");
}

// Clean-ups still owed (servers, redis): run on a normal end by their owners, and by main() when
// the bench is interrupted (SIGINT/SIGTERM) or runs past its time limit.
const cleanups = new Set();
export function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}
async function runCleanups() {
  const all = [...cleanups].reverse();
  cleanups.clear();
  await Promise.race([Promise.allSettled(all.map((fn) => Promise.resolve().then(fn))), sleep(20_000)]);
}

/** Runs a bench's main function with a hard time limit; any failure exits non-zero. */
export function main(fn, limitMs = 150_000) {
  const abort = async (why, code) => {
    log(why);
    await runCleanups();
    process.exit(code);
  };
  const timer = setTimeout(() => void abort(`bench did not finish within ${limitMs / 1000} s`, 4), limitMs);
  for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => void abort(`bench interrupted (${sig})`, 130));
  fn().then(
    () => {
      clearTimeout(timer);
      process.exit(0);
    },
    async (err) => {
      clearTimeout(timer);
      process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
      await runCleanups();
      process.exit(1);
    },
  );
}
