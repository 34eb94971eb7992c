// Yardstick: warm call latency, submit → result over HTTP, no-op function, one warm container,
// sequential keep-alive client; versus a no-op HTTP server with the same client, and versus
// BullMQ + Redis (add → completed) when those are installed. (DESIGN 4)
// Targets (DESIGN 4): gantry p50 ≤ 2.0× the no-op server's, and ≤ 1.2× BullMQ's.
import { startBullmq } from "./bullmq.mjs";
import { APP, deploy, log, main, makeClient, now, report, round, summarize, withServers } from "./lib.mjs";

const CALLS = Number(process.env.BENCH_LATENCY_CALLS ?? 300);
const WARMUP = 50;
const BLOCK = 50; // the contenders take turns, BLOCK calls at a time, so drift hits all alike
const TIME_LIMIT_MS = 60_000;

async function sequential(c, n, samples) {
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const submitMs = await c.call({ i });
    if (samples) {
      samples.total.push(now() - t0);
      if (typeof submitMs === "number") samples.submit.push(submitMs);
    }
  }
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    await deploy(gantry);
    const http = { noop: makeClient(noop.baseUrl, 1), gantry: makeClient(gantry.baseUrl, 1) };
    const bull = await startBullmq();
    try {
      const contenders = [
        { name: "noop", call: async (x) => (await http.noop.call(APP, "noop", x)).submitMs },
        { name: "gantry", call: async (x) => (await http.gantry.call(APP, "noop", x)).submitMs },
      ];
      if (bull.skipped) log(`BullMQ skipped: ${bull.skipped}`);
      else contenders.push({ name: "bullmq", call: (x) => bull.call(x) });

      const t0 = now();
      await http.gantry.call(APP, "noop", { first: true }, { timeoutS: 60 }); // starts the container
      log(`first (cold) gantry call: ${(now() - t0).toFixed(0)} ms`);
      for (const c of contenders) await sequential(c, WARMUP);

      const samples = Object.fromEntries(contenders.map((c) => [c.name, { total: [], submit: [] }]));
      const started = now();
      for (let done = 0; done < CALLS; done += BLOCK) {
        for (const c of contenders) await sequential(c, Math.min(BLOCK, CALLS - done), samples[c.name]);
        if (now() - started > TIME_LIMIT_MS) throw new Error(`latency runs took over ${TIME_LIMIT_MS / 1000} s`);
      }
      const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v.total)]));
      const g = s.gantry;
      const b = s.noop;
      const gs = summarize(samples.gantry.submit);
      const bs = summarize(samples.noop.submit);
      for (const [k, v] of Object.entries(s)) log(`${k.padEnd(7)} ms: ${JSON.stringify(v)}`);
      log(`submit request alone, p50: gantry ${gs.p50} ms, no-op ${bs.p50} ms`);
      const ratio = round(g.p50 / b.p50, 2);
      const rows = [
        { what: "warm call latency p50 (ms)", gantry: g.p50, baseline: b.p50, baseline_name: "no-op HTTP server", ratio, target: "≤ 2.0×", ok: ratio <= 2.0 },
        { what: "warm call latency p95 (ms)", gantry: g.p95, baseline: b.p95, baseline_name: "no-op HTTP server", ratio: round(g.p95 / b.p95, 2), target: "", ok: null },
        { what: "warm call latency p99 (ms)", gantry: g.p99, baseline: b.p99, baseline_name: "no-op HTTP server", ratio: round(g.p99 / b.p99, 2), target: "", ok: null },
        { what: "submit request alone p50 (ms)", gantry: gs.p50, baseline: bs.p50, baseline_name: "no-op HTTP server", ratio: round(gs.p50 / bs.p50, 2), target: "", ok: null },
      ];
      if (s.bullmq) {
        const r = round(g.p50 / s.bullmq.p50, 2);
        rows.push({ what: "warm call latency p50 (ms)", gantry: g.p50, baseline: s.bullmq.p50, baseline_name: "BullMQ add → completed", ratio: r, target: "≤ 1.2×", ok: r <= 1.2 });
      } else {
        rows.push({ what: "warm call latency p50 vs BullMQ", gantry: g.p50, baseline: `skipped: ${bull.skipped}`, baseline_name: "", ratio: null, target: "≤ 1.2×", ok: null });
      }
      report("latency", {
        calls: CALLS,
        gantry_ms: g,
        noop_server_ms: b,
        bullmq_ms: s.bullmq ?? null,
        // the submit request alone (202 with the call ID: the call is committed to disk by then)
        gantry_submit_ms: gs,
        noop_server_submit_ms: bs,
        ratio_p50: ratio,
        ratio_p50_vs_bullmq: s.bullmq ? round(g.p50 / s.bullmq.p50, 2) : null,
        rows,
      });
    } finally {
      http.noop.close();
      http.gantry.close();
      if (!bull.skipped) await bull.stop();
    }
  });
});
