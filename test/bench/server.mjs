// The server side of a benchmark, run as its own process (as a real daemon is):
//   node test/bench/server.mjs gantry   a real gantry daemon in a fresh temp GANTRY_HOME
//   node test/bench/server.mjs noop     a node:http server that only answers submit and result
// BENCH_HOME=DIR makes the gantry daemon use (and keep) DIR as its GANTRY_HOME, so a bench can
// restart it over the same state; BENCH_STOP_GRACE_MS sets how long its stop waits for calls;
// BENCH_DURABILITY=relaxed starts it with --durability relaxed.
// Prints one line `READY {json}` on stdout, then serves until SIGTERM/SIGINT or until its stdin
// closes (the bench process went away); then it stops the daemon and removes the temp home.
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeConfig } from "../../dist/daemon/config.js";
import { startDaemon } from "../../dist/daemon/daemon.js";
import { consoleLogger, silentLogger } from "../../dist/daemon/logger.js";

const mode = process.argv[2];
let stop = async () => {};
let stopping = null;
const shutdown = () => {
  stopping ??= (async () => {
    const timer = setTimeout(() => process.exit(3), 20_000);
    try {
      await stop();
    } finally {
      clearTimeout(timer);
      process.exit(0);
    }
  })();
  return stopping;
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("error", shutdown);
process.stdin.resume();

if (mode === "noop") {
  let n = 0;
  const answer = (res, status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    if (req.method === "POST" && req.url.startsWith("/submit/")) {
      req.on("data", () => {});
      req.on("end", () => answer(res, 202, { call_id: `fc-${String(++n).padStart(26, "0")}` }));
    } else if (req.method === "GET" && req.url.startsWith("/result/")) {
      req.resume();
      answer(res, 200, { ok: true });
    } else {
      req.resume();
      answer(res, 404, { error: { code: "not_found", message: "no route" } });
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  stop = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  process.stdout.write(`READY ${JSON.stringify({ mode, pid: process.pid, port: server.address().port })}\n`);
} else if (mode === "gantry") {
  const keepHome = Boolean(process.env.BENCH_HOME);
  const home = process.env.BENCH_HOME || mkdtempSync(join(tmpdir(), "gt-bench-"));
  const graceMs = process.env.BENCH_STOP_GRACE_MS === undefined ? undefined : Number(process.env.BENCH_STOP_GRACE_MS);
  const log = process.env.GANTRY_BENCH_LOG ? consoleLogger() : silentLogger;
  let daemon;
  try {
    const durability = process.env.BENCH_DURABILITY || undefined; // full (default) or relaxed
    daemon = await startDaemon(makeConfig({ home, httpPort: 0, forceNetwork: "none", durability }), { log });
  } catch (err) {
    if (!keepHome) rmSync(home, { recursive: true, force: true });
    throw err;
  }
  stop = async () => {
    try {
      await daemon.stop(graceMs === undefined ? undefined : { graceMs });
    } finally {
      if (!keepHome) rmSync(home, { recursive: true, force: true });
    }
  };
  process.stdout.write(
    `READY ${JSON.stringify({ mode, pid: process.pid, port: daemon.tcpPort, home, keepHome, socketPath: daemon.config.socketPath, daemonId: daemon.daemonId })}\n`,
  );
} else {
  process.stderr.write(`usage: node test/bench/server.mjs gantry|noop\n`);
  process.exit(2);
}
