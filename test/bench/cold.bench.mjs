// Yardstick: cold call, submit → result when no container of the function is running, versus a
// plain `docker run --rm` of the same image (node -e 0 in place of the agent). (DESIGN 4)
// Target: ≤ 1.25× the plain docker run. Between samples the function scales to zero
// (scaledownWindow 2 s); each sample waits until Docker shows its container gone.
import { APP, deploy, execFileP, log, main, makeClient, median, now, ownedContainers, report, round, sleep, summarize, withServers } from "./lib.mjs";

const SAMPLES = Number(process.env.BENCH_COLD_SAMPLES ?? 5);
const GONE_LIMIT_MS = 30_000;

async function untilNoContainer(daemonId, fn) {
  const until = now() + GONE_LIMIT_MS;
  while ((await ownedContainers(daemonId, fn)).length > 0) {
    if (now() > until) throw new Error(`the ${fn} container was still there ${GONE_LIMIT_MS / 1000} s after its call`);
    await sleep(100);
  }
}

async function plainDockerRun(image) {
  const t0 = now();
  await execFileP("docker", ["run", "--rm", "--network", "none", "--entrypoint", "node", image, "-e", "0"]);
  return now() - t0;
}

main(async () => {
  await withServers(["gantry"], async (gantry) => {
    const { done } = await deploy(gantry);
    const image = done.functions.find((f) => f.name === "cold").image;
    const client = makeClient(gantry.baseUrl, 1);
    try {
      await plainDockerRun(image); // warm-up: page cache, docker CLI
      const samples = { gantry: [], docker: [], gone: [] };
      await untilNoContainer(gantry.daemonId, "cold");
      for (let i = 0; i < SAMPLES; i++) {
        samples.docker.push(await plainDockerRun(image));
        const t0 = now();
        await client.call(APP, "cold", { i }, { timeoutS: 60, deadlineMs: 60_000 });
        const t1 = now();
        samples.gantry.push(t1 - t0);
        // scale to zero: from the call's result until Docker shows the container gone
        await untilNoContainer(gantry.daemonId, "cold");
        samples.gone.push(now() - t1);
        log(
          `cold sample ${i + 1}: gantry ${samples.gantry.at(-1).toFixed(0)} ms, docker run ${samples.docker.at(-1).toFixed(0)} ms; ` +
            `container gone ${samples.gone.at(-1).toFixed(0)} ms after the result (scaledownWindow 2 s)`,
        );
      }
      const g = summarize(samples.gantry);
      const b = summarize(samples.docker);
      const gm = round(median(samples.gantry), 0);
      const bm = round(median(samples.docker), 0);
      const ratio = round(gm / bm, 2);
      report("cold", {
        samples: SAMPLES,
        image,
        gantry_ms: g,
        docker_run_ms: b,
        // from a result until Docker shows the container gone (scaledownWindow 2 s + stop)
        scale_to_zero_ms: summarize(samples.gone),
        ratio_median: ratio,
        rows: [
          { what: "cold call, median (ms)", gantry: gm, baseline: bm, baseline_name: "docker run --rm (node -e 0)", ratio, target: "≤ 1.25×", ok: ratio <= 1.25 },
          { what: "scale to zero after the last call, median (ms)", gantry: round(median(samples.gone), 0), baseline: 2000, baseline_name: "scaledownWindow", ratio: null, target: "", ok: null },
        ],
      });
    } finally {
      client.close();
    }
  });
});
