/** One-line structured logs: `2026-11-28T10:00:00.000Z info message key=value`. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function fmt(fields?: Record<string, unknown>): string {
  if (!fields) return "";
  return Object.entries(fields)
    .map(([k, v]) => ` ${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v instanceof Error ? v.message : v)}`)
    .join("");
}

let guarded = false;
/**
 * Where the daemon's stdout and stderr go (its log file) may fail to take a line (a full disk):
 * such a line is dropped, and the daemon goes on. Without a listener, the stream's error would
 * end the process.
 */
function guardStandardStreams(): void {
  if (guarded) return;
  guarded = true;
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);
}

function writeStderr(line: string): void {
  try {
    process.stderr.write(line);
  } catch {
    // A log line that cannot be written is dropped: it never stops the daemon.
  }
}

export function consoleLogger(write: (line: string) => void = writeStderr): Logger {
  if (write === writeStderr) guardStandardStreams();
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    write(`${new Date().toISOString()} ${level} ${msg}${fmt(fields)}\n`);
  return { info: line("info"), warn: line("warn"), error: line("error") };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
