/**
 * `gantry serve FILE`: deploys an app file as `gantry deploy` does, then redeploys it each time the
 * files it was made from change (the app file, the local modules it imports, the local files its
 * images copy), until Ctrl-C or SIGTERM stops the app. A file that no longer loads, or a build that
 * fails, is reported and the watch goes on: the next save tries again. The app is deployed as
 * ephemeral and heartbeated: if serve is killed without stopping it, the daemon does.
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import type { DeployEvent } from "../../protocol/api.js";
import type { GantryClient } from "../../sdk/client.js";
import { DaemonNotRunningError, GantryError, InvalidArgumentError, NotFoundError } from "../../sdk/errors.js";
import { AppFileError } from "../app-file-error.js";
import { makeContext } from "../context.js";
import type { Output } from "../output.js";
import type { Runner } from "../runner.js";
import { ChangeQueue, changeSummary, Debouncer, DEBOUNCE_MS, FolderWatcher, watchPlan } from "../serve-watch.js";
import { heartbeatApp } from "../app-heartbeat.js";
import { LOAD_TIMEOUT_HELP, LOAD_TIMEOUT_OPTION, loadTimeoutSeconds } from "../load-timeout.js";
import { deployFile, readApp, type ReadApp } from "./deploy.js";

type Done = Extract<DeployEvent, { type: "done" }>;

export interface ServedFunction {
  name: string;
  web_url: string | null;
  web_methods: Record<string, string>;
}

/** What serve reports: one JSON line each with --json. */
export type ServeEvent =
  | { event: "serving"; app: string; file: string; replacing: boolean }
  | { event: "deployed"; app: string; seconds: number; built: string[]; cached: string[]; functions: ServedFunction[]; watching: number }
  | { event: "changed"; files: string[] }
  | { event: "error"; error: { code: string; message: string } }
  | { event: "stopped"; app: string; stopped: boolean };

const onSocket = (url: string) => (url.startsWith("/") ? " (on the daemon's socket; start it with --http-port to serve TCP)" : "");

/** An event for people: where it goes (the deployed app and its end on stdout, the rest on stderr) and its text ("" for none). */
export function humanEvent(e: ServeEvent, cwd: string): { to: "stdout" | "stderr"; text: string } {
  switch (e.event) {
    case "serving":
      return { to: "stderr", text: e.replacing ? `app ${e.app} is deployed; serve will replace it, and Ctrl-C stops it` : "" };
    case "deployed": {
      const urls = e.functions.flatMap((f) => [
        ...(f.web_url ? [`  web endpoint ${f.name}: ${f.web_url}${onSocket(f.web_url)}`] : []),
        ...Object.entries(f.web_methods ?? {}).map(([m, url]) => `  web endpoint ${f.name}.${m}: ${url}${onSocket(url)}`),
      ]);
      return {
        to: "stdout",
        text: [
          `✓ deployed app ${e.app} in ${e.seconds.toFixed(1)} s (${e.built.length} image(s) built, ${e.cached.length} unchanged)`,
          ...urls,
          `watching ${e.watching} folder(s) for changes; Ctrl-C stops app ${e.app}`,
        ].join("\n"),
      };
    }
    case "changed":
      return { to: "stderr", text: `↻ changed: ${changeSummary(e.files, cwd)}; redeploying …` };
    case "error":
      return { to: "stderr", text: `✗ ${e.error.message}\n  still watching: save a fix to deploy again` };
    case "stopped":
      return { to: "stdout", text: e.stopped ? `✓ stopped app ${e.app}` : `app ${e.app} left as it was: serve never deployed it` };
  }
}

function deployedEvent(d: Done, started: number, watching: number): ServeEvent {
  return {
    event: "deployed",
    app: d.app,
    seconds: (Date.now() - started) / 1000,
    built: d.built,
    cached: d.cached,
    functions: d.functions.map((f) => ({ name: f.name, web_url: f.web_url, web_methods: f.web_methods ?? {} })),
    watching,
  };
}

function errorBody(err: unknown, verbose: boolean): { code: string; message: string } {
  if (err instanceof GantryError) return { code: err.code, message: verbose && err instanceof AppFileError ? err.verboseMessage : err.message };
  return { code: "error", message: (err as Error)?.message ?? String(err) };
}

