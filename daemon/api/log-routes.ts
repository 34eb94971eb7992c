/**
 * GET /v1/apps/{app}/logs: an app's log lines (of one function, or one call), the last `tail`
 * from its files (from `since` on, when given), then, with follow=1, new ones as they come. A
 * follower is listening before the answer starts, so no line falls between the files and the live
 * stream. A follower that reads slower than lines come is cut off (bounded-stream.ts): its last
 * line, `type: "cut_off"`, says so and names the `since` to reconnect with.
 */
import { isCallId } from "../core/ids.js";
import type { AppLogs } from "../service/app-logs.js";
import type { EventBus, GantryEvent, LogEvent } from "../service/event-bus.js";
import type { AppStore } from "../store/app-store.js";
import { BoundedStream, MAX_UNSENT_BYTES } from "./bounded-stream.js";
import { invalid, notFound } from "./errors.js";
import type { Router } from "./http-kit.js";

export interface LogRouteDeps {
  apps: AppStore;
  logs: AppLogs;
  bus: EventBus;
}

const key = (e: Pick<LogEvent, "ts" | "container_id" | "stream" | "line">) => `${e.ts}\0${e.container_id}\0${e.stream}\0${e.line}`;

/** The last line of a follow cut off for a slow client: log-shaped, so that readers of log lines show it. */
function cutOffLine(app: string, since: string | null): string {
  const how = since ? `reconnect with since=${since} to go on from the last line sent` : `reconnect to go on`;
  return (
    JSON.stringify({
      type: "cut_off",
      reason: "client_too_slow",
      app,
      function: "-",
      container_id: "-",
      stream: "stderr",
      line: `gantry: this log stream ended: the client read more slowly than lines came (${MAX_UNSENT_BYTES / 1024 / 1024} MiB unread); ${how}`,
      ts: new Date().toISOString(),
      ...(since ? { since } : {}),
    }) + "\n"
  );
}

/** ?since=: a time (ISO 8601) as the ISO form log lines carry, or null when absent. */
function sinceParam(raw: string | null): string | null {
  if (raw === null || raw === "") return null;
  const t = Date.parse(raw);
  if (!Number.isFinite(t)) throw invalid(`since must be a time such as 2024-05-01T12:00:00.000Z (a log line's ts), got ${JSON.stringify(raw.slice(0, 80))}`);
  return new Date(t).toISOString();
}

export function registerLogRoutes(r: Router, d: LogRouteDeps): void {
  r.on("GET", "/v1/apps/:app/logs", async ({ req, res, params, query }) => {
    const app = params.app!;
    if (!d.apps.listApps().some((a) => a.name === app)) throw notFound(`no deployed app named ${app}`);
    const fn = query.get("function") ?? undefined;
    const callId = query.get("call_id") ?? undefined;
    if (callId !== undefined && !isCallId(callId)) throw invalid(`call_id ${JSON.stringify(callId.slice(0, 80))} is not a call ID`);
    const tail = Number(query.get("tail") ?? "100");
    if (!Number.isInteger(tail) || tail < 0 || tail > 100_000) throw invalid(`tail must be a whole number from 0 to 100000`);
    const since = sinceParam(query.get("since"));
    const follow = query.get("follow") === "1";
    const matches = (e: GantryEvent): e is LogEvent => e.type === "log" && e.app === app && (!fn || e.function === fn) && (!callId || e.call_id === callId);

    let lastSent = since;
    let cutOff!: () => void;
    const ended = new Promise<void>((resolve) => (cutOff = resolve));
    const out = new BoundedStream(res, { farewell: () => cutOffLine(app, lastSent), onCutOff: () => cutOff() });
    const send = (e: LogEvent) => {
      if (out.write(JSON.stringify(e) + "\n")) lastSent = e.ts;
    };
    // Lines that come while the files are read wait here (as much as a client may hold unsent), and are sent after them unless they had them.
    let waiting: LogEvent[] | null = [];
    let waitingBytes = 0;
    let closed: (() => void) | null = null;
    const onEvent = (e: GantryEvent) => {
      if (!matches(e)) return;
      if (!waiting) return send(e);
      waitingBytes += e.line.length;
      if (waitingBytes <= MAX_UNSENT_BYTES) waiting.push(e);
    };
    if (follow) d.bus.on("event", onEvent);
    try {
      const lines = await d.logs.tail(app, tail, fn, callId, since ?? undefined);
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      for (const e of lines) send(e);
      if (!follow) {
        out.end();
        return undefined;
      }
      res.flushHeaders(); // a follower knows it is listening before any line comes
      const sent = new Set(lines.map(key));
      for (const e of waiting) if (!sent.has(key(e))) send(e);
      if (waitingBytes > MAX_UNSENT_BYTES) out.cutOffNow(); // lines were left out while the files were read
      waiting = null;
      if (out.open && !req.socket.destroyed) await Promise.race([ended, new Promise<void>((resolve) => {
          closed = resolve;
          req.socket.once("close", resolve);
        })]);
      return undefined;
    } finally {
      d.bus.off("event", onEvent);
      if (closed) req.socket.off("close", closed); // the connection may carry more requests (keep-alive)
    }
  });
}
