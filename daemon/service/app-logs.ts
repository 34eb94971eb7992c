import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { silentLogger, type Logger } from "../logger.js";
import type { EventBus, LogEvent } from "./event-bus.js";

/** How much of a log file's end `tail()` reads at most. */
const TAIL_WINDOW_BYTES = 1024 * 1024;

/**
 * Appends the log lines of each app's containers to `$GANTRY_HOME/logs/apps/<app>.log`, one line
 * each: `<ts> <function> <container> <call or -> <stream>: <text>`, and reads them back.
 */
/** After a failed write, how long lines are dropped before a log file is opened again. */
const PAUSE_AFTER_FAILURE_MS = 2_000;

export class AppLogs {
  private readonly files = new Map<string, WriteStream>();
  /** While log files cannot be written (a full disk): since when, and lines dropped meanwhile. */
  private failing: { sinceMs: number; retryAtMs: number; dropped: number } | null = null;

  constructor(
    private readonly dir: string,
    bus: EventBus,
    private readonly log: Logger = silentLogger,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    bus.on("event", (e) => {
      if (e.type === "log") this.write(e);
    });
  }

  pathOf(app: string): string {
    return join(this.dir, `${app}.log`);
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
    let f = this.files.get(e.app);
    if (!f) {
      const stream = createWriteStream(this.pathOf(e.app), { flags: "a", mode: 0o600 });
      stream.on("error", (err) => this.failed(e.app, stream, err));
      this.files.set(e.app, (f = stream));
    }
    f.write(`${e.ts} ${e.function} ${e.container_id} ${e.call_id ?? "-"} ${e.stream}: ${e.line}\n`, (err) => {
      if (!err && this.failing) {
        this.log.info("app log files are written again", { dropped_lines: this.failing.dropped });
        this.failing = null;
      }
    });
  }

  private failed(app: string, stream: WriteStream, err: Error): void {
    if (this.files.get(app) === stream) this.files.delete(app);
    stream.destroy();
    const now = Date.now();
    if (!this.failing) {
      this.failing = { sinceMs: now, retryAtMs: 0, dropped: 0 };
      this.log.warn("an app log file cannot be written; its lines are dropped until it can", { app, err: err.message });
    }
    this.failing.retryAtMs = now + PAUSE_AFTER_FAILURE_MS;
    this.failing.dropped++;
  }

  /** The last `lines` log lines of an app (optionally one function), oldest first. */
  /** The last `lines` lines of an app's log (of one function, or one call, when given). */
  async tail(app: string, lines: number, fn?: string, callId?: string): Promise<LogEvent[]> {
    const path = this.pathOf(app);
    const size = await stat(path).then((s) => s.size, () => 0);
    if (size === 0 || lines <= 0) return [];
    const start = Math.max(0, size - TAIL_WINDOW_BYTES);
    const fh = await open(path, "r");
    let text: string;
    try {
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      text = buf.toString("utf8");
    } finally {
      await fh.close();
    }
    const rows = text.split("\n").slice(start > 0 ? 1 : 0);
    const events: LogEvent[] = [];
    for (const row of rows) {
      const e = parseLine(app, row);
      if (e && (!fn || e.function === fn) && (!callId || e.call_id === callId)) events.push(e);
    }
    return events.slice(-lines);
  }

  close(): Promise<void> {
    const all = [...this.files.values()].map((f) => new Promise<void>((resolve) => f.end(() => resolve())));
    this.files.clear();
    return Promise.all(all).then(() => undefined);
  }
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
