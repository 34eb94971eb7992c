/**
 * `gantry serve` end to end against a fake daemon on a unix socket (no Docker): the first deploy,
 * a redeploy when a local module the app imports changes, an edit that no longer loads reported
 * while the watch goes on, the notice for an app deployed already, and the stop on SIGINT. The
 * events are read as --json lines; waits are on them, never on fixed sleeps.
 */
import { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { humanEvent, serve, type ServeEvent } from "../../cli/commands/serve.js";
import { makeOutput } from "../../cli/output.js";
import { GantryClient } from "../../sdk/client.js";

interface Fake {
  server: Server;
  socket: string;
  /** State GET /v1/apps/:app answers: null for 404. */
  state: string | null;
  deploys: Array<Record<string, unknown>>;
  stops: string[];
  heartbeats: string[];
  /** While set, a deploy's answer waits for it after its first event. */
  hold: Promise<void> | null;
}

let dir: string;
let fake: Fake;
let client: GantryClient;

function startFake(socket: string): Promise<Fake> {
  const f: Fake = { server: null as unknown as Server, socket, state: null, deploys: [], stops: [], heartbeats: [], hold: null };
  f.server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", async () => {
      const url = req.url ?? "";
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.method === "POST" && url === "/v1/apps/deploy") {
        const body = JSON.parse(raw) as { app: string; functions: Array<{ name: string }> };
        f.deploys.push(body);
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write(JSON.stringify({ type: "image", image: "img1", status: "cached", functions: body.functions.map((x) => x.name) }) + "\n");
        if (f.hold) await f.hold;
        const functions = body.functions.map((x) => ({ name: x.name, web_url: `http://127.0.0.1:9/web/${body.app}/${x.name}/`, web_methods: {} }));
        res.end(JSON.stringify({ type: "done", app: body.app, functions, built: [], cached: ["img1"] }) + "\n");
        return;
      }
      const beat = /^\/v1\/apps\/([^/]+)\/heartbeat$/.exec(url);
      if (req.method === "POST" && beat) {
        f.heartbeats.push(decodeURIComponent(beat[1]!));
        return json(200, { app: beat[1], expires_at: "", heartbeat_every_s: 60 });
      }
      const stop = /^\/v1\/apps\/([^/]+)\/stop$/.exec(url);
      if (req.method === "POST" && stop) {
        f.stops.push(decodeURIComponent(stop[1]!));
        return json(200, { app: stop[1], stopped: true, functions: [] });
      }
      if (req.method === "GET" && /^\/v1\/apps\/[^/]+$/.test(url)) {
        return f.state === null ? json(404, { error: { code: "not_found", message: "no deployed app" } }) : json(200, { name: "x", state: f.state, functions: [] });
      }
      json(404, { error: { code: "not_found", message: `no route ${req.method} ${url}` } });
    });
  });
  return new Promise((resolve) => f.server.listen(socket, () => resolve(f)));
}

