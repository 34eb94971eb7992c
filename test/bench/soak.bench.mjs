// Soak (issue 22): a million short calls through the store, and gantry.db does not grow without
// bound. Calls through a function's container run at a few thousand a second on this machine, so
// the calls are written straight into a real store instead: CallStore and GroupCommit over a temp
// gantry.db, in waves, each call inserted then finished with a result, as the dispatcher does. A
// fake clock moves an hour per wave; results expire after a minute (the daemon's expiry sweep,
// CallStore.expireResults, drops their input and result) and the history window is 2 hours, pruned
// after each wave by the real History service (batches through the group commit, then incremental
// vacuum). The file's size is recorded after each wave; it should stay flat once the window is full.
// While each prune runs, single calls are inserted one after another: their commit latency shows
// whether the prune stalls call writes.
//   BENCH_SOAK_CALLS=200000 node test/bench/soak.bench.mjs   (default 1,000,000; 200,000 under
//   npm run bench; 10 waves, BENCH_SOAK_WAVES)
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newCallId } from "../../dist/daemon/core/ids.js";
import { History } from "../../dist/daemon/service/history.js";
import { CallStore } from "../../dist/daemon/store/call-store.js";
import { openDatabase } from "../../dist/daemon/store/database.js";
import { GroupCommit } from "../../dist/daemon/store/group-commit.js";
import { log, main, median, now, onCleanup, report, round, summarize } from "./lib.mjs";

// Alone, the million; under scripts/bench.mjs (BENCH_OUT set), which stops a bench after 170 s, 200,000.
const CALLS = Number(process.env.BENCH_SOAK_CALLS ?? (process.env.BENCH_OUT ? 200_000 : 1_000_000));
const WAVES = Number(process.env.BENCH_SOAK_WAVES ?? 10);
const HOUR = 3600_000;
const RESULT_TTL_MS = 60_000;
const WINDOW_MS = 2 * HOUR;
/** Calls per insertMany (one transaction), and finishes in flight at once. */
const CHUNK = 1000;
const IN_FLIGHT = 5000;

const fileSize = (path) => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};
const mib = (bytes) => round(bytes / 2 ** 20, 1);

/** Writes `n` finished calls at `clock`: inserted queued in chunks, then each finished with a result. */
async function writeWave(calls, n, clock, wave) {
  for (let done = 0; done < n; ) {
    const size = Math.min(IN_FLIGHT, n - done);
    const batch = Array.from({ length: size }, (_, i) => ({ id: newCallId(clock, randomBytes), args: [{ wave, i: done + i, pad: "x".repeat(64) }], kwargs: null }));
    const inserts = [];
    for (let i = 0; i < size; i += CHUNK) inserts.push(calls.insertMany("soak", "echo", batch.slice(i, i + CHUNK), clock));
    await Promise.all(inserts);
    await Promise.all(
      batch.map((c) => {
        const rec = { ...calls.get(c.id), status: "succeeded", startedAt: clock, finishedAt: clock, expiresAt: clock + RESULT_TTL_MS, resultJson: JSON.stringify({ ok: true, echo: c.args[0] }) };
        return calls.finish(rec, { status: "queued", attempt: 1 });
      }),
    );
    done += size;
  }
}

/** Runs the expiry sweep as the daemon does (5,000 a run) until nothing is left to expire. */
async function expireAll(calls, clock) {
  let total = 0;
  for (let n; (n = await calls.expireResults(clock)) > 0; ) total += n;
  return total;
}

/** Inserts `n` single calls one after another; their commit latencies (ms). */
async function singleInserts(calls, n, clock) {
  const latencies = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await calls.insert({ id: newCallId(clock, randomBytes), app: "soak", function: "live", args: [1], now: clock });
    latencies.push(now() - t0);
  }
  return latencies;
}

/** Prunes while inserting single calls one after another; returns the report and their commit latencies. */
async function pruneUnderLoad(history, calls, clock) {
  const latencies = [];
  let pruning = true;
  const writer = (async () => {
    while (pruning) {
      const t0 = now();
      await calls.insert({ id: newCallId(clock, randomBytes), app: "soak", function: "live", args: [1], now: clock });
      latencies.push(now() - t0);
    }
  })();
  const t0 = now();
  const r = await history.prune();
  const ms = now() - t0;
  pruning = false;
  await writer;
  return { r, ms, latencies };
}

