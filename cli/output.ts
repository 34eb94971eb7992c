/** Terminal output: tables and progress for people, one JSON document for scripts (--json). */
export interface Output {
  json: boolean;
  /** The command's result: JSON with --json, else the human text. */
  result(data: unknown, human: () => string): void;
  /** A progress note on stderr (not in --json mode). */
  note(line: string): void;
  /** A status line rewritten in place on a terminal; plain lines elsewhere. */
  progress(line: string): void;
  endProgress(): void;
}

export function makeOutput(json: boolean): Output {
  const tty = process.stderr.isTTY === true;
  let live = false;
  const width = () => Math.max(20, (process.stderr.columns ?? 100) - 1);
  return {
    json,
    result(data, human) {
      const text = json ? JSON.stringify(data, null, 2) : human();
      if (text) process.stdout.write(text.endsWith("\n") ? text : text + "\n");
    },
    note(line) {
      if (json) return;
      if (live) this.endProgress();
      process.stderr.write(line + "\n");
    },
    progress(line) {
      if (json) return;
      if (!tty) {
        process.stderr.write(line + "\n");
        return;
      }
      const text = line.length > width() ? line.slice(0, width() - 1) + "…" : line;
      process.stderr.write(`\r\x1b[2K${text}`);
      live = true;
    },
    endProgress() {
      if (live) process.stderr.write("\r\x1b[2K");
      live = false;
    },
  };
}

export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [line(headers), ...rows.map(line)].join("\n");
}

/** "3s ago", "2m ago": short relative times for tables. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
