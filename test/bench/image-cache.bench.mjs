// Image builds with pip_install (issue 16), side by side with plain `docker build` of the same
// work in the same run: a full build (numpy from the package index), a rebuild after changing
// only the last step (Docker's layer cache keeps the pip layer), and an unchanged redeploy
// (nothing built). Each run starts cold with a fresh marker before the pip step.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readPythonApp } from "../../dist/cli/python-app.js";
import { readHostIndexSettings } from "../../dist/daemon/host/index-settings.js";
import { GantryClient } from "../../dist/sdk/client.js";
import { execFileP, log, main, now, report, round, withServers } from "./lib.mjs";

const BASE = "gantry/base-python:2";

function appFile(dir, marker, stamp) {
  const file = join(dir, "bench_pip.py");
  writeFileSync(
    file,
    `import gantry as modal\napp = modal.App("bench-pip")\n` +
      `image = modal.Image.debian_slim().run_commands("echo ${marker}").pip_install("numpy").env({"STAMP": "${stamp}"})\n` +
      `@app.function(image=image)\ndef f():\n    import numpy\n    return numpy.__version__\n`,
  );
  return file;
}

async function deployPy(server, file) {
  const t0 = now();
  const app = await readPythonApp(file);
  const client = new GantryClient({ socketPath: server.socketPath });
  const events = [];
  try {
    const body = { app: app.app, runtime: "python", functions: app.functions, files: app.files, module: app.module, assets: app.assets };
    await client.transport.stream("POST", "/v1/apps/deploy", body, (e) => events.push(e));
  } finally {
    client.close();
  }
  const done = events.at(-1);
  if (done?.type !== "done") throw new Error(`deploy failed: ${JSON.stringify(done)}`);
  return { ms: now() - t0, built: done.built.length };
}

/** The same steps as a hand-written Dockerfile built with the docker CLI (the host's CA copied in, as gantry does). */
async function dockerBuild(dir, marker, stamp, noCache) {
  const ca = readHostIndexSettings().files["ca.pem"];
  if (ca) writeFileSync(join(dir, "ca.pem"), ca);
  writeFileSync(
    join(dir, "Dockerfile"),
    `FROM ${BASE}\n${ca ? "COPY ca.pem /ca.pem\nENV PIP_CERT=/ca.pem\n" : ""}RUN echo ${marker}\n` +
      `RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir numpy\nENV STAMP=${stamp}\n`,
  );
  const t0 = now();
  await execFileP("docker", ["build", "-q", ...(noCache ? ["--no-cache"] : []), "-t", "gantry-bench/plain-pip:1", dir], { maxBuffer: 1 << 24 });
  return now() - t0;
}

main(async () => {
  const dir = mkdtempSync(join(tmpdir(), "gantry-bench-pip-"));
  const plainDir = mkdtempSync(join(tmpdir(), "gantry-bench-plain-"));
  const marker = `bench-${Date.now()}`;
  try {
    const plainFull = await dockerBuild(plainDir, marker, "1", true);
    const plainLast = await dockerBuild(plainDir, marker, "2", false);
    log(`docker build: full ${plainFull.toFixed(0)} ms, last step changed ${plainLast.toFixed(0)} ms`);
    await withServers(["gantry"], async (gantry) => {
      const full = await deployPy(gantry, appFile(dir, marker, "1"));
      const last = await deployPy(gantry, appFile(dir, marker, "2"));
      const same = await deployPy(gantry, appFile(dir, marker, "2"));
      log(`gantry deploy: full ${full.ms.toFixed(0)} ms, last step changed ${last.ms.toFixed(0)} ms, unchanged ${same.ms.toFixed(0)} ms (built ${same.built})`);
      report("image-cache", {
        rows: [
          { what: "pip_install('numpy') image, full build (ms)", gantry: round(full.ms, 0), baseline: round(plainFull, 0), baseline_name: "docker build --no-cache", ratio: round(full.ms / plainFull, 2), target: "≈ docker build", ok: null },
          { what: "same image, last step changed (ms)", gantry: round(last.ms, 0), baseline: round(plainLast, 0), baseline_name: "docker build, cached", ratio: round(last.ms / plainLast, 2), target: "rebuilds only what follows", ok: last.ms < full.ms / 2 },
          { what: "unchanged redeploy (ms, images built)", gantry: `${round(same.ms, 0)}, ${same.built}`, baseline: null, baseline_name: "", ratio: null, target: "< 1000 ms, 0 built", ok: same.ms < 1000 && same.built === 0 },
        ],
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(plainDir, { recursive: true, force: true });
    await execFileP("docker", ["rmi", "-f", "gantry-bench/plain-pip:1"]).catch(() => undefined);
  }
}, 600_000);
