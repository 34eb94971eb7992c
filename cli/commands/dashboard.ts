import { spawn } from "node:child_process";
import type { Command } from "commander";
import { GantryError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import type { Runner } from "../runner.js";

/** The browser opener of this system, when it has a display to open one on. */
function opener(): string | null {
  if (process.platform === "darwin") return "open";
  if (process.platform === "win32") return null;
  return process.env.DISPLAY || process.env.WAYLAND_DISPLAY ? "xdg-open" : null;
}

/** Starts the opener detached; resolves whether it started (a missing xdg-open is no error). */
function openBrowser(url: string): Promise<boolean> {
  const cmd = opener();
  if (!cmd) return Promise.resolve(false);
  return new Promise((resolve) => {
    const child = spawn(cmd, [url], { detached: true, stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("spawn", () => {
      child.unref();
      resolve(true);
    });
  });
}

/** A URL a browser on this machine can open: a daemon listening on every address answers on loopback. */
function localUrl(http: string): string {
  const u = new URL(http);
  if (u.hostname === "0.0.0.0" || u.hostname === "[::]") u.hostname = "127.0.0.1";
  return u.toString();
}

export function registerDashboard(program: Command, run: Runner): void {
  program
    .command("dashboard")
    .description("print the dashboard's URL and open it in a browser (the daemon needs --http-port)")
    .option("--no-open", "only print the URL")
    .action(run<{ open: boolean }>(async (o) => {
      const { out, client } = makeContext(o);
      const url = o.url ?? process.env.GANTRY_URL;
      const health = await client.transport.json<{ http: string | null }>("GET", "/v1/health");
      client.close();
      const base = url ?? health.http;
      if (!base) {
        throw new GantryError(
          "the daemon serves no HTTP port, so no dashboard: restart it with one, e.g. gantry daemon stop && gantry daemon start --http-port 8700",
        );
      }
      const dashboard = localUrl(base);
      const opened = o.open ? await openBrowser(dashboard) : false;
      out.result({ url: dashboard, opened }, () => (opened ? `${dashboard}\n(opened in your browser)` : dashboard));
    }));
}
