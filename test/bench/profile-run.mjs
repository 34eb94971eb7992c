// Profiling aid (issue 25): runs a gantry daemon with --cpu-prof, warms the chosen function,
// then drives per-call (submit → result) and map load at it, and stops the daemon so Node
// writes its profile. Usage:
//   node test/bench/profile-run.mjs [fn=noop] [calls=4000] [mapInputs=10000] [dir=/tmp/prof]
// then: node scripts/cpuprofile-top.mjs DIR/*.cpuprofile. dir "none" runs without the profiler.
// It also prints the CPU each process used during the map, and the daemon's main thread's per call.
import { GantryClient } from "../../dist/sdk/client.js";
import { busiest, processes, threadTicks } from "./cpu-times.mjs";
import { APP, deploy, gantryMap, log, main, makeClient, perCall, withServers } from "./lib.mjs";

const [fnName = "noop", callsArg = "4000", mapArg = "10000", dir = "/tmp/prof"] = process.argv.slice(2);
if (dir !== "none") process.env.BENCH_SERVER_NODE_ARGS = `--cpu-prof --cpu-prof-dir=${dir}`;
const SLOTS = { noop: 100, noop4x8: 32, noop1x1: 1 };

main(async () => {
  await withServers(["gantry"], async (gantry) => {
    await deploy(gantry);
    const client = new GantryClient({ url: gantry.baseUrl });
    await gantryMap(client, fnName, 2000); // warm
    const slots = SLOTS[fnName] ?? 32;
    const http = makeClient(gantry.baseUrl, slots);
    const calls = Number(callsArg);
    const perCallBefore = threadTicks(gantry.pid);
    const perCallRate = await perCall((x) => http.call(APP, fnName, x), calls, slots);
    const perCallMs = (threadTicks(gantry.pid) - perCallBefore) * 10;
    log(`per call: ${perCallRate.toFixed(0)} calls/s; the daemon's main thread: ${((perCallMs * 1000) / Math.max(calls, 1)).toFixed(1)} µs a call`);
    const before = processes();
    const mainBefore = threadTicks(gantry.pid);
    const n = Number(mapArg);
    log(`map: ${(await gantryMap(client, fnName, n)).toFixed(0)} calls/s`);
    const mainMs = (threadTicks(gantry.pid) - mainBefore) * 10;
    log(`CPU during the map:\n    ${busiest(before, processes()).join("\n    ")}`);
    log(`the daemon's main thread: ${mainMs} ms, ${((mainMs * 1000) / n).toFixed(1)} µs a call`);
    http.close();
    client.close();
  });
}, 600_000);
