#!/usr/bin/env node
// Reads V8 .cpuprofile files (node --cpu-prof) and prints where the time went: self time by
// function and by file, and total (inclusive) time of the heaviest functions. Usage:
//   node scripts/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--match TEXT]
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : args.splice(i, 2)[1];
};
const top = Number(flag("--top", "30"));
const match = flag("--match", "");

for (const file of args) {
  const prof = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const label = (n) => `${n.callFrame.functionName || "(anon)"} ${basename(n.callFrame.url || "")}:${n.callFrame.lineNumber + 1}`;
  const fileOf = (n) => n.callFrame.url || n.callFrame.functionName;
  const sum = (keyFn) => {
    const m = new Map();
    for (const [id, t] of self) {
      const k = keyFn(byId.get(id));
      m.set(k, (m.get(k) ?? 0) + t);
    }
    return [...m].sort((a, b) => b[1] - a[1]);
  };
  // inclusive time: each node's self time added to itself and every ancestor (once per label per stack)
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map();
  for (const [id, t] of self) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + t);
    }
  }
  const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const keep = ([k]) => !match || k.includes(match);
  console.log(`\n== ${file}: ${(total / 1000).toFixed(0)} ms sampled`);
  console.log("-- self time by function");
  for (const [k, t] of sum(label).filter(keep).slice(0, top)) console.log(`${pct(t)}  ${k}`);
  console.log("-- self time by file");
  for (const [k, t] of sum(fileOf).filter(keep).slice(0, 20)) console.log(`${pct(t)}  ${k.replace(/^file:\/\//, "")}`);
  console.log("-- inclusive time");
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).filter(keep).slice(0, top)) console.log(`${pct(t)}  ${k}`);
}
