/**
 * `POST /v1/calls/prune` `{"older_than_days"?: N}` (gantry calls prune): deletes finished calls past
 * the history window now. The answer is NDJSON: `{"type": "progress", calls, attempts, …}` after a
 * batch (at most every PROGRESS_EVERY_MS), then `{"type": "done", …report}` or `{"type": "error", error}`.
 */
import { checkedDays, type History, type PruneProgress } from "../service/history.js";
import { invalid, toResponse } from "./errors.js";
import { readJson, type Router } from "./http-kit.js";

const PROGRESS_EVERY_MS = 250;

export function registerPruneRoutes(r: Router, d: { history: Pick<History, "prune"> }): void {
  r.on("POST", "/v1/calls/prune", async ({ req, res }) => {
    const body = await readJson(req, 1024);
    if (body !== undefined && (body === null || typeof body !== "object" || Array.isArray(body))) {
      throw invalid(`the body must be {"older_than_days": N} (optional: the daemon's --history window)`);
    }
    const { older_than_days: days, ...rest } = (body ?? {}) as { older_than_days?: unknown };
    if (Object.keys(rest).length) throw invalid(`unknown field ${JSON.stringify(Object.keys(rest)[0])}: the body takes older_than_days only`);
    const olderThanDays = days === undefined ? undefined : checkedDays(days); // a bad one is a 400, before the stream starts
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    let lastMs = 0;
    const onProgress = (p: PruneProgress) => {
      const t = Date.now();
      if (t - lastMs < PROGRESS_EVERY_MS) return;
      lastMs = t;
      res.write(JSON.stringify({ type: "progress", ...p }) + "\n");
    };
    try {
      const report = await d.history.prune({ ...(olderThanDays === undefined ? {} : { olderThanDays }), onProgress });
      res.write(JSON.stringify({ type: "done", ...report }) + "\n");
    } catch (err) {
      // The 200 is sent: every failure reaches the client as its error line; an unexpected one is logged too (server.ts).
      const { body: answer, unexpected } = toResponse(err);
      res.write(JSON.stringify({ type: "error", error: answer.error }) + "\n");
      if (unexpected) throw err;
    }
    res.end();
    return undefined;
  });
}
