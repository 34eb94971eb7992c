// Yardstick (issue 20): an idle Queue put → get round trip and a Dict put → get, sequential, over
// the daemon's unix socket and over TCP; versus two no-op HTTP requests with the same client, and
// versus Redis RPUSH → LPOP (ioredis) when redis-server is installed. And put_many of 10,000 values
// in one request, then get_many until drained, versus Redis RPUSH of 10,000 and LPOP of 10,000.
// Target (issue 20): the socket round trip near 1 ms p50.
import { spawn } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { log, main, now, onCleanup, report, round, sleep, summarize, withServers } from "./lib.mjs";

const ROUNDS = Number(process.env.BENCH_DQ_ROUNDS ?? 1000);
// Long enough to pass the daemon's first seconds (its start-up work shares the CPUs) and JIT warm-up.
const WARMUP = 1000;
const MANY = 10_000;

/** A keep-alive JSON client over TCP or a unix socket. */
function client(target) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const where = target.socketPath ? { socketPath: target.socketPath } : { hostname: "127.0.0.1", port: target.port };
  const request = (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers = payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {};
      const req = http.request({ method, path, headers, agent, ...where }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode >= 300) return reject(new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`));
          resolve(text ? JSON.parse(text) : null);
        });
      });
      req.on("error", reject);
      req.end(payload);
    });
  return { request, close: () => agent.destroy() };
}

async function timed(n, step) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await step(i);
    samples.push(now() - t0);
  }
  return summarize(samples);
}

/** redis-server on a loopback port and an ioredis connection; null when either is missing. */
async function startRedis() {
  let IORedis;
  try {
    IORedis = (await import("ioredis")).default;
  } catch {
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), "gt-bench-redis-"));
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
  const failed = new Promise((resolve) => server.once("error", () => resolve(null)));
  const stop = async () => {
    server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(stop);
  const conn = new IORedis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 2 });
  conn.on("error", () => undefined); // refused until redis-server listens: the loop below asks again
  for (const until = now() + 10_000; ; await sleep(50)) {
    const ok = await Promise.race([conn.connect().then(() => true, () => false), failed]);
    if (ok) return { conn, stop: async () => (conn.disconnect(), await stop()) };
    if (ok === null || now() > until) return null;
  }
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    const overSocket = client({ socketPath: gantry.socketPath });
    const overTcp = client({ port: gantry.port });
    const noopClient = client({ port: noop.port });
    await overSocket.request("POST", "/v1/queues", { name: "bench-q" });
    await overSocket.request("POST", "/v1/dicts", { name: "bench-d" });
    const queueRound = (c) => async (i) => {
      await c.request("POST", "/v1/queues/bench-q/put", { values: [{ value: { i } }] });
      await c.request("POST", "/v1/queues/bench-q/get", { n: 1 });
    };
    const dictRound = (c) => async (i) => {
      await c.request("POST", "/v1/dicts/bench-d/put", { key: { value: `k${i % 100}` }, value: { value: { i } } });
      await c.request("POST", "/v1/dicts/bench-d/get", { key: { value: `k${i % 100}` } });
    };
    const noopRound = async (i) => {
      await noopClient.request("POST", "/submit/a/f", { i });
      await noopClient.request("POST", "/submit/a/f", { i });
    };
    const redis = await startRedis();
    const redisRound = redis ? async (i) => (await redis.conn.rpush("bench", JSON.stringify({ i })), await redis.conn.lpop("bench")) : null;

    for (const step of [queueRound(overSocket), queueRound(overTcp), dictRound(overSocket), noopRound, redisRound].filter(Boolean)) await timed(WARMUP, step);
    const s = {
      queue_socket: await timed(ROUNDS, queueRound(overSocket)),
      queue_tcp: await timed(ROUNDS, queueRound(overTcp)),
      dict_socket: await timed(ROUNDS, dictRound(overSocket)),
      noop_tcp: await timed(ROUNDS, noopRound),
      redis: redisRound ? await timed(ROUNDS, redisRound) : null,
    };
    for (const [k, v] of Object.entries(s)) if (v) log(`${k.padEnd(13)} ms: ${JSON.stringify(v)}`);

    const values = Array.from({ length: MANY }, (_, i) => ({ value: { i, pad: "x".repeat(20) } }));
    let t0 = now();
    await overSocket.request("POST", "/v1/queues/bench-q/put", { values });
    const putManyMs = now() - t0;
    t0 = now();
    let got = 0;
    while (got < MANY) got += (await overSocket.request("POST", "/v1/queues/bench-q/get", { n: 1000 })).values.length;
    const getManyMs = now() - t0;
    let redisPutMs = null;
    let redisGetMs = null;
    if (redis) {
      const items = values.map((v) => JSON.stringify(v.value));
      t0 = now();
      await redis.conn.rpush("bench-many", ...items);
      redisPutMs = now() - t0;
      t0 = now();
      for (let left = MANY; left > 0; left -= 1000) await redis.conn.lpop("bench-many", 1000);
      redisGetMs = now() - t0;
      await redis.stop();
    }
    log(`put_many ${MANY}: ${putManyMs.toFixed(1)} ms, get_many: ${getManyMs.toFixed(1)} ms; redis ${redisPutMs?.toFixed(1)} / ${redisGetMs?.toFixed(1)} ms`);
    for (const c of [overSocket, overTcp, noopClient]) c.close();

    const rows = [
      { what: "Queue put → get p50, unix socket (ms)", gantry: s.queue_socket.p50, baseline: s.noop_tcp.p50, baseline_name: "two no-op HTTP requests", ratio: round(s.queue_socket.p50 / s.noop_tcp.p50, 2), target: "≈ 1 ms", ok: s.queue_socket.p50 <= 1.5 },
      { what: "Queue put → get p50, TCP (ms)", gantry: s.queue_tcp.p50, baseline: s.noop_tcp.p50, baseline_name: "two no-op HTTP requests", ratio: round(s.queue_tcp.p50 / s.noop_tcp.p50, 2), target: "", ok: null },
      { what: "Dict put → get p50, unix socket (ms)", gantry: s.dict_socket.p50, baseline: s.noop_tcp.p50, baseline_name: "two no-op HTTP requests", ratio: round(s.dict_socket.p50 / s.noop_tcp.p50, 2), target: "", ok: null },
      ...(s.redis ? [{ what: "Queue put → get p50 vs Redis (ms)", gantry: s.queue_socket.p50, baseline: s.redis.p50, baseline_name: "Redis RPUSH → LPOP (ioredis)", ratio: round(s.queue_socket.p50 / s.redis.p50, 2), target: "", ok: null }] : []),
      { what: `put_many of ${MANY} in one request (ms)`, gantry: round(putManyMs, 1), baseline: redisPutMs === null ? "skipped" : round(redisPutMs, 1), baseline_name: "Redis RPUSH of 10,000", ratio: redisPutMs ? round(putManyMs / redisPutMs, 2) : null, target: "", ok: null },
      { what: `get_many of ${MANY}, 1,000 a request (ms)`, gantry: round(getManyMs, 1), baseline: redisGetMs === null ? "skipped" : round(redisGetMs, 1), baseline_name: "Redis LPOP 1,000 × 10", ratio: redisGetMs ? round(getManyMs / redisGetMs, 2) : null, target: "", ok: null },
    ];
    report("dq", { rounds: ROUNDS, ms: s, put_many_ms: putManyMs, get_many_ms: getManyMs, redis_put_many_ms: redisPutMs, redis_get_many_ms: redisGetMs, rows });
  });
});