main(async () => {
  const dir = mkdtempSync(join(tmpdir(), "gt-bench-soak-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "gantry.db");
  const db = openDatabase(file);
  const commit = new GroupCommit(db);
  const calls = new CallStore(db, commit);
  let clock = Date.UTC(2027, 0, 1);
  const batchRows = process.env.BENCH_SOAK_BATCH ? { batchRows: Number(process.env.BENCH_SOAK_BATCH) } : {};
  const history = new History({ store: calls.history, windowMs: WINDOW_MS, clock: () => clock, ...batchRows });
  const perWave = Math.ceil(CALLS / WAVES);
  const waves = [];
  const idle = await singleInserts(calls, 200, clock);
  const started = now();
  for (let w = 0; w < WAVES; w++) {
    const t0 = now();
    await writeWave(calls, perWave, clock, w);
    const writeMs = now() - t0;
    clock += RESULT_TTL_MS;
    const expired = await expireAll(calls, clock);
    clock += HOUR - RESULT_TTL_MS;
    const { r, ms, latencies } = await pruneUnderLoad(history, calls, clock);
    // The same inserts right after, with no prune: the baseline on this machine's load of the moment.
    const alone = await singleInserts(calls, latencies.length, clock);
    const row = {
      wave: w + 1,
      calls_written: (w + 1) * perWave,
      write_calls_per_s: Math.round(perWave / (writeMs / 1000)),
      expired,
      pruned: r.calls,
      prune_ms: Math.round(ms),
      vacuumed_pages: r.vacuumed_pages,
      rows_kept: db.prepare(`SELECT count(*) FROM calls`).pluck().get(),
      db_mib: mib(fileSize(file)),
      wal_mib: mib(fileSize(`${file}-wal`)),
      sqlite_mib: mib(r.db_bytes_after),
      insert_during_prune_ms: summarize(latencies),
      insert_after_prune_ms: summarize(alone),
    };
    waves.push(row);
    log(`wave ${row.wave}: ${row.calls_written} written (${row.write_calls_per_s}/s), ${row.expired} expired, ${row.pruned} pruned in ${row.prune_ms} ms; ` +
      `${row.rows_kept} rows kept; gantry.db ${row.db_mib} MiB, -wal ${row.wal_mib} MiB; an insert during the prune p50 ${row.insert_during_prune_ms.p50} ms, max ${row.insert_during_prune_ms.max} ms (n=${row.insert_during_prune_ms.n}); ` +
      `after it p50 ${row.insert_after_prune_ms.p50} ms, max ${row.insert_after_prune_ms.max} ms`);
  }
  const totalS = (now() - started) / 1000;
  commit.close();
  db.close();

  // Flat: once the window is full (from the third wave), the largest size is within 25 % of the smallest.
  const steady = waves.slice(2).map((w) => w.db_mib);
  const flat = steady.length ? Math.max(...steady) <= Math.min(...steady) * 1.25 : null;
  const idleInsert = summarize(idle);
  const during = waves.slice(1).map((w) => w.insert_during_prune_ms);
  const after = waves.slice(1).map((w) => w.insert_after_prune_ms);
  const medianOf = (xs) => round(median(xs), 2);
  const rows = [
    { what: `gantry.db after ${WAVES} waves of ${perWave.toLocaleString("en-US")} calls (MiB)`, gantry: waves.at(-1).db_mib, baseline: waves[Math.min(2, waves.length - 1)].db_mib, baseline_name: "after wave 3 (window full)", ratio: round(waves.at(-1).db_mib / waves[Math.min(2, waves.length - 1)].db_mib, 2), target: "flat", ok: flat },
    { what: "single insert while a prune runs, p50 (median of waves, ms)", gantry: medianOf(during.map((x) => x.p50)), baseline: medianOf(after.map((x) => x.p50)), baseline_name: "the same inserts right after the prune", ratio: round(median(during.map((x) => x.p50)) / median(after.map((x) => x.p50)), 1), target: "no stall", ok: null },
    { what: "single insert while a prune runs, max (median of waves, ms)", gantry: medianOf(during.map((x) => x.max)), baseline: medianOf(after.map((x) => x.max)), baseline_name: "the same inserts right after the prune", ratio: round(median(during.map((x) => x.max)) / median(after.map((x) => x.max)), 1), target: "", ok: null },
  ];
  log(`${CALLS.toLocaleString("en-US")} calls in ${round(totalS, 1)} s; flat from wave 3: ${flat}`);
  report("soak", { calls: CALLS, waves: WAVES, result_ttl_ms: RESULT_TTL_MS, window_ms: WINDOW_MS, total_s: round(totalS, 1), idle_insert_ms: idleInsert, per_wave: waves, rows });
}, Number(process.env.BENCH_SOAK_LIMIT_S ?? 900) * 1000);
