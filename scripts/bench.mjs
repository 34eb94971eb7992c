#!/usr/bin/env node
// npm run bench: gantry's yardsticks (DESIGN 4), each measured side by side with its baseline in
// one run on this machine. Runs every test/bench/*.bench.mjs in its own process, one at a time,
// prints a summary table and writes all figures to test/bench/results.json.
//   node scripts/bench.mjs [name ...]   only the named benches (latency, throughput, cold, redeploy, ...)
//   --build                             run npm run build first even when dist/ exists
//   --strict                            exit 1 when a target is missed (default: report only)
// Needs a running Docker engine and the base image (scripts/setup.sh makes both).
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, "test", "bench");
const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith("--")));
const only = args.filter((a) => !a.startsWith("--"));
const ORDER = ["latency", "throughput", "cold", "redeploy", "scale"];
const PER_BENCH_LIMIT_MS = 170_000;
/** Benches that take longer by design (three container shapes, each with three contenders). */
const LONGER_LIMIT_MS = { shapes: 620_000 };

const needsBuild = ["dist/daemon/daemon.js", "dist/cli/bundle-app.js", "dist/sdk/index.js", "runtime-images/node/dist/agent.cjs"].some(
  (p) => !existsSync(join(root, p)),
);
if (needsBuild || flags.has("--build")) {
  console.error("bench: building (npm run build) …");
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
}

const found = readdirSync(benchDir)
  .filter((f) => f.endsWith(".bench.mjs"))
  .map((f) => f.slice(0, -".bench.mjs".length))
  .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
const unknown = only.filter((n) => !found.includes(n));
if (unknown.length) {
  console.error(`bench: no such bench: ${unknown.join(", ")} (have: ${found.join(", ")})`);
  process.exit(2);
}
const names = only.length ? found.filter((n) => only.includes(n)) : found;

function runOne(name, outFile) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(benchDir, `${name}.bench.mjs`)], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, BENCH_OUT: outFile },
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), LONGER_LIMIT_MS[name] ?? PER_BENCH_LIMIT_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

const dockerVersion = (() => {
  try {
    return execFileSync("docker", ["version", "--format", "{{.Server.Version}}"], { encoding: "utf8" }).trim();
  } catch {
    return null;
  }
})();
const results = {
  started_at: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? null,
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    load_average_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    docker: dockerVersion,
    platform: `${os.platform()} ${os.release()}`,
  },
  benches: {},
};

const tmp = mkdtempSync(join(os.tmpdir(), "gantry-bench-out-"));
let failed = 0;
try {
  for (const name of names) {
    console.error(`\n── bench ${name} ──`);
    const outFile = join(tmp, `${name}.json`);
    const load = os.loadavg()[0];
    const r = await runOne(name, outFile);
    if (r.code === 0 && existsSync(outFile)) {
      results.benches[name] = {
        ...JSON.parse(readFileSync(outFile, "utf8")),
        seconds: Math.round(r.seconds * 10) / 10,
        load_average_1m_at_start: Math.round(load * 100) / 100,
      };
    } else {
      failed++;
      results.benches[name] = { name, error: `exited with ${r.signal ?? `code ${r.code}`}`, seconds: Math.round(r.seconds * 10) / 10 };
      console.error(`bench ${name} failed (${r.signal ?? `code ${r.code}`})`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
results.finished_at = new Date().toISOString();

// ── summary table ───────────────────────────────────────────────────────────────────────────
const fmt = (v) => (v === null || v === undefined ? "" : typeof v === "number" ? String(v) : String(v));
const rows = [["what", "gantry", "baseline", "ratio", "target", "met"]];
for (const name of names) {
  const b = results.benches[name];
  if (b.error) {
    rows.push([`${name}: FAILED (${b.error})`, "", "", "", "", ""]);
    continue;
  }
  for (const row of b.rows ?? []) {
    rows.push([
      row.what,
      fmt(row.gantry),
      row.baseline === null || row.baseline === undefined ? "" : `${row.baseline} (${row.baseline_name})`,
      row.ratio === null || row.ratio === undefined ? "" : `${row.ratio}×`,
      row.target ?? "",
      row.ok === null || row.ok === undefined ? "" : row.ok ? "yes" : "NO",
    ]);
  }
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
const line = (r) => "| " + r.map((c, i) => c + " ".repeat(widths[i] - [...c].length)).join(" | ") + " |";
const table = [line(rows[0]), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.slice(1).map(line)].join("\n");
results.summary = rows.slice(1).map((r) => Object.fromEntries(rows[0].map((h, i) => [h, r[i]])));

const outPath = join(benchDir, "results.json");
writeFileSync(outPath, JSON.stringify(results, null, 2) + "\n");
console.log(`\ngantry benchmarks — ${results.machine.cpus} CPUs, node ${results.machine.node}, docker ${results.machine.docker ?? "?"}, load ${results.machine.load_average_at_start.join(" ")}`);
console.log(table);
console.log(`\nfigures: ${outPath}`);

const missed = results.summary.filter((r) => r.met === "NO").length;
if (failed) process.exit(1);
if (missed && flags.has("--strict")) process.exit(1);
