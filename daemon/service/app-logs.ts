import { createWriteStream, fstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, type WriteStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { silentLogger, type Logger } from "../logger.js";
import type { EventBus, LogEvent } from "./event-bus.js";

/** How much of an app's log files' end `tail()` reads at most (the newest file, then rotated ones). */
const TAIL_WINDOW_BYTES = 1024 * 1024;
/** After a failed write, how long lines are dropped before a log file is opened again. */
const PAUSE_AFTER_FAILURE_MS = 2_000;
/** Lines waiting for a slow disk, per file: past this they are dropped (and counted) rather than held in memory. */
const MAX_PENDING_FILE_BYTES = 16 * 1024 * 1024;

/** How big an app's log file grows before it is rotated, and how many files (the current one included) are kept. */
export interface LogRotation {
  maxBytes: number;
  maxFiles: number;
}

/** 50 MiB × 5: at most 250 MiB of log per app, days of lines for most functions. */
export const DEFAULT_LOG_ROTATION: LogRotation = { maxBytes: 50 * 1024 * 1024, maxFiles: 5 };

interface OpenLog {
  stream: WriteStream;
  /** Bytes in the file: its size when opened, plus every line given to the stream since. */
  size: number;
}

/**
 * Appends the log lines of each app's containers to `$GANTRY_HOME/logs/apps/<app>.log`, one line
 * each: `<ts> <function> <container> <call or -> <stream>: <text>`, and reads them back. A file
 * that would pass `maxBytes` is rotated first: `<app>.log` becomes `<app>.log.1`, `.1` becomes
 * `.2`, …, and the oldest beyond `maxFiles` files in all is deleted.
 */
export class AppLogs {
  private readonly files = new Map<string, OpenLog>();
  /** While log files cannot be written (a full disk): since when, and lines dropped meanwhile. */
  private failing: { sinceMs: number; retryAtMs: number; dropped: number } | null = null;
  /** Lines dropped because the disk took them slower than they came, since the last warning. */
  private behind = 0;

  constructor(
    private readonly dir: string,
    bus: EventBus,
    private readonly log: Logger = silentLogger,
    private readonly rotation: LogRotation = DEFAULT_LOG_ROTATION,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    bus.on("event", (e) => {
      if (e.type === "log") this.write(e);
    });
  }

  pathOf(app: string): string {
    return join(this.dir, `${app}.log`);
  }

  /** The app's files, newest first: `<app>.log`, then `.1`, `.2`, … as rotation keeps them. */
  filesOf(app: string): string[] {
    const path = this.pathOf(app);
    return [path, ...Array.from({ length: this.rotation.maxFiles - 1 }, (_, i) => `${path}.${i + 1}`)];
  }

  /**
   * Appends one line. A file that cannot be written (a full disk) never stops the daemon: its
   * stream is dropped, lines are dropped for a moment, then the file is opened again.
   */
  private write(e: LogEvent): void {
    if (this.failing && Date.now() < this.failing.retryAtMs) {
      this.failing.dropped++;
      return;
    }
    const text = `${e.ts} ${e.function} ${e.container_id} ${e.call_id ?? "-"} ${e.stream}: ${e.line}\n`;
    const bytes = Buffer.byteLength(text);
    const f = this.fileFor(e.app, bytes);
    if (!f) return;
    if (f.stream.writableLength > MAX_PENDING_FILE_BYTES) {
      if (this.behind++ === 0) this.log.warn("the disk takes app log lines slower than they come: lines are dropped", { app: e.app });
      return;
    }
    f.size += bytes;
    f.stream.write(text, (err) => {
      if (!err && this.failing) {
        this.log.info("app log files are written again", { dropped_lines: this.failing.dropped });
        this.failing = null;
      }
      if (!err && this.behind && f.stream.writableLength === 0) {
        this.log.info("app log lines are written again", { dropped_lines: this.behind });
        this.behind = 0;
      }
    });
  }

  /** The app's open file, rotated first when `bytes` more would take it past maxBytes; null when it cannot be rotated. */
  private fileFor(app: string, bytes: number): OpenLog | null {
    const path = this.pathOf(app);
    let f = this.files.get(app);
    const size = f ? f.size : sizeOf(path);
    if (size > 0 && size + bytes > this.rotation.maxBytes) {
      if (f) {
        f.stream.end(); // lines still pending go to the same file, under its new name
        this.files.delete(app);
        f = undefined;
      }
      try {
        this.shift(app);
      } catch (err) {
        this.failed(app, null, err as Error);
        return null;
      }
    }
    if (!f) {
      // Opened now, not when the stream gets to it: lines written before the next rotation go to this file under whatever name it then has.
      let fd: number;
      try {
        fd = openSync(path, "a", 0o600);
      } catch (err) {
        this.failed(app, null, err as Error);
        return null;
      }
      const stream = createWriteStream("", { fd });
      stream.on("error", (err) => this.failed(app, stream, err));
      f = { stream, size: fstatSync(fd).size };
      this.files.set(app, f);
    }
    return f;
  }

  /** `<app>.log` → `.1` → `.2` …; the file past maxFiles is deleted. */
  private shift(app: string): void {
    const files = this.filesOf(app);
    rmSync(files.at(-1)!, { force: true });
    for (let i = files.length - 2; i >= 0; i--) {
      try {
        renameSync(files[i]!, files[i + 1]!);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    }
  }

  private failed(app: string, stream: WriteStream | null, err: Error): void {
    if (stream && this.files.get(app)?.stream === stream) this.files.delete(app);
    stream?.destroy();
    const now = Date.now();
    if (!this.failing) {
      this.failing = { sinceMs: now, retryAtMs: 0, dropped: 0 };
      this.log.warn("an app log file cannot be written; its lines are dropped until it can", { app, err: err.message });
    }
    this.failing.retryAtMs = now + PAUSE_AFTER_FAILURE_MS;
    this.failing.dropped++;
  }

  /**
   * The last `lines` lines of an app's log (of one function, or one call, when given; from `since`
   * on, an ISO time, when given), oldest first: from its newest file back through rotated ones,
   * TAIL_WINDOW_BYTES of them at most.
   */
  async tail(app: string, lines: number, fn?: string, callId?: string, since?: string): Promise<LogEvent[]> {
    if (lines <= 0) return [];
    let budget = TAIL_WINDOW_BYTES;
    let events: LogEvent[] = [];
    for (const path of this.filesOf(app)) {
      const { rows, whole } = await readEnd(path, budget);
      budget -= rows.reduce((n, r) => n + r.length + 1, 0);
      const older: LogEvent[] = [];
      let before = false; // the file reaches back before `since`: older files hold nothing newer
      for (const row of rows) {
        const e = parseLine(app, row);
        if (!e) continue;
        if (since && e.ts < since) {
          before = true;
          continue;
        }
        if ((!fn || e.function === fn) && (!callId || e.call_id === callId)) older.push(e);
      }
      events = [...older, ...events];
      if (events.length >= lines || !whole || budget <= 0 || before) break;
    }
    return events.slice(-lines);
  }

  close(): Promise<void> {
    const all = [...this.files.values()].map((f) => new Promise<void>((resolve) => f.stream.end(() => resolve())));
    this.files.clear();
    return Promise.all(all).then(() => undefined);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The whole lines in the last `limit` bytes of a file (none when it is missing), and whether that was all of it. */
async function readEnd(path: string, limit: number): Promise<{ rows: string[]; whole: boolean }> {
  const size = await stat(path).then((s) => s.size, () => 0);
  if (size === 0) return { rows: [], whole: true };
  const start = Math.max(0, size - limit);
  const fh = await open(path, "r");
  let text: string;
  try {
    const buf = Buffer.alloc(size - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    text = buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await fh.close();
  }
  const rows = text.split("\n").slice(start > 0 ? 1 : 0);
  return { rows: rows.filter((r) => r !== ""), whole: start === 0 };
}

const LINE = /^(\S+) (\S+) (\S+) (\S+) (stdout|stderr): (.*)$/;

function parseLine(app: string, row: string): LogEvent | null {
  const m = LINE.exec(row);
  if (!m) return null;
  return {
    type: "log",
    app,
    function: m[2]!,
    container_id: m[3]!,
    ...(m[4] !== "-" ? { call_id: m[4]! } : {}),
    stream: m[5] as "stdout" | "stderr",
    line: m[6]!,
    ts: m[1]!,
  };
}
