// Speed at every container shape (issue 25): for 1×1, 4×8 and 2×50 containers × inputs, the
// client's map over many no-op inputs against BullMQ addBulk + a worker of the same concurrency,
// and per-call throughput (as many clients as slots, each submitting and waiting) against BullMQ
// add → completed at that concurrency and the no-op HTTP server. Same run, rounds taken in turn;
// medians with their ranges. Targets (DESIGN 4): map ≥ 3× BullMQ; per call ≥ 0.7× the no-op
// server and ≥ 1.0× BullMQ. Per call is also measured on a second daemon started with
// --durability relaxed (acknowledged once committed, as Redis acknowledges BullMQ's jobs without
// waiting for a disk), for comparison: the targets are read off the default (full) one.
import { GantryClient } from "../../dist/sdk/client.js";
import { startBullmq } from "./bullmq.mjs";
import { APP, deploy, gantryMap, log, main, makeClient, median, now, perCall, report, round, startServer, withServers } from "./lib.mjs";

const SHAPES = [
  { fn: "noop1x1", containers: 1, inputs: 1, mapInputs: 1000, calls: 500 },
  { fn: "noop4x8", containers: 4, inputs: 8, mapInputs: 5000, calls: 2000 },
  { fn: "noop", containers: 2, inputs: 50, mapInputs: 10_000, calls: 2000 },
];
const ROUNDS = Number(process.env.BENCH_SHAPE_ROUNDS ?? 3);

const spread = (xs) => ({ median: round(median(xs), 0), min: round(Math.min(...xs), 0), max: round(Math.max(...xs), 0) });

async function measureShape(shape, servers, rows, figures) {
  const slots = shape.containers * shape.inputs;
  const bull = await startBullmq({ concurrency: slots });
  if (bull.skipped) throw new Error(`the shapes bench needs BullMQ: ${bull.skipped}`);
  const client = new GantryClient({ url: servers.gantry.baseUrl });
  const http = { noop: makeClient(servers.noop.baseUrl, slots), gantry: makeClient(servers.gantry.baseUrl, slots), relaxed: makeClient(servers.relaxed.baseUrl, slots) };
  try {
    await gantryMap(client, shape.fn, shape.mapInputs); // warm-up: every container of the shape up and warm
    await bull.bulk(shape.mapInputs);
    await perCall((x) => http.relaxed.call(APP, shape.fn, x), Math.min(shape.calls, 500), slots); // its containers up and warm
    const maps = [];
    const bulks = [];
    const calls = { gantry: [], bullmq: [], noop: [], relaxed: [] };
    for (let r = 0; r < ROUNDS; r++) {
      maps.push(await gantryMap(client, shape.fn, shape.mapInputs));
      bulks.push(await bull.bulk(shape.mapInputs));
      calls.gantry.push(await perCall((x) => http.gantry.call(APP, shape.fn, x), shape.calls, slots));
      calls.bullmq.push(await perCall((x) => bull.call(x), shape.calls, slots));
      calls.noop.push(await perCall((x) => http.noop.call(APP, shape.fn, x), shape.calls, slots));
      calls.relaxed.push(await perCall((x) => http.relaxed.call(APP, shape.fn, x), shape.calls, slots));
      log(
        `${shape.containers}×${shape.inputs} round ${r + 1}: map ${maps.at(-1).toFixed(0)} vs addBulk ${bulks.at(-1).toFixed(0)}; per call ${calls.gantry.at(-1).toFixed(0)} (relaxed ${calls.relaxed.at(-1).toFixed(0)}) vs BullMQ ${calls.bullmq.at(-1).toFixed(0)} vs no-op ${calls.noop.at(-1).toFixed(0)} (calls/s)`,
      );
    }
    const name = `${shape.containers}×${shape.inputs}`;
    const m = spread(maps);
    const b = spread(bulks);
    const g = spread(calls.gantry);
    const q = spread(calls.bullmq);
    const n = spread(calls.noop);
    const x = spread(calls.relaxed);
    figures[name] = { map: m, bullmq_bulk: b, per_call: g, bullmq_call: q, noop_call: n, per_call_relaxed: x, slots };
    const range = (x) => `${x.min}–${x.max}`;
    rows.push({ what: `${name} map of ${shape.mapInputs} (calls/s; ${range(m)})`, gantry: m.median, baseline: b.median, baseline_name: `BullMQ addBulk + worker (${range(b)})`, ratio: round(m.median / b.median, 2), target: "≥ 3×", ok: m.median / b.median >= 3 });
    rows.push({ what: `${name} per call, ${slots} clients (calls/s; ${range(g)})`, gantry: g.median, baseline: q.median, baseline_name: `BullMQ add → completed (${range(q)})`, ratio: round(g.median / q.median, 2), target: "≥ 1.0×", ok: g.median / q.median >= 1 });
    rows.push({ what: `${name} per call, ${slots} clients (calls/s)`, gantry: g.median, baseline: n.median, baseline_name: `no-op HTTP server (${range(n)})`, ratio: round(g.median / n.median, 2), target: "≥ 0.7×", ok: g.median / n.median >= 0.7 });
    rows.push({ what: `${name} per call, --durability relaxed (calls/s; ${range(x)})`, gantry: x.median, baseline: q.median, baseline_name: `BullMQ add → completed`, ratio: round(x.median / q.median, 2), target: "(for comparison)", ok: null });
  } finally {
    client.close();
    http.noop.close();
    http.gantry.close();
    http.relaxed.close();
    await bull.stop();
  }
}

main(async () => {
  await withServers(["noop", "gantry"], async (noop, gantry) => {
    const relaxed = await startServer("gantry", { env: { BENCH_DURABILITY: "relaxed" } });
    try {
      await deploy(gantry);
      await deploy(relaxed);
      const rows = [];
      const figures = {};
      const t0 = now();
      for (const shape of SHAPES) await measureShape(shape, { noop, gantry, relaxed }, rows, figures);
      report("shapes", { rounds: ROUNDS, seconds: round((now() - t0) / 1000, 0), figures, rows });
    } finally {
      await relaxed.stop();
    }
  });
}, 600_000);
