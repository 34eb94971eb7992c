// Yardstick: per-call throughput. CLIENTS concurrent keep-alive clients each submit a call and
// wait for its result (GET /result?timeout=30), until CALLS calls are done; calls/s, versus the
// no-op HTTP server with the same client pattern. (DESIGN 4) Target: ≥ 0.7× the no-op server.
import { APP, deploy, log, main, makeClient, median, now, report, round, withServers } from "./lib.mjs";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
const CALLS = Number(process.env.BENCH_THROUGHPUT_CALLS ?? 1000);
const ROUNDS = 5; // the two servers take turns; the median round counts
const ROUND_LIMIT_MS = 30_000;

/** CLIENTS loops share a counter; resolves with calls/s and the extra polls (202 answers) seen. */
async function run(client, calls) {
  let next = 0;
  let repolls = 0;
  const deadline = now() + ROUND_LIMIT_MS;
  const t0 = now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < calls) {
        const i = next++;
        const { polls } = await client.call(APP, "noop", { i });
        repolls += polls - 1;
        if (now() > deadline) throw new Error(`a round of ${calls} calls took over ${ROUND_LIMIT_MS / 1000} s`);
      }
    }),
  );
  return { callsPerS: calls / ((now() - t0) / 1000), repolls };
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    await deploy(gantry);
    const clients = { noop: makeClient(noop.baseUrl, CLIENTS), gantry: makeClient(gantry.baseUrl, CLIENTS) };
    try {
      await clients.gantry.call(APP, "noop", { first: true }, { timeoutS: 60 }); // starts the container
      await run(clients.noop, 1000); // warm-up: JIT, sockets
      await run(clients.gantry, 500);
      const rounds = { noop: [], gantry: [] };
      for (let r = 0; r < ROUNDS; r++) {
        for (const which of ["noop", "gantry"]) {
          const res = await run(clients[which], CALLS);
          rounds[which].push(res);
          log(`round ${r + 1} ${which}: ${res.callsPerS.toFixed(0)} calls/s (${res.repolls} re-polls)`);
        }
      }
      const g = round(median(rounds.gantry.map((x) => x.callsPerS)), 0);
      const b = round(median(rounds.noop.map((x) => x.callsPerS)), 0);
      const ratio = round(g / b, 2);
      report("throughput", {
        clients: CLIENTS,
        calls_per_round: CALLS,
        rounds: ROUNDS,
        gantry_calls_per_s: rounds.gantry.map((x) => round(x.callsPerS, 0)),
        noop_server_calls_per_s: rounds.noop.map((x) => round(x.callsPerS, 0)),
        gantry_repolls: rounds.gantry.map((x) => x.repolls),
        ratio,
        rows: [
          { what: `throughput, ${CLIENTS} clients (calls/s)`, gantry: g, baseline: b, baseline_name: "no-op HTTP server", ratio, target: "≥ 0.7×", ok: ratio >= 0.7 },
        ],
      });
    } finally {
      clients.noop.close();
      clients.gantry.close();
    }
  });
});
