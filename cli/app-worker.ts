/**
 * Imports an app file's bundle in a worker thread, with a time limit, and answers its definitions.
 *
 * Why a worker thread and not the CLI's own thread or a child process: importing a module that
 * loops forever blocks the thread that imports it, so no timer of that thread ever fires; a worker
 * can be stopped mid-loop (`terminate()` interrupts running JavaScript). Unlike a child process it
 * cannot outlive the CLI (killed, or stopped with Ctrl-C, the CLI takes it along), needs no node
 * binary or script on disk (the code below runs as is, from the sources as from dist/), and starts
 * in tens of milliseconds with the CLI's environment, working folder and source-map support.
 *
 * The bundle is self-contained (the SDK inside it), so the worker needs nothing but node's own
 * modules. It sends back plain data: each definition's options, where it is defined, and which
 * exports hold it (as numbers standing for the values: `nameFunctionsByExport` runs on these).
 */
import { Worker } from "node:worker_threads";
import { pathToFileURL } from "node:url";

export interface WorkerDefinition {
  name: string;
  options: unknown;
  explicitName?: boolean;
  definedAt?: string;
  /** Which value `app.function(...)` returned (-1: none); `exports` maps export names to these. */
  exported: number;
  /** Registered under its name when defined (not named later by its export). */
  named: boolean;
}

export type WorkerLoad =
  | { ok: true; apps: Array<{ name: string; definitions: WorkerDefinition[] }>; exports: Record<string, number> }
  | { ok: false; stack: string };

/** Plain JavaScript (a string, so no compiler adds helpers the worker lacks). */
const WORKER_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
process.setSourceMapsEnabled(true);
const plain = (v) => { try { return structuredClone(v); } catch { return JSON.parse(JSON.stringify(v) ?? "null"); } };
const stackOf = (err) => (err && typeof err === "object" && err.stack ? String(err.stack) : String(err));
import(workerData.url).then(
  (moduleExports) => {
    const registry = globalThis[Symbol.for("gantry.app-registry")];
    const ids = new Map();
    const idOf = (v) => { if (v === undefined) return -1; if (!ids.has(v)) ids.set(v, ids.size); return ids.get(v); };
    const apps = [...(registry ? registry.values() : [])].map((app) => ({
      name: app.name,
      definitions: (app.definitions ?? [...app.functions.values()]).map((d) => ({
        name: d.name, options: plain(d.options), explicitName: d.explicitName, definedAt: d.definedAt,
        exported: idOf(d.exported), named: app.functions.get(d.name) === d,
      })),
    }));
    const exports = {};
    for (const [key, value] of Object.entries(moduleExports)) if (ids.has(value)) exports[key] = ids.get(value);
    parentPort.postMessage({ ok: true, apps, exports });
  },
  (err) => parentPort.postMessage({ ok: false, stack: stackOf(err) }),
);
`;

/** A worker with nothing left to run before its import settled: a top-level await nothing will resolve. */
const UNSETTLED = "the app file never finished loading: a top-level await waits for a promise that nothing will settle";

export interface WorkerLoadOptions {
  /** The limit: past it the worker is stopped and `onTimeout`'s error thrown. */
  timeoutS: number;
  onTimeout: () => Error;
  /** What the app prints while it loads: shown (as when loaded in the CLI's thread) or dropped. */
  output: "show" | "discard";
}

/** Imports the bundle at `bundleFile` in a worker thread; its definitions, or the stack of what it threw. */
export function loadInWorker(bundleFile: string, { timeoutS, onTimeout, output }: WorkerLoadOptions): Promise<WorkerLoad> {
  const discard = output === "discard";
  const worker = new Worker(WORKER_CODE, { eval: true, workerData: { url: pathToFileURL(bundleFile).href }, stdout: discard, stderr: discard });
  if (discard) {
    worker.stdout.resume();
    worker.stderr.resume();
  }
  return new Promise<WorkerLoad>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
      // Whatever the app left running (a timer, a server) ends with the worker; so does a loop that never ended.
      void worker.terminate();
    };
    const timer = setTimeout(() => settle(() => reject(onTimeout())), timeoutS * 1000);
    worker.once("message", (m: WorkerLoad) => settle(() => resolve(m)));
    // An error thrown outside the import (in a callback the app scheduled), and an app that ends the process, fail the load too.
    worker.once("error", (err) => settle(() => resolve({ ok: false, stack: err?.stack ?? String(err) })));
    worker.once("exit", (code) => settle(() => resolve({ ok: false, stack: `Error: ${code === 0 ? UNSETTLED : `the app file ended its process (exit code ${code}) before it finished loading`}` })));
  });
}
