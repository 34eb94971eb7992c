// Yardstick: 100,000 calls queued (DESIGN 4). The daemon's RSS stays under 300 MB; health, list
// and another function's calls stay prompt; a restart with them queued takes under 20 s; stopping
// the app cancels them all.
// The calls go to `held`, whose only slot is taken by a call that never returns, so all the others
// stay queued. Prompt is measured against the same requests on the idle daemon, in the same run.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { APP, deploy, log, main, makeClient, now, report, round, sleep, startServer, summarize } from "./lib.mjs";

const QUEUED = Number(process.env.BENCH_SCALE_CALLS ?? 100_000);
const BATCH = 10_000;
const SAMPLES = 40;

/** Resident set size of a process, in MB (VmRSS from /proc). */
function rssMb(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

async function expectOk(res, what) {
  if (res.status >= 300) throw new Error(`${what} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function waitFor(what, check, timeoutMs = 60_000) {
  const until = now() + timeoutMs;
  for (;;) {
    const last = await check();
    if (last === true) return;
    if (now() > until) throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await sleep(50);
  }
}

/** How prompt the daemon is: health, a list of 50 queued calls, and a warm call to another function. */
async function promptness(client) {
  const timed = async (fn) => {
    const xs = [];
    for (let i = 0; i < SAMPLES; i++) {
      const t0 = now();
      await fn(i);
      xs.push(now() - t0);
    }
    return summarize(xs);
  };
  return {
    health: await timed(async () => expectOk(await client.request("GET", "/v1/health"), "health")),
    list: await timed(async () =>
      expectOk(await client.request("GET", `/v1/calls?app=${APP}&function=held&status=queued&limit=50`), "calls ls"),
    ),
    other_call: await timed((i) => client.call(APP, "noop", { i })),
    // The dashboard's worst page: a status none of the stored calls has (every row is looked at).
    list_rare: await timed(async () => expectOk(await client.request("GET", `/v1/calls?status=failed&limit=51`), "calls ls --status failed")),
  };
}

main(async () => {
  const home = mkdtempSync(join(tmpdir(), "gt-bench-scale-"));
  const env = { BENCH_HOME: home, BENCH_STOP_GRACE_MS: "0" };
  let server = await startServer("gantry", { env });
  let client = makeClient(server.baseUrl, 8);
  try {
    await deploy(server);
    await client.call(APP, "noop", { warm: true }, { timeoutS: 60 });
    await expectOk(await client.request("POST", `/v1/apps/${APP}/functions/held/calls`, { args: [] }), "spawn held");
    await waitFor("the held call running", async () => {
      const h = (await client.request("GET", "/v1/health")).body;
      return (h.live === 1 && h.queued === 0) || h;
    });
    const idle = await promptness(client);
    const rssIdle = rssMb(server.pid);
    log(`idle: RSS ${rssIdle.toFixed(0)} MB; health p50 ${idle.health.p50.toFixed(2)} ms, list p50 ${idle.list.p50.toFixed(2)} ms, other call p50 ${idle.other_call.p50.toFixed(2)} ms`);

    const t0 = now();
    for (let sent = 0; sent < QUEUED; sent += BATCH) {
      const n = Math.min(BATCH, QUEUED - sent);
      await expectOk(await client.request("POST", `/v1/apps/${APP}/functions/held/calls/batch`, { calls: Array.from({ length: n }, (_, i) => ({ args: [sent + i] })) }), "batch");
    }
    const submitMs = now() - t0;
    await waitFor(`${QUEUED} queued`, async () => {
      const h = (await client.request("GET", "/v1/health")).body;
      return h.queued === QUEUED || h;
    });
    log(`queued ${QUEUED} in ${(submitMs / 1000).toFixed(1)} s (${Math.round(QUEUED / (submitMs / 1000))} calls/s)`);
    const busy = await promptness(client);
    global.gc?.();
    const rssQueued = rssMb(server.pid);
    log(`queued: RSS ${rssQueued.toFixed(0)} MB; health p50 ${busy.health.p50.toFixed(2)} ms, list p50 ${busy.list.p50.toFixed(2)} ms, other call p50 ${busy.other_call.p50.toFixed(2)} ms`);

    // Restart over the same home: from starting the process to serving with every call back in its queue.
    client.close();
    await server.stop();
    const r0 = now();
    server = await startServer("gantry", { env });
    client = makeClient(server.baseUrl, 8);
    const health = (await client.request("GET", "/v1/health")).body;
    const restartMs = now() - r0;
    // The held call was running when the daemon stopped: lost, it runs again (no retry used); the queued ones stay.
    if (health.live !== QUEUED + 1) throw new Error(`after the restart ${health.live} calls are live (${health.queued} queued); want ${QUEUED + 1}`);
    const rssRestarted = rssMb(server.pid);
    log(`restart: ${(restartMs / 1000).toFixed(2)} s, RSS ${rssRestarted.toFixed(0)} MB, ${health.queued} queued`);

    const s0 = now();
    await expectOk(await client.request("POST", `/v1/apps/${APP}/stop`), "apps stop");
    await waitFor("every call cancelled", async () => {
      const h = (await client.request("GET", "/v1/health")).body;
      return h.live === 0 || h;
    });
    const stopMs = now() - s0;
    const left = await expectOk(await client.request("GET", `/v1/calls?app=${APP}&function=held&status=queued&limit=1`), "calls ls");
    if (left.calls.length) throw new Error(`apps stop left queued calls: ${JSON.stringify(left.calls)}`);
    log(`apps stop: ${(stopMs / 1000).toFixed(2)} s to cancel them all`);

    const ratio = (k) => round(busy[k].p50 / idle[k].p50, 2);
    const prompt = (k, limitMs) => busy[k].p95 <= limitMs;
    report("scale", {
      queued: QUEUED,
      submit_s: round(submitMs / 1000, 2),
      submit_calls_per_s: Math.round(QUEUED / (submitMs / 1000)),
      rss_mb: { idle: round(rssIdle, 0), queued: round(rssQueued, 0), after_restart: round(rssRestarted, 0) },
      idle,
      queued_latency: busy,
      restart_s: round(restartMs / 1000, 2),
      apps_stop_s: round(stopMs / 1000, 2),
      rows: [
        { what: `RSS with ${QUEUED} queued (MB)`, gantry: round(Math.max(rssQueued, rssRestarted), 0), baseline: round(rssIdle, 0), baseline_name: "idle daemon", ratio: null, target: "< 300 MB", ok: Math.max(rssQueued, rssRestarted) < 300 },
        { what: `restart with ${QUEUED} queued (s)`, gantry: round(restartMs / 1000, 2), baseline: null, baseline_name: "", ratio: null, target: "< 20 s", ok: restartMs < 20_000 },
        { what: "health while queued, p50 / p95 (ms)", gantry: `${round(busy.health.p50, 2)} / ${round(busy.health.p95, 2)}`, baseline: round(idle.health.p50, 2), baseline_name: "idle p50", ratio: ratio("health"), target: "p95 ≤ 50 ms", ok: prompt("health", 50) },
        { what: "calls ls (50) while queued, p50 / p95 (ms)", gantry: `${round(busy.list.p50, 2)} / ${round(busy.list.p95, 2)}`, baseline: round(idle.list.p50, 2), baseline_name: "idle p50", ratio: ratio("list"), target: "p95 ≤ 100 ms", ok: prompt("list", 100) },
        { what: "calls ls of a status none has (dashboard filter), p50 / p95 (ms)", gantry: `${round(busy.list_rare.p50, 2)} / ${round(busy.list_rare.p95, 2)}`, baseline: round(idle.list_rare.p50, 2), baseline_name: "idle p50", ratio: ratio("list_rare"), target: "p95 ≤ 100 ms", ok: prompt("list_rare", 100) },
        { what: "another function's call while queued, p50 / p95 (ms)", gantry: `${round(busy.other_call.p50, 2)} / ${round(busy.other_call.p95, 2)}`, baseline: round(idle.other_call.p50, 2), baseline_name: "idle p50", ratio: ratio("other_call"), target: "p95 ≤ 100 ms", ok: prompt("other_call", 100) },
        { what: `apps stop cancels ${QUEUED} (s)`, gantry: round(stopMs / 1000, 2), baseline: null, baseline_name: "", ratio: null, target: "all cancelled", ok: left.calls.length === 0 },
      ],
    });
  } finally {
    client.close();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
