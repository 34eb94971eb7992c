// Yardstick: warm call latency, submit → result over HTTP, no-op function, one warm container,
// sequential keep-alive client; versus a no-op HTTP server with the same client. (DESIGN 4)
// Target: gantry p50 ≤ 1.5× the no-op server's p50.
import { APP, deploy, log, main, makeClient, now, report, round, summarize, withServers } from "./lib.mjs";

const CALLS = Number(process.env.BENCH_LATENCY_CALLS ?? 300);
const WARMUP = 50;
const BLOCK = 50; // the two servers take turns, BLOCK calls at a time, so drift hits both alike
const TIME_LIMIT_MS = 60_000;

async function sequential(client, n, samples) {
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const { submitMs } = await client.call(APP, "noop", { i });
    if (samples) {
      samples.total.push(now() - t0);
      samples.submit.push(submitMs);
    }
  }
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    await deploy(gantry);
    const clients = { noop: makeClient(noop.baseUrl, 1), gantry: makeClient(gantry.baseUrl, 1) };
    try {
      const t0 = now();
      await clients.gantry.call(APP, "noop", { first: true }, { timeoutS: 60 }); // starts the container
      log(`first (cold) gantry call: ${(now() - t0).toFixed(0)} ms`);
      await sequential(clients.noop, WARMUP);
      await sequential(clients.gantry, WARMUP);

      const samples = { noop: { total: [], submit: [] }, gantry: { total: [], submit: [] } };
      const started = now();
      for (let done = 0; done < CALLS; done += BLOCK) {
        const n = Math.min(BLOCK, CALLS - done);
        await sequential(clients.noop, n, samples.noop);
        await sequential(clients.gantry, n, samples.gantry);
        if (now() - started > TIME_LIMIT_MS) throw new Error(`latency runs took over ${TIME_LIMIT_MS / 1000} s`);
      }
      const g = summarize(samples.gantry.total);
      const b = summarize(samples.noop.total);
      const gs = summarize(samples.gantry.submit);
      const bs = summarize(samples.noop.submit);
      const ratio = round(g.p50 / b.p50, 2);
      log(`gantry  ms: ${JSON.stringify(g)}`);
      log(`no-op   ms: ${JSON.stringify(b)}`);
      log(`submit alone p50: gantry ${gs.p50} ms, no-op ${bs.p50} ms`);
      report("latency", {
        calls: CALLS,
        gantry_ms: g,
        noop_server_ms: b,
        // the submit request alone (202 with the call ID: the call is committed to disk by then)
        gantry_submit_ms: gs,
        noop_server_submit_ms: bs,
        ratio_p50: ratio,
        ratio_p95: round(g.p95 / b.p95, 2),
        ratio_p99: round(g.p99 / b.p99, 2),
        rows: [
          { what: "warm call latency p50 (ms)", gantry: g.p50, baseline: b.p50, baseline_name: "no-op HTTP server", ratio, target: "≤ 1.5×", ok: ratio <= 1.5 },
          { what: "warm call latency p95 (ms)", gantry: g.p95, baseline: b.p95, baseline_name: "no-op HTTP server", ratio: round(g.p95 / b.p95, 2), target: "", ok: null },
          { what: "warm call latency p99 (ms)", gantry: g.p99, baseline: b.p99, baseline_name: "no-op HTTP server", ratio: round(g.p99 / b.p99, 2), target: "", ok: null },
        ],
      });
    } finally {
      clients.noop.close();
      clients.gantry.close();
    }
  });
});
