/**
 * GET /v1/apps/{app}/logs: an app's log lines (of one function, or one call), the last `tail`
 * from its file, then, with follow=1, new ones as they come. A follower is listening before the
 * answer starts, so no line falls between the file and the live stream.
 */
import { isCallId } from "../core/ids.js";
import type { AppLogs } from "../service/app-logs.js";
import type { EventBus, GantryEvent, LogEvent } from "../service/event-bus.js";
import type { AppStore } from "../store/app-store.js";
import { invalid, notFound } from "./errors.js";
import type { Router } from "./http-kit.js";

export interface LogRouteDeps {
  apps: AppStore;
  logs: AppLogs;
  bus: EventBus;
}

const key = (e: Pick<LogEvent, "ts" | "container_id" | "stream" | "line">) => `${e.ts}\0${e.container_id}\0${e.stream}\0${e.line}`;

export function registerLogRoutes(r: Router, d: LogRouteDeps): void {
  r.on("GET", "/v1/apps/:app/logs", async ({ req, res, params, query }) => {
    const app = params.app!;
    if (!d.apps.listApps().some((a) => a.name === app)) throw notFound(`no deployed app named ${app}`);
    const fn = query.get("function") ?? undefined;
    const callId = query.get("call_id") ?? undefined;
    if (callId !== undefined && !isCallId(callId)) throw invalid(`call_id ${JSON.stringify(callId.slice(0, 80))} is not a call ID`);
    const tail = Number(query.get("tail") ?? "100");
    if (!Number.isInteger(tail) || tail < 0 || tail > 100_000) throw invalid(`tail must be a whole number from 0 to 100000`);
    const follow = query.get("follow") === "1";
    const matches = (e: GantryEvent): e is LogEvent => e.type === "log" && e.app === app && (!fn || e.function === fn) && (!callId || e.call_id === callId);

    // Lines that come while the file is read wait here, and are sent after it unless it had them.
    let waiting: LogEvent[] | null = [];
    const onEvent = (e: GantryEvent) => {
      if (!matches(e)) return;
      if (waiting) waiting.push(e);
      else res.write(JSON.stringify(e) + "\n");
    };
    if (follow) d.bus.on("event", onEvent);
    try {
      const lines = await d.logs.tail(app, tail, fn, callId);
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      for (const e of lines) res.write(JSON.stringify(e) + "\n");
      if (!follow) {
        res.end();
        return undefined;
      }
      const sent = new Set(lines.map(key));
      for (const e of waiting) if (!sent.has(key(e))) res.write(JSON.stringify(e) + "\n");
      waiting = null;
      if (!req.socket.destroyed) await new Promise<void>((resolve) => req.socket.once("close", resolve));
      return undefined;
    } finally {
      d.bus.off("event", onEvent);
    }
  });
}
