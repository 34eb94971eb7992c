// Latency probe (issue 25): sequential calls to one function, split into submit and result time.
//   node test/bench/probe-latency.mjs [fn=noop1x1] [calls=500]
import { GantryClient } from "../../dist/sdk/client.js";
import { APP, deploy, log, main, makeClient, now, summarize, withServers } from "./lib.mjs";

const [fnName = "noop1x1", callsArg = "500"] = process.argv.slice(2);
main(async () => {
  await withServers(["gantry", "noop"], async (gantry, noop) => {
    await deploy(gantry);
    const client = new GantryClient({ url: gantry.baseUrl });
    const fn = await client.functions.fromName(APP, fnName);
    for await (const _ of fn.map(Array.from({ length: 200 }, (_, k) => ({ k })))); // warm
    for (const [name, server] of [["gantry", gantry], ["noop", noop]]) {
      const http = makeClient(server.baseUrl, 1);
      const sub = [], res = [], tot = [];
      for (let i = 0; i < Number(callsArg); i++) {
        const t0 = now();
        const r = await http.call(APP, fnName, { i });
        const t = now() - t0;
        if (i >= 50) { sub.push(r.submitMs); res.push(t - r.submitMs); tot.push(t); }
      }
      log(`${name}: submit ${JSON.stringify(summarize(sub))}`);
      log(`${name}: result ${JSON.stringify(summarize(res))}`);
      log(`${name}: total  ${JSON.stringify(summarize(tot))}`);
      http.close();
    }
    client.close();
  });
}, 300_000);
