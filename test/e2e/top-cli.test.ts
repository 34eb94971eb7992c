import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { TopView } from "../../protocol/metrics.js";
import { gantry, GANTRY_BIN } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

let home: string;
const g = (...args: string[]) => gantry(home, args);
const spawned: string[] = [];

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "gtop-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  for (const id of spawned) await g("cancel", id);
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("gantry top against a real daemon", () => {
  it("--json shows the running calls; piped, it prints one snapshot with the function's row", async () => {
    const dep = await g("deploy", fixture("top.ts"));
    expect(dep.code, dep.stderr).toBe(0);
    for (let i = 0; i < 2; i++) {
      const s = await g("spawn", "topcli", "hold", "120000");
      expect(s.code, s.stderr).toBe(0);
      spawned.push(s.stdout.trim());
    }

    const view = await vi.waitFor(
      async () => {
        const top = await g("top", "--json");
        expect(top.code, top.stderr).toBe(0);
        const v = JSON.parse(top.stdout) as TopView;
        expect(v.functions.find((f) => f.app === "topcli" && f.function === "hold")).toMatchObject({ running: 2, queued: 0 });
        return v;
      },
      { timeout: 90_000, interval: 500 },
    );
    expect(view.totals.running).toBeGreaterThanOrEqual(2);

    const piped = await g("top");
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toMatch(/^APP\/FUNCTION +QUEUED +RUNNING +CONTAINERS +RATE\/MIN +P50 +FAILED\(5m\) +GPUS$/m);
    expect(piped.stdout).toMatch(/^topcli\.hold +0 +2 +2 /m);
    expect(piped.stdout).toMatch(/^TOTAL +\d+ +\d+ /m);
    expect(piped.stdout).not.toContain("\x1b"); // no screen control for a pipe
  });

  it("--app keeps only that app's functions", async () => {
    const other = await g("top", "--app", "no-such-app");
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toContain("no functions deployed in app no-such-app");
    expect(other.stdout).not.toContain("topcli.hold");
    const json = JSON.parse((await g("top", "--app", "topcli", "--json")).stdout) as TopView;
    expect(json.functions.map((f) => `${f.app}.${f.function}`)).toEqual(["topcli.hold"]);
  });

  it("refuses an --interval outside 0.5 to 60 seconds, naming the limit", async () => {
    for (const bad of ["0", "61"]) {
      const r = await g("top", "--interval", bad);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--interval must be between 0.5 and 60 seconds, got "${bad}"`);
    }
  });
});

/** A stand-in daemon on TCP: answers GET /v1/metrics/top with `answer()` (null: 404, as a daemon without the route). */
async function fakeDaemon(answer: () => TopView | null): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    const body = answer();
    res.writeHead(body ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(body ?? { error: { code: "not_found", message: `no route GET ${req.url}` } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => n,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const SNAPSHOT: TopView = {
  at: new Date().toISOString(),
  functions: [{ app: "fake", function: "busy", queued: 4, running: 1, containers: 1, rate_per_min: 3, p50_s: 2, failed_5m: 0, gpus_held: 0 }],
  containers: { starting: 0, ready: 1, draining: 0, stopping: 0 },
  gpus: [],
  totals: { queued: 4, running: 1, rate_per_min: 3 },
};

/** `gantry top` on a terminal (a pty of util-linux's script, 120×40): what it drew, and a way to type into it. */
function onTerminal(url: string) {
  const cmd = `stty cols 120 rows 40; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(GANTRY_BIN)} --url ${url} top --interval 0.5`;
  const child = spawn("script", ["-qfec", cmd, "/dev/null"], { env: { ...process.env, GANTRY_HOME: home }, stdio: ["pipe", "pipe", "pipe"] });
  let screen = "";
  child.stdout.on("data", (d: Buffer) => (screen += d.toString()));
  const exit = new Promise<number>((r) => child.on("close", (code) => r(code ?? -1)));
  return { screen: () => screen, type: (s: string) => child.stdin.write(s), exit };
}

describe("gantry top on a terminal (a stand-in daemon)", () => {
  it("redraws in place on the alternate screen, and Ctrl-C restores the terminal and exits 0", async () => {
    const fake = await fakeDaemon(() => SNAPSHOT);
    const term = onTerminal(fake.url);
    try {
      await vi.waitFor(() => expect(fake.requests()).toBeGreaterThanOrEqual(3), { timeout: 20_000, interval: 100 });
      await vi.waitFor(() => expect(term.screen().match(/fake\.busy +4 +1 +1 +3\.0 +2\.0s/g)?.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 });
      expect(term.screen()).toContain("\x1b[?1049h"); // the alternate screen
      term.type("\x03");
      expect(await term.exit).toBe(0);
      expect(term.screen()).toMatch(/\x1b\[\?25h\x1b\[\?1049l\s*$/); // cursor back, main screen back
    } finally {
      await fake.close();
    }
  });

  it("a daemon that goes away mid-run: says so, restores the terminal, exits 1", async () => {
    const fake = await fakeDaemon(() => SNAPSHOT);
    const term = onTerminal(fake.url);
    await vi.waitFor(() => expect(term.screen()).toMatch(/fake\.busy/), { timeout: 20_000, interval: 100 });
    await fake.close();
    expect(await term.exit).toBe(1);
    const after = term.screen().slice(term.screen().lastIndexOf("\x1b[?1049l"));
    expect(after).toMatch(/Error: the daemon at http:\/\/127\.0\.0\.1:\d+ went away/);
  });

  it("a daemon without the route (older than the CLI) gets a clear message", async () => {
    const fake = await fakeDaemon(() => null);
    try {
      const r = await g("--url", fake.url, "top");
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/has no GET \/v1\/metrics\/top: it is older than this CLI; restart it/);
    } finally {
      await fake.close();
    }
  });
});
