// CPU time by process and by thread, read from /proc (Linux): what each process of a bench used
// between two snapshots. Used by profile-run.mjs to say how much CPU a call costs the daemon.
import { readdirSync, readFileSync } from "node:fs";

/** utime + stime of /proc/<path>/stat, in clock ticks (100 a second). */
function ticks(statPath) {
  const st = readFileSync(statPath, "utf8");
  const rest = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

/** Every process: pid → {ticks, cmd}. */
export function processes() {
  const m = new Map();
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      m.set(p, { t: ticks(`/proc/${p}/stat`), cmd: readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ").slice(0, 80) });
    } catch {
      /* gone meanwhile */
    }
  }
  return m;
}

/** CPU ticks of one thread (the main thread of a process has the process' id). */
export const threadTicks = (pid, tid = pid) => ticks(`/proc/${pid}/task/${tid}/stat`);

/** The processes that used the most CPU between two snapshots, as lines "1.23s PID CMD". */
export function busiest(before, after, top = 8) {
  const out = [];
  for (const [p, v] of after) {
    const d = v.t - (before.get(p)?.t ?? 0);
    if (d > 5) out.push([d, p, v.cmd]);
  }
  return out
    .sort((x, y) => y[0] - x[0])
    .slice(0, top)
    .map(([d, p, c]) => `${(d / 100).toFixed(2)}s ${p} ${c}`);
}
