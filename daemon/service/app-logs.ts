import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import type { EventBus, LogEvent } from "./event-bus.js";

/** Appends the log lines of each app's containers to `$GANTRY_HOME/logs/apps/<app>.log`. */
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

  close(): Promise<void> {
    const all = [...this.files.values()].map((f) => new Promise<void>((resolve) => f.end(() => resolve())));
    this.files.clear();
    return Promise.all(all).then(() => undefined);
  }
}