/** The app's state in the daemon ("deployed", "stopped"), or null when it knows no such app. */
async function appState(client: GantryClient, app: string): Promise<string | null> {
  try {
    return (await client.transport.json<{ state: string }>("GET", `/v1/apps/${encodeURIComponent(app)}`)).state;
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
}

export interface ServeOptions {
  out: Output;
  client: GantryClient;
  json: boolean;
  verbose: boolean;
  /** Where SIGINT and SIGTERM arrive (tests give their own). */
  signals?: Pick<NodeJS.EventEmitter, "on" | "off">;
  /** Writes an event's line (default: to the process's stdout or stderr). */
  print?: (to: "stdout" | "stderr", line: string) => void;
  /** Seconds the app file may take to load, at each read (cli/load-timeout.ts). */
  loadTimeoutS?: number;
}

const printLine = (to: "stdout" | "stderr", line: string) => void (to === "stdout" ? process.stdout : process.stderr).write(line + "\n");

/** Serves `file` until SIGINT or SIGTERM, then stops its app. */
export async function serve(file: string, { out, client, json, verbose, signals = process, print = printLine, loadTimeoutS }: ServeOptions): Promise<void> {
  const cwd = process.cwd();
  const emit = (e: ServeEvent) => {
    out.endProgress();
    if (json) return print("stdout", JSON.stringify(e));
    const { to, text } = humanEvent(e, cwd);
    if (text) print(to, text);
  };

  // An app file that does not load at the start leaves nothing to serve: that is an error (exit 2).
  const first = await readApp(file, out, { loadTimeoutS });
  const app = first.name;
  emit({ event: "serving", app, file, replacing: (await appState(client, app)) === "deployed" });

  let deployedOnce = false;
  let stopping = false;
  let fatal: unknown = null;
  let finish!: () => void;
  const ended = new Promise<void>((r) => (finish = r));
  let force!: () => void;
  const forced = new Promise<void>((r) => (force = r));
  let warnedTruncated = false;
  const heartbeat: { current: { stop(): void } | null } = { current: null };

  const debouncer = new Debouncer<string>(DEBOUNCE_MS, (files) => queue.push(files));
  const watcher = new FolderWatcher((path) => {
    if (!stopping) debouncer.add(path);
  });

  const deployOnce = async (read: ReadApp) => {
    if (stopping) return; // no new deploy once serve is stopping
    if (read.name !== app) {
      throw new InvalidArgumentError(`${file} now defines app ${read.name}, not ${app}: serve keeps serving ${app} (restart gantry serve to serve ${read.name})`);
    }
    const { plan, truncated } = watchPlan([resolve(file), ...read.inputs]);
    watcher.update(plan);
    if (truncated && !warnedTruncated) {
      warnedTruncated = true;
      out.note(`the app's files lie in over ${plan.size} folders: serve watches the first ${plan.size}`);
    }
    const started = Date.now();
    const d = await deployFile(file, out, client, read, { ephemeral: true });
    deployedOnce = true;
    // Ephemeral: if this process dies without stopping the app, the daemon stops it (a minute on).
    heartbeat.current ??= heartbeatApp(client, app, (message) => out.note(message));
    emit(deployedEvent(d, started, watcher.folders.length));
  };

  /** A deploy whose failure is reported and watched past; only a daemon gone ends serve. */
  const attempt = async (work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      if (stopping) return; // a deploy cut short by a second Ctrl-C
      if (err instanceof DaemonNotRunningError) {
        fatal = err;
        finish();
        return;
      }
      emit({ event: "error", error: errorBody(err, verbose) });
    }
  };

  const queue = new ChangeQueue(async (files) => {
    if (stopping) return;
    emit({ event: "changed", files });
    await attempt(async () => deployOnce(await readApp(file, out, { loadTimeoutS })));
  });

  const onSignal = () => {
    if (stopping) {
      force(); // a second Ctrl-C: stop now, without waiting for the deploy under way
      return;
    }
    stopping = true;
    finish();
  };
  signals.on("SIGINT", onSignal);
  signals.on("SIGTERM", onSignal);
  try {
    queue.begin(() => attempt(() => deployOnce(first)));
    await ended;
    watcher.close();
    debouncer.cancel();
    queue.close();
    if (fatal) throw fatal;
    // A deploy under way would deploy the app again after the stop: let it end first.
    let cutShort = false;
    if (queue.busy) {
      out.note(`waiting for the deploy under way to end, then stopping app ${app} (Ctrl-C again: stop it now) …`);
      cutShort = await Promise.race([queue.idle().then(() => false), forced.then(() => true)]);
    }
    let stopped = false;
    if (deployedOnce || cutShort) {
      try {
        await client.transport.json("POST", `/v1/apps/${encodeURIComponent(app)}/stop`);
        stopped = true;
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    emit({ event: "stopped", app, stopped });
    if (cutShort) out.note(`the deploy that was under way may still end and deploy app ${app} again: gantry apps stop ${app} stops it then`);
  } finally {
    heartbeat.current?.stop();
    watcher.close();
    debouncer.cancel();
    queue.close();
    signals.off("SIGINT", onSignal);
    signals.off("SIGTERM", onSignal);
  }
}

export function registerServe(program: Command, run: Runner): void {
  program
    .command("serve")
    .argument("<file>", "app file: .ts, .mts, .js, .mjs or .py")
    .description(
      "deploy an app file, then redeploy it whenever it or the local files it uses change (unchanged images are not rebuilt); " +
        "Ctrl-C stops the app (--json: one line per event)",
    )
    .option(`${LOAD_TIMEOUT_OPTION} <seconds>`, LOAD_TIMEOUT_HELP)
    .action(run<{ loadTimeout?: string }>(async (g, file) => {
      const loadTimeoutS = loadTimeoutSeconds(g.loadTimeout);
      const { out, client } = makeContext(g);
      try {
        await serve(file!, { out, client, json: Boolean(g.json), verbose: Boolean(g.verbose), loadTimeoutS });
      } finally {
        client.close();
      }
    }));
}