beforeEach(async () => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "gsv-")));
  fake = await startFake(join(dir, "gantry.sock"));
  client = new GantryClient({ socketPath: fake.socket });
});
afterEach(async () => {
  client.close();
  await new Promise<void>((r) => fake.server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

/** Serves `file` with --json; its events as they come, SIGINT to end it. */
function startServe(file: string) {
  const events: ServeEvent[] = [];
  const signals = new EventEmitter();
  const done = serve(file, {
    out: makeOutput(true),
    client,
    json: true,
    verbose: false,
    signals,
    print: (to, line) => {
      expect(to).toBe("stdout");
      events.push(JSON.parse(line) as ServeEvent);
    },
  });
  const count = (kind: ServeEvent["event"]) => events.filter((e) => e.event === kind).length;
  const waitFor = (kind: ServeEvent["event"], n: number) => vi.waitFor(() => expect(count(kind)).toBeGreaterThanOrEqual(n), { timeout: 30_000, interval: 20 });
  return { events, signals, done, count, waitFor };
}

const tsApp = (greeting: string) =>
  `import { App } from "gantry";\nimport { greeting } from "./lib.js";\nconst app = new App("serve-t");\n` +
  `export const hello = app.webEndpoint({}, async function hello() { return new Response(greeting + ${JSON.stringify(greeting)}); });\n`;

describe("gantry serve", () => {
  it("deploys a TypeScript app, redeploys when a module it imports changes, reports a broken edit and goes on, and stops the app on SIGINT", async () => {
    write("lib.ts", `export const greeting = "v1";\n`);
    const app = write("app.ts", tsApp("a"));
    const s = startServe(app);
    await s.waitFor("deployed", 1);
    expect(s.events[0]).toEqual({ event: "serving", app: "serve-t", file: app, replacing: false });
    expect(s.events[1]).toMatchObject({
      event: "deployed",
      app: "serve-t",
      cached: ["img1"],
      functions: [{ name: "hello", web_url: "http://127.0.0.1:9/web/serve-t/hello/", web_methods: {} }],
    });
    expect(fake.deploys).toHaveLength(1);

    write("lib.ts", `export const greeting = "v2";\n`);
    await s.waitFor("deployed", 2);
    expect(s.events.find((e) => e.event === "changed")).toEqual({ event: "changed", files: [join(dir, "lib.ts")] });
    expect(fake.deploys).toHaveLength(2);
    expect(fake.deploys[1]!.bundle).toContain('"v2"');
    // Ephemeral, and kept alive by heartbeats (one at the first deploy; the next a minute on, as the daemon asked).
    expect(fake.deploys.map((d) => d.ephemeral)).toEqual([true, true]);
    expect(fake.heartbeats).toEqual(["serve-t"]);

    write("app.ts", `import { App } from "gantry";\nconst app = new App("serve-t"\n`);
    await s.waitFor("error", 1);
    const error = s.events.find((e) => e.event === "error") as Extract<ServeEvent, { event: "error" }>;
    expect(error.error.code).toBe("invalid_argument");
    expect(error.error.message).toMatch(/app\.ts does not build/);
    expect(fake.deploys).toHaveLength(2);

    write("app.ts", tsApp("b"));
    await s.waitFor("deployed", 3);
    expect(fake.deploys[2]!.bundle).toContain('greeting + "b"');

    s.signals.emit("SIGINT");
    await s.done;
    expect(fake.stops).toEqual(["serve-t"]);
    expect(s.events.at(-1)).toEqual({ event: "stopped", app: "serve-t", stopped: true });
  }, 90_000); // four bundles: seconds each on a busy machine

  it("says first when an app of that name is deployed already; a renamed app is refused and serve goes on", async () => {
    fake.state = "deployed";
    write("lib.ts", `export const greeting = "v1";\n`);
    const app = write("app.ts", tsApp("a"));
    const s = startServe(app);
    await s.waitFor("deployed", 1);
    expect(s.events[0]).toMatchObject({ event: "serving", replacing: true });
    expect(humanEvent(s.events[0]!, dir).text).toBe("app serve-t is deployed; serve will replace it, and Ctrl-C stops it");

    write("app.ts", tsApp("a").replace('"serve-t"', '"other-name"'));
    await s.waitFor("error", 1);
    expect(s.events.find((e) => e.event === "error")).toMatchObject({ error: { message: expect.stringMatching(/now defines app other-name, not serve-t/) } });
    s.signals.emit("SIGTERM");
    await s.done;
    expect(fake.stops).toEqual(["serve-t"]);
  }, 60_000);

  it("serves a Python app: a change to a module beside it, or in a folder its image copies, redeploys; a syntax error is reported and the watch goes on", async () => {
    write("helpers_mod.py", `GREETING = "v1"\n`);
    mkdirSync(join(dir, "assets", "deep"), { recursive: true });
    const app = write(
      "py_app.py",
      `import gantry\nfrom helpers_mod import GREETING\nimage = gantry.Image.debian_slim().add_local_dir(${JSON.stringify(join(dir, "assets"))}, "/assets")\n` +
        `app = gantry.App("serve-py", image=image)\n\n@app.function()\ndef hello():\n    return GREETING\n`,
    );
    const s = startServe(app);
    await s.waitFor("deployed", 1);
    expect(fake.deploys[0]).toMatchObject({ app: "serve-py", runtime: "python", module: "py_app" });
    expect(Object.keys(fake.deploys[0]!.files as object).sort()).toEqual(["helpers_mod.py", "py_app.py"]);

    write("helpers_mod.py", `GREETING = "v2"\n`);
    await s.waitFor("deployed", 2);
    expect((fake.deploys[1]!.files as Record<string, string>)["helpers_mod.py"]).toContain("v2");

    // A file new in a subfolder of a folder the image copies.
    write("assets/deep/new.txt", "new\n");
    await s.waitFor("deployed", 3);
    expect(s.events.filter((e) => e.event === "changed").at(-1)).toEqual({ event: "changed", files: [join(dir, "assets", "deep", "new.txt")] });

    write("helpers_mod.py", `GREETING = (\n`);
    await s.waitFor("error", 1);
    expect(s.events.find((e) => e.event === "error")).toMatchObject({ error: { message: expect.stringMatching(/SyntaxError/) } });

    s.signals.emit("SIGINT");
    await s.done;
    expect(fake.stops).toEqual(["serve-py"]);
  }, 60_000);

  it("Ctrl-C during a deploy waits for it to end, then stops the app; a second Ctrl-C stops it at once", async () => {
    const app = write("py_app.py", `import gantry\napp = gantry.App("serve-py")\n\n@app.function()\ndef hello():\n    return 1\n`);
    let release!: () => void;
    fake.hold = new Promise<void>((r) => (release = r));
    const s = startServe(app);
    await vi.waitFor(() => expect(fake.deploys).toHaveLength(1), { timeout: 30_000, interval: 20 });
    s.signals.emit("SIGINT");
    let ended = false;
    void s.done.then(() => (ended = true));
    await new Promise((r) => setImmediate(r));
    expect(ended).toBe(false);
    expect(fake.stops).toEqual([]);
    release();
    await s.done;
    expect(s.events.map((e) => e.event)).toEqual(["serving", "deployed", "stopped"]);
    expect(fake.stops).toEqual(["serve-py"]);

    fake.hold = new Promise<void>((r) => (release = r));
    const again = startServe(app);
    await vi.waitFor(() => expect(fake.deploys).toHaveLength(2), { timeout: 30_000, interval: 20 });
    again.signals.emit("SIGINT");
    again.signals.emit("SIGINT");
    await again.done;
    expect(again.events.map((e) => e.event)).toEqual(["serving", "stopped"]);
    expect(fake.stops).toEqual(["serve-py", "serve-py"]);
    release();
  }, 60_000);

  it("an app file that does not load at the start ends serve with its error; nothing is deployed or stopped", async () => {
    const app = write("app.ts", `import { App } from "gantry";\nnew App("serve-t"\n`);
    await expect(serve(app, { out: makeOutput(true), client, json: true, verbose: false, signals: new EventEmitter(), print: () => undefined })).rejects.toThrow(/does not build/);
    expect(fake.deploys).toEqual([]);
    expect(fake.stops).toEqual([]);
  });

  it("for people: the URLs and the watch on stdout, the changes and errors on stderr", () => {
    const deployed = humanEvent(
      { event: "deployed", app: "a", seconds: 1.24, built: ["i"], cached: [], functions: [{ name: "f", web_url: "/web/a/f/", web_methods: {} }, { name: "C", web_url: null, web_methods: { m: "http://h/web/a/C.m/" } }], watching: 2 },
      "/w",
    );
    expect(deployed).toEqual({
      to: "stdout",
      text:
        "✓ deployed app a in 1.2 s (1 image(s) built, 0 unchanged)\n" +
        "  web endpoint f: /web/a/f/ (on the daemon's socket; start it with --http-port to serve TCP)\n" +
        "  web endpoint C.m: http://h/web/a/C.m/\n" +
        "watching 2 folder(s) for changes; Ctrl-C stops app a",
    });
    expect(humanEvent({ event: "changed", files: ["/w/app.py", "/w/lib/x.py"] }, "/w")).toEqual({ to: "stderr", text: "↻ changed: app.py, lib/x.py; redeploying …" });
    expect(humanEvent({ event: "error", error: { code: "invalid_argument", message: "boom" } }, "/w").to).toBe("stderr");
    expect(humanEvent({ event: "serving", app: "a", file: "x", replacing: false }, "/w").text).toBe("");
    expect(humanEvent({ event: "stopped", app: "a", stopped: false }, "/w").text).toBe("app a left as it was: serve never deployed it");
  });
});
