/**
 * The pure parts of `gantry serve` (cli/serve-watch.ts): which folders it watches for a deploy's
 * inputs, how changes are gathered (debounce) and serialised (one redeploy at a time), the noise
 * it ignores, and the summary it prints. One test watches a real folder.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { imageLocalPaths } from "../../cli/image-assets.js";
import { ChangeQueue, changeSummary, Debouncer, FolderWatcher, isNoise, watchPlan, type WatchPlan } from "../../cli/serve-watch.js";
import { Image } from "../../sdk/image.js";

let dir: string;
beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "gantry-serve-")));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (rel: string, text = "x") => {
  const file = join(dir, rel);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, text);
  return file;
};

const names = (plan: WatchPlan) => Object.fromEntries([...plan].map(([d, n]) => [d, n === null ? null : [...n].sort()]));

describe("watchPlan", () => {
  it("watches each file's folder for its name, and a folder with its subfolders for any name", () => {
    const app = write("app.ts");
    const lib = write("lib/util.ts");
    const other = write("app2.ts");
    write("assets/a.txt");
    write("assets/deep/b.txt");
    write("assets/node_modules/x/index.js");
    const { plan, truncated } = watchPlan([app, lib, other, join(dir, "assets"), app], []);
    expect(truncated).toBe(false);
    expect(names(plan)).toEqual({
      [dir]: ["app.ts", "app2.ts"],
      [join(dir, "lib")]: ["util.ts"],
      [join(dir, "assets")]: null,
      [join(dir, "assets", "deep")]: null,
    });
  });

  it("leaves out packages, gantry's own files, esbuild's stand-ins and relative paths", () => {
    const app = write("app.ts");
    const own = join(dir, "gantry", "sdk") + "/";
    const { plan } = watchPlan([app, join(dir, "node_modules", "hono", "index.js"), join(own, "index.ts"), "gantry-missing:left-pad", "rel/x.ts"], [own]);
    expect(names(plan)).toEqual({ [dir]: ["app.ts"] });
  });

  it("a file that is gone is still watched for (its folder, for its name): it may come back", () => {
    const { plan } = watchPlan([join(dir, "later.py")], []);
    expect(names(plan)).toEqual({ [dir]: ["later.py"] });
  });

  it("a file in a folder watched whole adds nothing; past the folder limit it says so", () => {
    write("data/a.txt");
    const { plan } = watchPlan([join(dir, "data"), join(dir, "data", "a.txt")], []);
    expect(names(plan)).toEqual({ [join(dir, "data")]: null });
    for (let i = 0; i < 5; i++) write(`many/d${i}/f.txt`);
    const capped = watchPlan([join(dir, "many")], [], 3);
    expect(capped.truncated).toBe(true);
    expect(capped.plan.size).toBe(3);
  });
});

describe("imageLocalPaths", () => {
  it("names the Dockerfile, its context and the files and folders the images copy, once each", () => {
    const a = Image.node().addLocalDir(join(dir, "assets"), "/assets").addLocalFile(join(dir, "cfg.json"), "/etc/cfg.json");
    const b = Image.fromDockerfile(join(dir, "Dockerfile"), { contextDir: join(dir, "ctx") }).addLocalDir(join(dir, "assets"), "/a2");
    const functions = [{ options: { image: a.toSpec() } }, { options: { image: b.toSpec() } }, { options: {} }];
    expect(imageLocalPaths(functions)).toEqual([join(dir, "Dockerfile"), join(dir, "assets"), join(dir, "cfg.json"), join(dir, "ctx")]);
  });
});

describe("isNoise", () => {
  it("skips editors' swap, backup and lock files and Python's bytecode, not sources", () => {
    for (const n of ["app.py~", ".app.py.swp", ".app.ts.swx", ".#app.ts", "4913", "mod.cpython-311.pyc", "__pycache__", "app.ts___jb_tmp___"]) {
      expect(isNoise(n), n).toBe(true);
    }
    for (const n of ["app.py", "app.ts", "data.json", "swap.ts", "pyc.py"]) expect(isNoise(n), n).toBe(false);
  });
});

describe("FolderWatcher", () => {
  type Listener = (event: string, name: string | null) => void;
  const fake = () => {
    const listeners = new Map<string, Listener>();
    const closed: string[] = [];
    const watchFn = (d: string, l: Listener) => {
      listeners.set(d, l);
      return { close: () => closed.push(d), on: () => undefined as never };
    };
    return { listeners, closed, watchFn };
  };

  it("reports the files of the plan that change, ignoring other names and noise", () => {
    const f = fake();
    const seen: string[] = [];
    const w = new FolderWatcher((p) => seen.push(p), f.watchFn as never);
    w.update(new Map([["/a", new Set(["app.py"])], ["/a/assets", null]]));
    f.listeners.get("/a")!("change", "app.py");
    f.listeners.get("/a")!("rename", "other.py");
    f.listeners.get("/a")!("change", ".app.py.swp");
    f.listeners.get("/a/assets")!("rename", "new.txt");
    f.listeners.get("/a/assets")!("change", "x.txt~");
    f.listeners.get("/a")!("change", null); // no name given: each file of the folder's
    expect(seen).toEqual(["/a/app.py", "/a/assets/new.txt", "/a/app.py"]);
  });

  it("an update lets go of folders the new plan does not name and watches new ones once", () => {
    const f = fake();
    const w = new FolderWatcher(() => undefined, f.watchFn as never);
    w.update(new Map([["/a", new Set(["x"])], ["/b", null]]));
    w.update(new Map([["/a", new Set(["x", "y"])], ["/c", null]]));
    expect(f.closed).toEqual(["/b"]);
    expect(w.folders.sort()).toEqual(["/a", "/c"]);
    w.close();
    expect(f.closed.sort()).toEqual(["/a", "/b", "/c"]);
    w.update(new Map([["/d", null]])); // a deploy that ends after serve stopped watches nothing
    expect(w.folders).toEqual([]);
  });

  it("a folder that cannot be watched is skipped", () => {
    const w = new FolderWatcher(() => undefined, (() => {
      throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    }) as never);
    w.update(new Map([["/gone", null]]));
    expect(w.folders).toEqual([]);
  });

  it("watches a real folder: saving the file is reported", async () => {
    const file = write("app.py", "a = 1\n");
    const changed = new Promise<string>((resolve) => {
      const w = new FolderWatcher((p) => {
        w.close();
        resolve(p);
      });
      w.update(watchPlan([file], []).plan);
      writeFileSync(join(dir, "unrelated.txt"), "not watched");
      writeFileSync(file, "a = 2\n");
    });
    expect(await changed).toBe(file);
  });
});

describe("Debouncer", () => {
  afterEach(() => vi.useRealTimers());

  it("hands over every item once, after the items stop coming for the delay", () => {
    vi.useFakeTimers();
    const batches: string[][] = [];
    const d = new Debouncer<string>(300, (items) => batches.push(items));
    d.add("a");
    vi.advanceTimersByTime(200);
    d.add("b");
    d.add("a");
    vi.advanceTimersByTime(299);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([["a", "b"]]);
    d.add("c");
    vi.advanceTimersByTime(300);
    expect(batches).toEqual([["a", "b"], ["c"]]);
  });

  it("cancel drops what was gathered; flush hands it over now", () => {
    vi.useFakeTimers();
    const batches: string[][] = [];
    const d = new Debouncer<string>(300, (items) => batches.push(items));
    d.add("a");
    d.cancel();
    vi.advanceTimersByTime(1000);
    expect(batches).toEqual([]);
    d.add("b");
    d.flush();
    d.flush();
    expect(batches).toEqual([["b"]]);
  });
});

describe("ChangeQueue", () => {
  const deferred = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  it("runs one batch at a time: files changed during a run go together in the next one", async () => {
    const runs: string[][] = [];
    const gates: Array<ReturnType<typeof deferred>> = [];
    const q = new ChangeQueue(async (files) => {
      runs.push(files);
      const g = deferred();
      gates.push(g);
      await g.promise;
    });
    q.push(["a"]);
    expect(q.busy).toBe(true);
    q.push(["b"]);
    q.push(["c", "b"]);
    await vi.waitFor(() => expect(runs).toEqual([["a"]]));
    gates[0]!.resolve();
    await vi.waitFor(() => expect(runs).toEqual([["a"], ["b", "c"]]));
    gates[1]!.resolve();
    await q.idle();
    expect(q.busy).toBe(false);
    q.push(["d"]);
    await vi.waitFor(() => expect(runs.length).toBe(3));
    gates[2]!.resolve();
    await q.idle();
    expect(runs).toEqual([["a"], ["b", "c"], ["d"]]);
  });

  it("files pushed during the first deploy wait for it; after close nothing more runs", async () => {
    const order: string[] = [];
    const first = deferred();
    const q = new ChangeQueue(async (files) => void order.push(`run ${files.join(",")}`));
    q.begin(async () => {
      order.push("first");
      await first.promise;
      order.push("first done");
    });
    q.push(["x"]);
    first.resolve();
    await q.idle();
    expect(order).toEqual(["first", "first done", "run x"]);
    q.close();
    q.push(["y"]);
    expect(q.busy).toBe(false);
    expect(order).toEqual(["first", "first done", "run x"]);
  });
});

describe("changeSummary", () => {
  it("names files from the working folder, sorted, once each, the first few and a count", () => {
    expect(changeSummary(["/w/b.ts", "/w/lib/a.ts", "/w/b.ts"], "/w")).toBe("b.ts, lib/a.ts");
    expect(changeSummary(["/elsewhere/x.py"], "/w")).toBe("/elsewhere/x.py");
    expect(changeSummary(["/w/1", "/w/2", "/w/3", "/w/4"], "/w", 2)).toBe("1, 2 and 2 more");
    expect(changeSummary([], "/w")).toBe("nothing");
  });
});
