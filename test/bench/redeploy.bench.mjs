// Yardstick: unchanged redeploy builds nothing and takes under 1 s. (DESIGN 4)
// Measured two ways: in process (bundle with esbuild + the deploy request, as `gantry deploy`
// does) and end to end with the CLI itself (`node bin/gantry.js deploy`, a new process each
// time). Also checks that the warm container survives an unchanged redeploy (nothing to drain).
import { join } from "node:path";
import { APP, benchApp, deploy, execFileP, log, main, makeClient, median, now, ownedContainers, repoRoot, report, round, withServers } from "./lib.mjs";

const SAMPLES = Number(process.env.BENCH_REDEPLOY_SAMPLES ?? 5);

main(async () => {
  await withServers(["gantry"], async (gantry) => {
    const first = await deploy(gantry);
    log(`first deploy: ${first.totalMs.toFixed(0)} ms, built ${first.done.built.length}, cached ${first.done.cached.length}`);
    const client = makeClient(gantry.baseUrl, 1);
    try {
      await client.call(APP, "noop", { warm: true }, { timeoutS: 60 });
      const before = (await ownedContainers(gantry.daemonId, "noop")).map((c) => c.id).sort();

      const sdk = [];
      const request = [];
      let built = 0;
      for (let i = 0; i < SAMPLES; i++) {
        const d = await deploy(gantry);
        sdk.push(d.totalMs);
        request.push(d.requestMs);
        built += d.done.built.length;
      }
      const cli = [];
      for (let i = 0; i < SAMPLES; i++) {
        const t0 = now();
        const { stdout } = await execFileP(process.execPath, [join(repoRoot, "bin", "gantry.js"), "--json", "deploy", benchApp], {
          env: { ...process.env, GANTRY_HOME: gantry.home, GANTRY_URL: "" },
          timeout: 30_000,
        });
        cli.push(now() - t0);
        built += JSON.parse(stdout).built.length;
      }
      await client.call(APP, "noop", { after: true }, { timeoutS: 60 });
      const after = (await ownedContainers(gantry.daemonId, "noop")).map((c) => c.id).sort();
      const kept = JSON.stringify(before) === JSON.stringify(after);
      if (!kept) log(`warning: the noop container changed across unchanged redeploys: ${before} → ${after}`);

      const sdkMed = round(median(sdk), 0);
      const cliMed = round(median(cli), 0);
      log(`redeploy ms: in-process ${sdk.map((x) => x.toFixed(0)).join(" ")}; request alone ${request.map((x) => x.toFixed(0)).join(" ")}; CLI ${cli.map((x) => x.toFixed(0)).join(" ")}`);
      report("redeploy", {
        samples: SAMPLES,
        first_deploy_ms: round(first.totalMs, 0),
        first_deploy_built: first.done.built.length,
        in_process_ms: sdk.map((x) => round(x, 1)),
        request_only_ms: request.map((x) => round(x, 1)),
        cli_ms: cli.map((x) => round(x, 0)),
        images_built_by_redeploys: built,
        warm_container_kept: kept,
        rows: [
          { what: "unchanged redeploy, in process, median (ms)", gantry: sdkMed, baseline: null, baseline_name: "", ratio: null, target: "< 1000 ms, 0 built", ok: sdkMed < 1000 && built === 0 },
          { what: "unchanged redeploy, CLI process, median (ms)", gantry: cliMed, baseline: null, baseline_name: "", ratio: null, target: "< 1000 ms, 0 built", ok: cliMed < 1000 && built === 0 },
          { what: "warm container kept across redeploys", gantry: kept ? "yes" : "no", baseline: null, baseline_name: "", ratio: null, target: "yes", ok: kept },
        ],
      });
    } finally {
      client.close();
    }
  });
});
