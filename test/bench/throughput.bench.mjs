// Yardstick: per-call throughput. CLIENTS concurrent keep-alive clients each submit a call and
// wait for its result (GET /result?timeout=30), until CALLS calls are done; calls/s, versus the
// no-op HTTP server with the same client pattern (and BullMQ add → completed, same concurrency,
// when installed). Also BullMQ's addBulk + worker over BULK jobs, the batch yardstick. (DESIGN 4)
// Targets (DESIGN 4): per call ≥ 0.7× the no-op server and ≥ 1.0× BullMQ; batch (client map) ≥ 3× BullMQ addBulk.
import { GantryClient } from "../../dist/sdk/client.js";
import { startBullmq } from "./bullmq.mjs";
import { APP, deploy, log, main, makeClient, median, now, report, round, withServers } from "./lib.mjs";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
const CALLS = Number(process.env.BENCH_THROUGHPUT_CALLS ?? 2000);
const BULK = Number(process.env.BENCH_BULK ?? 10_000);
const ROUNDS = 5; // the contenders take turns; the median round counts
const BULK_ROUNDS = 3;

/** gantry's batch path: the client's map over n no-op inputs, results read in input order; calls/s. */
async function gantryMap(baseUrl, n) {
  const client = new GantryClient({ url: baseUrl });
  try {
    const fn = await client.functions.fromName(APP, "noop");
    const t0 = now();
    let i = 0;
    for await (const r of fn.map(Array.from({ length: n }, (_, k) => ({ k })))) {
      if (r?.k !== i++) throw new Error(`map yielded ${JSON.stringify(r)} at ${i - 1}`);
    }
    return n / ((now() - t0) / 1000);
  } finally {
    client.close();
  }
}
const ROUND_LIMIT_MS = 30_000;

/** CLIENTS loops share a counter; resolves with calls/s and the extra polls (202 answers) seen. */
async function run(call, calls) {
  let next = 0;
  let repolls = 0;
  const deadline = now() + ROUND_LIMIT_MS;
  const t0 = now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < calls) {
        const i = next++;
        repolls += ((await call({ i })) ?? 1) - 1;
        if (now() > deadline) throw new Error(`a round of ${calls} calls took over ${ROUND_LIMIT_MS / 1000} s`);
      }
    }),
  );
  return { callsPerS: calls / ((now() - t0) / 1000), repolls };
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    await deploy(gantry);
    const http = { noop: makeClient(noop.baseUrl, CLIENTS), gantry: makeClient(gantry.baseUrl, CLIENTS) };
    const bull = await startBullmq();
    try {
      const contenders = [
        { name: "noop", call: async (x) => (await http.noop.call(APP, "noop", x)).polls },
        { name: "gantry", call: async (x) => (await http.gantry.call(APP, "noop", x)).polls },
      ];
      if (bull.skipped) log(`BullMQ skipped: ${bull.skipped}`);
      else contenders.push({ name: "bullmq", call: (x) => bull.call(x) });

      await http.gantry.call(APP, "noop", { first: true }, { timeoutS: 60 }); // starts the container
      for (const c of contenders) await run(c.call, CALLS); // warm-up round, not counted: JIT, sockets, CPU clocks
      const rounds = Object.fromEntries(contenders.map((c) => [c.name, []]));
      for (let r = 0; r < ROUNDS; r++) {
        for (const c of contenders) {
          const res = await run(c.call, CALLS);
          rounds[c.name].push(res);
          log(`round ${r + 1} ${c.name.padEnd(6)}: ${res.callsPerS.toFixed(0)} calls/s${res.repolls ? ` (${res.repolls} re-polls)` : ""}`);
        }
      }
      const med = (name) => round(median(rounds[name].map((x) => x.callsPerS)), 0);
      const g = med("gantry");
      const b = med("noop");
      const ratio = round(g / b, 2);
      const rows = [
        { what: `throughput, ${CLIENTS} clients (calls/s)`, gantry: g, baseline: b, baseline_name: "no-op HTTP server", ratio, target: "≥ 0.7×", ok: ratio >= 0.7 },
      ];
      let bulkPerS = null;
      if (!bull.skipped) {
        const q = med("bullmq");
        rows.push({ what: `throughput, ${CLIENTS} clients (calls/s)`, gantry: g, baseline: q, baseline_name: "BullMQ add → completed", ratio: round(g / q, 2), target: "≥ 1.0×", ok: g / q >= 1.0 });
        await gantryMap(gantry.baseUrl, BULK); // warm-up
        const maps = [];
        const bulks = [];
        for (let r = 0; r < BULK_ROUNDS; r++) {
          maps.push(await gantryMap(gantry.baseUrl, BULK));
          bulks.push(await bull.bulk(BULK));
          log(`batch round ${r + 1}: gantry map ${maps.at(-1).toFixed(0)} calls/s, BullMQ addBulk + worker ${bulks.at(-1).toFixed(0)} jobs/s (${BULK} each)`);
        }
        const mapPerS = round(median(maps), 0);
        bulkPerS = round(median(bulks), 0);
        rows.push({
          what: `batch: map of ${BULK} no-op inputs (calls/s)`,
          gantry: mapPerS,
          baseline: bulkPerS,
          baseline_name: "BullMQ addBulk + worker",
          ratio: round(mapPerS / bulkPerS, 2),
          target: "≥ 3×",
          ok: mapPerS / bulkPerS >= 3,
        });
      } else {
        rows.push({ what: "throughput vs BullMQ", gantry: g, baseline: `skipped: ${bull.skipped}`, baseline_name: "", ratio: null, target: "", ok: null });
      }
      report("throughput", {
        clients: CLIENTS,
        calls_per_round: CALLS,
        rounds: ROUNDS,
        calls_per_s: Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, v.map((x) => round(x.callsPerS, 0))])),
        gantry_repolls: rounds.gantry.map((x) => x.repolls),
        ratio,
        bullmq_bulk: bulkPerS === null ? null : { jobs: BULK, jobs_per_s: bulkPerS },
        rows,
      });
    } finally {
      http.noop.close();
      http.gantry.close();
      if (!bull.skipped) await bull.stop();
    }
  });
});
