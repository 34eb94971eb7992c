/**
 * `gantry run`'s command line without a daemon (cli/run-options.ts): where its own options end and
 * the entrypoint's begin, a TypeScript entrypoint's declared options (sdk/app.ts localEntrypoint)
 * converted and refused, --help, a TypeScript function's JSON arguments; and the calls a run spawns,
 * seen through node's HTTP client and cancelled (cli/spawned-calls.ts), against a fake daemon.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { UsageError } from "../../cli/exit-codes.js";
import {
  entrypointHelp,
  formatResult,
  jsonArguments,
  parseEntrypointOptions,
  runFlags,
  splitRunArgv,
  splitTarget,
  wantsHelp,
  type OptionSpec,
} from "../../cli/run-options.js";
import { cancelCalls, trackSpawnedCalls } from "../../cli/spawned-calls.js";
import { appRegistry } from "../../protocol/registry.js";
import { App } from "../../sdk/app.js";
import { GantryClient } from "../../sdk/client.js";

const VALUED = new Set(["--url", "--token-file", "--ca-cert", "--token"]);
const GLOBALS = new Set([...VALUED, "--json", "--verbose", "-V", "--version"]);

function usageError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("no error");
}

const SPECS: OptionSpec[] = [
  { name: "n", type: "int" },
  { name: "label", type: "str", default: "x" },
  { name: "ratio", type: "float", default: 0.5 },
  { name: "verbose", type: "bool", default: false },
  { name: "batch_size", type: "int", default: 1 },
];
const parse = (...args: string[]) => parseEntrypointOptions("the entrypoint main", SPECS, args);

describe("splitRunArgv: gantry run's own options before the file, the entrypoint's after it", () => {
  it("splits at run and at the first argument that is not an option, global options' values passed over", () => {
    expect(splitRunArgv(["--url", "run", "run", "--detach", "--json", "app.py", "--n", "4", "--detach"], VALUED)).toEqual({
      own: ["--detach", "--json"],
      target: "app.py",
      rest: ["--n", "4", "--detach"],
    });
    expect(splitRunArgv(["run", "--token-file", "t.txt", "app.ts::main"], VALUED)).toEqual({ own: ["--token-file", "t.txt"], target: "app.ts::main", rest: [] });
    expect(splitRunArgv(["run", "--", "-odd.py", "--x"], VALUED)).toEqual({ own: [], target: "-odd.py", rest: ["--x"] });
    expect(splitRunArgv(["run", "--help"], VALUED)).toEqual({ own: ["--help"], rest: [] });
  });

  it("reads its own flags, passes over gantry's, refuses others naming where entrypoint options go", () => {
    expect(runFlags(["--detach", "--json", "--url", "http://x", "--url=http://y"], GLOBALS, VALUED)).toEqual({ detach: true, deploy: true, help: false });
    expect(runFlags(["--no-deploy", "-h"], GLOBALS, VALUED)).toEqual({ detach: false, deploy: false, help: true });
    expect(usageError(() => runFlags(["--n"], GLOBALS, VALUED))).toBe(
      "gantry run has no option --n (its own: --detach, --no-deploy); the entrypoint's options go after the app file",
    );
  });

  it("FILE::NAME, and --help among the entrypoint's options (not after --)", () => {
    expect(splitTarget("app.py")).toEqual(["app.py", ""]);
    expect(splitTarget("dir/app.ts::main")).toEqual(["dir/app.ts", "main"]);
    expect(wantsHelp(["--n", "1", "-h"])).toBe(true);
    expect(wantsHelp(["--", "--help"])).toBe(false);
  });
});

describe("parseEntrypointOptions: declared options from the command line", () => {
  it("converts each to its type and fills in the defaults", () => {
    expect(parse("--n", "4", "--label=y", "--ratio", "2.5", "--verbose", "--batch-size", "8")).toEqual({ n: 4, label: "y", ratio: 2.5, verbose: true, batch_size: 8 });
    expect(parse("--n", "-3", "--no-verbose", "--batch_size", "2", "--verbose=no")).toEqual({ n: -3, label: "x", ratio: 0.5, verbose: false, batch_size: 2 });
    expect(parse("--n=0", "--ratio", "1e3", "--label", "")).toMatchObject({ n: 0, ratio: 1000, label: "" });
  });

  it.each([
    [["--n", "four"], 'the entrypoint main: --n takes an int, got "four"'],
    [["--n", "1.5"], '--n takes an int, got "1.5"'],
    [["--n", "1", "--ratio", "fast"], '--ratio takes a float, got "fast"'],
    [["--n", "1", "--verbose=maybe"], '--verbose is a bool flag: give --verbose or --no-verbose, not "maybe"'],
    [["--n", "1", "--no-verbose=1"], "--no-verbose takes no value"],
    [[], "the entrypoint main needs --n (int)"],
    [["--n"], "--n needs a value (int)"],
    [["--n", "1", "--data", "x"], "the entrypoint main has no option --data (it takes: --n (int), --label (str), --ratio (float), --verbose (bool), --batch-size (int))"],
    [["--n", "1", "extra"], 'unexpected argument "extra": the entrypoint main takes options by name'],
    [["--n", "1", "--detach"], "gantry run's own options (--detach, --no-deploy) and gantry's (--json, --url …) go before the file"],
  ])("refuses %j naming the option and its type", (args, message) => {
    expect(usageError(() => parse(...args))).toContain(message.replace("the entrypoint main: ", ""));
  });

  it("an entrypoint without options takes none", () => {
    expect(parseEntrypointOptions("the entrypoint main", [], [])).toEqual({});
    expect(usageError(() => parseEntrypointOptions("the entrypoint main", [], ["--data", "x"]))).toBe("the entrypoint main has no option --data (it takes: none)");
  });

  it("--help lists the options with their types and defaults", () => {
    expect(entrypointHelp("app.ts::main", "Runs the local entrypoint main of app a here.", "Does it.", SPECS)).toBe(
      [
        "usage: gantry run app.ts::main --n INT [--label STR] [--ratio FLOAT] [--verbose / --no-verbose] [--batch-size INT]",
        "",
        "Runs the local entrypoint main of app a here.",
        "",
        "Does it.",
        "",
        "options:",
        "  --n INT                   int, required",
        '  --label STR               str, default "x"',
        "  --ratio FLOAT             float, default 0.5",
        "  --verbose / --no-verbose  bool, default false",
        "  --batch-size INT          int, default 1",
      ].join("\n"),
    );
  });
});

describe("a TypeScript function's arguments and result", () => {
  it("takes JSON values in order, and refuses options and bad JSON", () => {
    expect(jsonArguments("square", ["3", '"x"', "[1,2]", "-1"])).toEqual([3, "x", [1, 2], -1]);
    expect(usageError(() => jsonArguments("square", ["--x", "3"]))).toContain("square is a TypeScript function: it takes its arguments in order, each as JSON");
    expect(usageError(() => jsonArguments("square", ["hi"]))).toContain(`the argument "hi" of square is not valid JSON`);
  });

  it("prints a string as it is, anything else as JSON, nothing for none", () => {
    expect([formatResult("hi"), formatResult(9), formatResult({ a: 1 }), formatResult(undefined), formatResult(null)]).toEqual(["hi", "9", '{\n  "a": 1\n}', "", ""]);
  });
});

describe("app.localEntrypoint", () => {
  afterEach(() => appRegistry().clear());

  it("registers the handler with its declared options, typed for the handler, and returns it", async () => {
    const app = new App("ep-types");
    const seen: unknown[] = [];
    const main = app.localEntrypoint(
      { params: { n: { type: "int", default: 1 }, label: "str", ratio: { type: "float" }, verbose: { type: "bool", default: false } }, description: "Does it." },
      async function main(opts) {
        expectTypeOf(opts).toEqualTypeOf<{ n: number; label: string; ratio: number; verbose: boolean }>();
        seen.push(opts);
      },
    );
    const bare = app.localEntrypoint(function bare() {
      return "no options";
    });
    expectTypeOf(bare).toEqualTypeOf<() => string>();
    // @ts-expect-error: without declared params the handler takes no options
    app.localEntrypoint({ name: "typed-without-spec" }, async (opts: { n: number }) => opts);
    const def = app.localEntrypoints.get("main")!;
    expect(def).toMatchObject({
      name: "main",
      description: "Does it.",
      params: [
        { name: "n", type: "int", default: 1 },
        { name: "label", type: "str" },
        { name: "ratio", type: "float" },
        { name: "verbose", type: "bool", default: false },
      ],
    });
    expect(app.localEntrypoints.has("main")).toBe(true);
    await def.handler(parseEntrypointOptions("the entrypoint main", def.params, ["--label", "x", "--ratio", "2"]));
    expect(seen).toEqual([{ n: 1, label: "x", ratio: 2, verbose: false }]);
    await main({ n: 2, label: "y", ratio: 1, verbose: true });
    expect(seen).toHaveLength(2);
    expect(app.functions.size).toBe(0); // not deployed
  });

  it("names an anonymous handler main, and refuses a second of one name, bad names, types and defaults", () => {
    const app = new App("ep-bad");
    app.localEntrypoint(async () => {});
    expect(app.localEntrypoints.has("main")).toBe(true);
    expect(() => app.localEntrypoint(async () => {})).toThrow('app ep-bad already has a local entrypoint named main: give one { name: "…" }');
    expect(() => app.localEntrypoint({ name: "a b" }, async () => {})).toThrow('local entrypoint name "a b" is invalid');
    const bad = (params: Record<string, unknown>) => () => app.localEntrypoint({ name: "x", params } as never, async () => {});
    expect(bad({ "a-b": "str" })).toThrow("local entrypoint x, option a-b: an option's name is letters, digits and _");
    expect(bad({ n: "number" })).toThrow('local entrypoint x, option n: type must be one of int, float, str, bool, got "number"');
    expect(bad({ n: { type: "int", default: 1.5 } })).toThrow("local entrypoint x, option n: the default 1.5 is not an int");
    expect(bad({ s: { type: "str", default: 1 } })).toThrow("the default 1 is not a str");
    expect(bad({ b: { type: "bool", default: "yes" } })).toThrow('the default "yes" is not a bool');
  });
});

describe("the calls a run spawns", () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  /** A fake daemon: spawns answer fc-1…, fc-2 reads as succeeded, cancels answer 200 but 409 for fc-3. */
  async function fakeDaemon(): Promise<{ url: string; cancelled: string[] }> {
    const cancelled: string[] = [];
    let n = 0;
    server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.setHeader("content-type", "application/json");
        const url = req.url ?? "";
        const id = (k: number) => `fc-${String(k).padStart(26, "0")}`;
        if (url.endsWith("/calls/batch")) return res.end(JSON.stringify({ call_ids: [id(++n), id(++n)] }));
        if (url.endsWith("/calls")) return res.end(JSON.stringify({ call_id: id(++n) }));
        const cancel = /^\/v1\/calls\/([^/]+)\/cancel$/.exec(url);
        if (cancel) {
          cancelled.push(cancel[1]!);
          res.statusCode = cancel[1] === id(3) ? 409 : 200;
          return res.end("{}");
        }
        if (url.startsWith("/v1/calls/")) return res.end(JSON.stringify({ call_id: id(2), status: url.includes(id(2)) ? "succeeded" : "running", attempt: 1 }));
        res.end(JSON.stringify({ app: "a", name: "f", generator: false }));
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, cancelled };
  }

  it("sees spawns and batches through node's HTTP client, drops those read as finished, and cancels the rest", async () => {
    const { url, cancelled } = await fakeDaemon();
    const client = new GantryClient({ url });
    const tracker = trackSpawnedCalls();
    try {
      const fn = await client.functions.fromName("a", "f");
      const first = await fn.spawn(1);
      await fn.spawnMap([2, 3]);
      await client.transport.json("GET", `/v1/calls/fc-${"2".padStart(26, "0")}`);
      expect(await first.status()).toMatchObject({ status: "running" });
      await new Promise((r) => setImmediate(r));
      expect([...tracker.calls].sort()).toEqual([`fc-${"1".padStart(26, "0")}`, `fc-${"3".padStart(26, "0")}`]);
      const other = new GantryClient({ url });
      expect(await cancelCalls(other, tracker.calls)).toEqual({ cancelled: 1, failed: 0 }); // fc-3 had finished (409)
      other.close();
      expect(cancelled.sort()).toEqual([`fc-${"1".padStart(26, "0")}`, `fc-${"3".padStart(26, "0")}`]);
    } finally {
      tracker.stop();
      client.close();
    }
    await (await client.functions.fromName("a", "f")).spawn(4).catch(() => undefined);
    expect(tracker.calls.size).toBe(2); // stopped: no longer watching
  });

  it("counts a daemon that cannot be reached as calls not cancelled", async () => {
    const client = new GantryClient({ url: "http://127.0.0.1:9" });
    expect(await cancelCalls(client, ["fc-x", "fc-y"])).toEqual({ cancelled: 0, failed: 2 });
    client.close();
  });
});
