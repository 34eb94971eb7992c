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

export function consoleLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    write(`${new Date().toISOString()} ${level} ${msg}${fmt(fields)}\n`);
  return { info: line("info"), warn: line("warn"), error: line("error") };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
