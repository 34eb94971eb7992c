/**
 * `ws://…/v1/sandboxes/:id/procs/:proc/attach` (protocol/sandboxes.ts): a terminal on a sandbox's
 * process made with a pty (`gantry shell`, `gantry sandbox exec -t`). Binary frames carry the
 * terminal's bytes both ways (its output from the start, so a prompt written before the attach
 * shows); a text frame {"type":"resize","cols":C,"rows":R} resizes it; once the process ended and
 * its output is sent the daemon closes with 1000 and "exit N" (a process that ended before the
 * attach came is answered the same way: its output, then the close).
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { Sandboxes } from "../service/sandboxes.js";
import type { SandboxProcess } from "../service/sandbox-process.js";
import type { Access } from "./access.js";
import { invalid } from "./errors.js";
import { refuseUpgrade } from "./http-kit.js";
import { procId, sandboxId } from "./sandbox-routes.js";

const ATTACH_PATH = /^\/v1\/sandboxes\/([^/]+)\/procs\/([^/]+)\/attach$/;
/** A client reading slower than this much unsent output is paused (the file keeps the rest). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export class SandboxAttach {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

  constructor(
    private readonly sandboxes: Sandboxes,
    private readonly access: Access,
  ) {}

  readonly upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer, remote: boolean): boolean => {
    const url = new URL(req.url ?? "/", "http://gantry");
    const m = ATTACH_PATH.exec(url.pathname);
    if (!m) return false;
    let p: SandboxProcess;
    try {
      if (remote) this.access.authorize(req);
      const id = sandboxId(decodeURIComponent(m[1]!));
      p = this.sandboxes.process(id, procId(decodeURIComponent(m[2]!)));
      if (!p.pty) throw invalid(`${p.describe()} has no terminal: attach works on processes made with pty; read its stdout and stderr instead`);
    } catch (err) {
      refuseUpgrade(socket, err);
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, p));
    return true;
  };

  private attach(ws: WebSocket, p: SandboxProcess): void {
    const gone = new AbortController();
    this.sandboxes.attached(p.sandboxId, true);
    ws.on("close", () => {
      gone.abort();
      this.sandboxes.attached(p.sandboxId, false);
    });
    ws.on("error", () => gone.abort());
    ws.on("message", (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (isBinary) return void p.writeStdin(buf, false).catch(() => undefined);
      try {
        const msg = JSON.parse(buf.toString("utf8")) as { type?: string; cols?: number; rows?: number };
        if (msg.type === "resize" && Number.isInteger(msg.cols) && Number.isInteger(msg.rows) && msg.cols! > 0 && msg.rows! > 0) {
          void p.resize?.(Math.min(msg.cols!, 1000), Math.min(msg.rows!, 1000)).catch(() => undefined);
        }
      } catch {
        // not JSON: ignored, as any text frame that is not a resize
      }
    });
    void this.send(ws, p, gone.signal);
  }

  /** The terminal's output, from the start, at the client's pace; closes once the process ended. */
  private async send(ws: WebSocket, p: SandboxProcess, signal: AbortSignal): Promise<void> {
    let at = 0;
    while (!signal.aborted) {
      const end = p.stdout.bytes;
      if (end > at) {
        for await (const chunk of p.stdout.read(at, end)) {
          if (signal.aborted) return;
          ws.send(chunk as Buffer);
          while (ws.bufferedAmount > MAX_BUFFERED_BYTES && !signal.aborted) await new Promise((r) => setTimeout(r, 20));
        }
        at = end;
      }
      if (p.stdout.closed && p.stdout.bytes <= at) break;
      await p.stdout.waitPast(at, signal);
    }
    await p.waitEnd(10_000); // its output closes a moment before its exit code is recorded
    if (!signal.aborted) ws.close(1000, `exit ${p.returncode ?? -1}`);
  }
}
