/**
 * What `gantry serve` watches and when it redeploys: the folders of the files a deploy read (each
 * folder watched on its own: Node 20 has no recursive fs.watch on Linux), changes gathered until
 * the files are quiet for a moment (Debouncer), and one redeploy at a time (ChangeQueue).
 */
import { watch as fsWatch, readdirSync, statSync, type FSWatcher } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, sep } from "node:path";
import { packageRoot } from "../daemon/config.js";

/** Milliseconds without a change before a redeploy starts. */
export const DEBOUNCE_MS = 300;
/** The most folders one serve watches (a folder an image copies counts with its subfolders). */
export const MAX_WATCHED_FOLDERS = 1000;

const SKIPPED_FOLDERS = new Set(["node_modules", ".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"]);

/** Files editors and Python write beside the real ones (swap, backup, lock and bytecode files). */
export function isNoise(name: string): boolean {
  return (
    /(~|\.sw[a-z]|\.pyc|\.tmp|___jb_(tmp|old)___)$/.test(name) ||
    name.startsWith(".#") ||
    name === "4913" || // vim's probe of whether it may write the folder
    name === ".DS_Store" ||
    name === "__pycache__"
  );
}

/** gantry's own folders: the SDK and protocol files esbuild bundles into every TypeScript app. */
function ownFolders(): string[] {
  const root = packageRoot();
  return ["sdk", "protocol", "cli", "daemon", "dist", "node_modules", "runtime-images", "python"].map((d) => join(root, d) + sep);
}

/** Folder → the names in it that count (null: any name, a folder an image copies). */
export type WatchPlan = Map<string, Set<string> | null>;

/**
 * The folders to watch for a deploy's inputs: each file's folder (for that name), each folder with
 * its subfolders (for any name). Packages, gantry's own files and esbuild's stand-ins are left out.
 */
export function watchPlan(inputs: Iterable<string>, own: string[] = ownFolders(), max = MAX_WATCHED_FOLDERS): { plan: WatchPlan; truncated: boolean } {
  const plan: WatchPlan = new Map();
  let truncated = false;
  const addFolder = (dir: string, name: string | null): boolean => {
    const names = plan.get(dir);
    if (names === undefined && plan.size >= max) {
      truncated = true;
      return false;
    }
    if (name === null || names === null) plan.set(dir, null);
    else plan.set(dir, (names ?? new Set<string>()).add(name));
    return true;
  };
  const addTree = (dir: string): void => {
    if (!addFolder(dir, null)) return;
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries.sort()) {
      if (SKIPPED_FOLDERS.has(name)) continue;
      const path = join(dir, name);
      if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) addTree(path);
    }
  };
  for (const input of new Set(inputs)) {
    if (!isAbsolute(input) || input.split(sep).includes("node_modules") || own.some((d) => input.startsWith(d))) continue;
    if (statSync(input, { throwIfNoEntry: false })?.isDirectory()) addTree(input);
    else addFolder(dirname(input), basename(input));
  }
  return { plan, truncated };
}

type WatchFn = (dir: string, listener: (event: string, name: string | Buffer | null) => void) => Pick<FSWatcher, "close" | "on">;

const defaultWatch: WatchFn = (dir, listener) => fsWatch(dir, { persistent: true }, listener);

/** fs.watch on each folder of a plan; calls `onChange` with the path of each file that changed. */
export class FolderWatcher {
  private readonly watchers = new Map<string, Pick<FSWatcher, "close" | "on">>();
  private plan: WatchPlan = new Map();
  private closed = false;

  constructor(
    private readonly onChange: (path: string) => void,
    private readonly watchFn: WatchFn = defaultWatch,
  ) {}

  /** Watches the plan's folders from now on (folders it no longer names are let go). */
  update(plan: WatchPlan): void {
    if (this.closed) return;
    this.plan = plan;
    for (const [dir, w] of this.watchers) {
      if (!plan.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of plan.keys()) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = this.watchFn(dir, (_event, name) => this.event(dir, name));
        w.on("error", () => this.drop(dir)); // the folder went away; a later deploy's plan watches it again
        this.watchers.set(dir, w);
      } catch {
        // The folder is gone (a file input was deleted with it): nothing to watch until it is back.
      }
    }
  }

  /** The folders watched now. */
  get folders(): string[] {
    return [...this.watchers.keys()];
  }

  private event(dir: string, name: string | Buffer | null): void {
    const names = this.plan.get(dir);
    if (names === undefined) return;
    if (name === null) {
      // The platform did not say which file: any of the folder's.
      if (names) for (const n of names) this.onChange(join(dir, n));
      else this.onChange(dir);
      return;
    }
    const file = name.toString();
    if (isNoise(file) || (names !== null && !names.has(file))) return;
    this.onChange(join(dir, file));
  }

  private drop(dir: string): void {
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  /** Lets go of every folder; later updates watch nothing. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Gathers items until none has come for `delayMs`, then hands them over at once (each once, in arrival order). */
export class Debouncer<T> {
  private items = new Set<T>();
  private timer: unknown = null;

  constructor(
    private readonly delayMs: number,
    private readonly fire: (items: T[]) => void,
    private readonly timers: Timers = realTimers,
  ) {}

  add(item: T): void {
    this.items.add(item);
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = this.timers.set(() => this.flush(), this.delayMs);
  }

  /** Hands over what was gathered now (nothing when nothing was). */
  flush(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    if (this.items.size === 0) return;
    const items = [...this.items];
    this.items.clear();
    this.fire(items);
  }

  /** Drops what was gathered. */
  cancel(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    this.items.clear();
  }
}

/**
 * Runs `run` for batches of changed files, one run at a time: files that change while a run is
 * under way wait for it, then go in one more run together.
 */
export class ChangeQueue {
  private pending = new Set<string>();
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly run: (files: string[]) => Promise<void>) {}

  /** Runs `first` now (the first deploy); files pushed meanwhile wait for it. */
  begin(first: () => Promise<void>): void {
    this.start(first);
  }

  push(files: Iterable<string>): void {
    if (this.closed) return;
    for (const f of files) this.pending.add(f);
    if (this.pending.size && !this.running) this.start(null);
  }

  private start(first: (() => Promise<void>) | null): void {
    const p = (async () => {
      if (first) await first();
      while (this.pending.size && !this.closed) {
        const batch = [...this.pending];
        this.pending.clear();
        await this.run(batch);
      }
    })();
    this.running = p;
    const done = () => {
      if (this.running === p) this.running = null;
    };
    p.then(done, done);
  }

  /** Whether a run is under way. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Resolves when no run is under way (a run's failure rejects it). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Takes no more files; the run under way, if any, finishes. */
  close(): void {
    this.closed = true;
    this.pending.clear();
  }
}

/** Changed files for people: paths from `cwd` (when below it), sorted, the first few and a count of the rest. */
export function changeSummary(paths: Iterable<string>, cwd: string, max = 5): string {
  const shown = [...new Set(paths)]
    .map((p) => {
      const rel = relative(cwd, p);
      return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : p;
    })
    .sort();
  if (shown.length === 0) return "nothing";
  const head = shown.slice(0, max).join(", ");
  return shown.length > max ? `${head} and ${shown.length - max} more` : head;
}
