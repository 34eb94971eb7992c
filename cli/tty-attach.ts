/**
 * Attaches this terminal to a sandbox process made with a pty, over the daemon's WebSocket
 * (`/v1/sandboxes/:id/procs/:proc/attach`, protocol/sandboxes.ts): keys go as binary frames, the
 * terminal's bytes come back the same way, a resize goes as a text frame on SIGWINCH, and the daemon
 * closes with reason "exit N" when the process ends. Used by `gantry shell` and `gantry sandbox exec -t`.
 *
 * On a terminal, stdin is put in raw mode (every key, ^C included, goes to the process) and restored
 * after. Piped stdin (not a terminal) is sent as it comes, then ^D, so a shell fed commands exits.
 */
import WebSocket from "ws";
import type { ContainerProcess } from "../sdk/sandbox.js";
import type { Transport } from "../sdk/transport.js";
import { DaemonNotRunningError, errorFromApi, GantryError } from "../sdk/errors.js";

/** ^D: what a terminal sends for end of input (the line discipline hands the reader EOF). */
const EOT = Buffer.from([4]);

export interface AttachOptions {
  /** Send this CLI's stdin to the process (`-i`; on for `gantry shell`). */
  stdin: boolean;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}

/** The exit code in the daemon's close reason ("exit 3" → 3), or null (none, or "exit -1": not known yet). */
export function exitCodeFromReason(reason: string): number | null {
  const m = /^exit (\d+)$/.exec(reason.trim());
  return m ? Number(m[1]) : null;
}

/** The resize frame for a terminal of this size, or null when the size is unknown (not a terminal). */
export function resizeFrame(cols: number | undefined, rows: number | undefined): string | null {
  if (!cols || !rows) return null;
  return JSON.stringify({ type: "resize", cols, rows });
}

/** Opens the WebSocket; a refusal becomes the daemon's error (404 not found, 409 not a pty…), no daemon DaemonNotRunningError. */
function connect(transport: Transport, path: string): Promise<WebSocket> {
  const target = transport.webSocketTarget(path);
  const ws = new WebSocket(target.address, { headers: target.headers, ...(target.ca !== undefined ? { ca: target.ca } : {}) });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => {
        let body: unknown = null;
        try {
          body = JSON.parse(Buffer.concat(parts).toString("utf8"));
        } catch {
          /* the status names it */
        }
        reject(errorFromApi(res.statusCode ?? 0, body));
        ws.terminate();
      });
    });
    ws.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED") reject(new DaemonNotRunningError(`no gantry daemon answers at ${transport.target} (${err.code}); start it with: gantry daemon start`));
      else reject(new GantryError(`attaching to the terminal failed: ${err.message}`, "transport"));
    });
  });
}

/**
 * Attaches until the process ends; resolves with its exit code from the daemon's close reason
 * (null when the connection closed without one: ask the process).
 */
export async function attachTerminal(transport: Transport, sandboxId: string, proc: string, opts: AttachOptions): Promise<number | null> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const ws = await connect(transport, `/v1/sandboxes/${sandboxId}/procs/${proc}/attach`);
  const raw = opts.stdin && input.isTTY === true;
  const sendResize = () => {
    const frame = resizeFrame(output.columns, output.rows);
    if (frame && ws.readyState === WebSocket.OPEN) ws.send(frame);
  };
  const onData = (chunk: Buffer) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(chunk, { binary: true });
  };
  const onEnd = () => onData(EOT);
  sendResize();
  process.on("SIGWINCH", sendResize);
  if (raw) input.setRawMode(true);
  if (opts.stdin) {
    input.on("data", onData);
    if (!raw) input.once("end", onEnd);
    input.resume();
  }
  try {
    return await new Promise<number | null>((resolve, reject) => {
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        if (isBinary) output.write(data);
      });
      ws.once("close", (_code: number, reason: Buffer) => resolve(exitCodeFromReason(reason.toString("utf8"))));
      ws.once("error", (err) => reject(new GantryError(`the terminal's connection failed: ${err.message}`, "transport")));
    });
  } finally {
    process.off("SIGWINCH", sendResize);
    input.off("data", onData);
    input.off("end", onEnd);
    if (raw) input.setRawMode(false);
    input.pause();
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }
}

/**
 * Attaches to a process and resolves with its exit code. A process can end before the attach
 * reaches the daemon (a quick `exec -t`); then its terminal's output is printed from its stdout.
 */
export async function attachProcess(transport: Transport, proc: ContainerProcess, opts: AttachOptions): Promise<number> {
  let code: number | null;
  try {
    code = await attachTerminal(transport, proc.sandboxId, proc.execId, opts);
  } catch (err) {
    if ((await proc.poll().catch(() => null)) === null) throw err; // still running (or unknown): the attach failed for its own reason
    (opts.output ?? process.stdout).write(await proc.stdout.readBytes());
    return proc.returncode ?? -1;
  }
  return code ?? (await proc.wait());
}
