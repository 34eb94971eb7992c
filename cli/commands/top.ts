import type { Command } from "commander";
import type { TopView } from "../../protocol/metrics.js";
import type { GantryClient } from "../../sdk/client.js";
import { DaemonNotRunningError, GantryError, NotFoundError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import type { Runner } from "../runner.js";
import { filterTop, renderTop } from "../top-view.js";

export const TOP_INTERVAL = { defaultS: 2, minS: 0.5, maxS: 60 } as const;

interface TopOptions {
  interval: string;
  stream: boolean;
  app?: string;
}

export function parseInterval(text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s < TOP_INTERVAL.minS || s > TOP_INTERVAL.maxS) {
    throw new UsageError(`--interval must be between ${TOP_INTERVAL.minS} and ${TOP_INTERVAL.maxS} seconds, got ${JSON.stringify(text)}`);
  }
  return s;
}

/** One snapshot; a daemon without the route (older than this CLI) gets its own message. */
async function fetchTop(client: GantryClient, app: string | undefined): Promise<TopView> {
  try {
    return filterTop(await client.transport.json<TopView>("GET", "/v1/metrics/top"), app);
  } catch (err) {
    // The route takes no parameters, so a 404 can only mean the daemon lacks it.
    if (err instanceof NotFoundError) {
      throw new GantryError(
        `the daemon at ${client.transport.target} has no GET /v1/metrics/top: it is older than this CLI; ` +
          "restart it with this version (gantry daemon stop && gantry daemon start) to use gantry top",
        "daemon_too_old",
      );
    }
    throw err;
  }
}

/** The terminal's columns less one: a line that fills the last column would wrap on some terminals. */
const terminalWidth = () => Math.max(20, (process.stdout.columns || 100) - 1);

const ALT_SCREEN_ON = "\x1b[?1049h\x1b[?25l";
const ALT_SCREEN_OFF = "\x1b[?25h\x1b[?1049l";

/** The next snapshot; a daemon that stops answering is said to have gone away (exit 1, not 3: it was there). */
async function nextTop(client: GantryClient, app: string | undefined): Promise<TopView> {
  try {
    return await fetchTop(client, app);
  } catch (err) {
    const gone = `the daemon at ${client.transport.target} went away`;
    if (err instanceof DaemonNotRunningError) throw new GantryError(`${gone} (it stopped answering); start it again with: gantry daemon start`, "daemon_gone");
    if (err instanceof GantryError && err.code === "transport") throw new GantryError(`${gone}: ${err.message}`, "daemon_gone");
    throw err;
  }
}

/** Redraws every `intervalS` on the terminal until Ctrl-C (or SIGTERM), even one pressed while a request hangs. */
async function live(client: GantryClient, o: TopOptions, intervalS: number, first: TopView): Promise<void> {
  const tty = process.stdout;
  let view = first;
  let quit!: () => void;
  const quitting = new Promise<null>((resolve) => (quit = () => resolve(null)));
  const draw = () => {
    const lines = renderTop(view, { width: terminalWidth(), height: tty.rows || undefined, app: o.app, intervalS });
    tty.write(`\x1b[H${lines.join("\x1b[K\n")}\x1b[K\x1b[J`);
  };
  process.once("SIGINT", quit);
  process.once("SIGTERM", quit);
  tty.on("resize", draw);
  tty.write(ALT_SCREEN_ON);
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      draw();
      const slept = await Promise.race([new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), intervalS * 1000))), quitting]);
      if (!slept) return;
      const next = nextTop(client, o.app);
      next.catch(() => {}); // one that fails after a Ctrl-C (the client closes) is no error
      const got = await Promise.race([next, quitting]);
      if (!got) return;
      view = got;
    }
  } finally {
    clearTimeout(timer);
    tty.off("resize", draw);
    process.off("SIGINT", quit);
    process.off("SIGTERM", quit);
    tty.write(ALT_SCREEN_OFF);
  }
}

export function registerTop(program: Command, run: Runner): void {
  program
    .command("top")
    .description("live view of functions (queued, running, rate, p50), containers and GPUs; piped or --json: one snapshot")
    .option("--interval <s>", `seconds between redraws (${TOP_INTERVAL.minS} to ${TOP_INTERVAL.maxS})`, String(TOP_INTERVAL.defaultS))
    .option("--no-stream", "print one snapshot and exit (what a pipe gets)")
    .option("--app <app>", "only this app's functions")
    .action(run<TopOptions>(async (o) => {
      const intervalS = parseInterval(o.interval);
      const { out, client } = makeContext(o);
      try {
        const view = await fetchTop(client, o.app);
        if (out.json || !o.stream || process.stdout.isTTY !== true) {
          out.result(view, () => renderTop(view, { width: process.stdout.isTTY ? terminalWidth() : Infinity, app: o.app }).join("\n"));
          return;
        }
        await live(client, o, intervalS, view);
      } finally {
        client.close();
      }
    }));
}
