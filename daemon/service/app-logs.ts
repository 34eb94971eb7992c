import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import type { EventBus, LogEvent } from "./event-bus.js";

/** How much of a log file's end `tail()` reads at most. */
const TAIL_WINDOW_BYTES = 1024 * 1024;

/**
 * Appends the log lines of each app's containers to `$GANTRY_HOME/logs/apps/<app>.log`, one line
 * each: `<ts> <function> <container> <call or -> <stream>: <text>`, and reads them back.
 */
export class AppLogs {
  private readonly files = new Map<string, WriteStream>();

  constructor(
    private readonly dir: string,
    bus: EventBus,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    bus.on("event", (e) => {
      if (e.type === "log") this.write(e);
    });
  }

  pathOf(app: string): string {
    return join(this.dir, `${app}.log`);
  }

  private write(e: LogEvent): void {
    let f = this.files.get(e.app);
    if (!f) {
      f = createWriteStream(this.pathOf(e.app), { flags: "a", mode: 0o600 });
      this.files.set(e.app, f);
    }
    f.write(`${e.ts} ${e.function} ${e.container_id} ${e.call_id ?? "-"} ${e.stream}: ${e.line}\n`);
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
