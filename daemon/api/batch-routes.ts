/**
 * Many calls in one request (DESIGN 1.7): `POST …/calls/batch` commits up to 10,000 calls in one
 * transaction before it answers their IDs, and `POST /v1/calls/results` streams the results of up
 * to 10,000 calls as NDJSON lines, each as soon as its call finishes (clients put them in order).
 */
import type http from "node:http";
import { CALL_ID_PATTERN, IDEMPOTENCY_KEY_HEADER, type CallOutcome } from "../../protocol/api.js";
import { TERMINAL } from "../core/call-state.js";
import type { CallStore } from "../store/call-store.js";
import type { Dispatcher } from "../service/dispatcher.js";
import type { Waiters } from "../service/waiters.js";
import { ApiError, invalid } from "./errors.js";
import { BoundedStream } from "./bounded-stream.js";
import { readJson, type Router } from "./http-kit.js";
import { callInput, callOutcome, fromCaller } from "./call-views.js";

export const MAX_BATCH_CALLS = 10_000;

export interface BatchRouteDeps {
  calls: CallStore;
  dispatcher: Dispatcher;
  waiters: Waiters;
  /** The largest batch request body. */
  maxBatchBodyBytes: number;
  maxWaitSeconds: number;
}

/** One line of the results stream: a finished call's outcome, and its place in the request. */
export type ResultLine = ({ index: number } & CallOutcome) | { index: number; call_id: string; not_found: true };

export function registerBatchRoutes(r: Router, d: BatchRouteDeps): void {
  r.on("POST", "/v1/apps/:app/functions/:fn/calls/batch", async ({ req, params }) => {
    d.dispatcher.requirePool(params.app!, params.fn!);
    if (req.headers[IDEMPOTENCY_KEY_HEADER.toLowerCase()] !== undefined) {
      throw invalid(`${IDEMPOTENCY_KEY_HEADER} is not taken on a batch (one key would name many calls): submit keyed calls one by one at POST …/calls`);
    }
    const body = (await readJson(req, d.maxBatchBodyBytes)) as { calls?: unknown } | undefined;
    const list = body?.calls;
    if (!Array.isArray(list)) throw invalid(`the body must be {"calls": [{"args": [...], "kwargs": {...}}, ...]}`);
    if (list.length > MAX_BATCH_CALLS) {
      throw new ApiError(413, "too_many_calls", `a batch takes at most ${MAX_BATCH_CALLS} calls; this one has ${list.length}: send it in parts`);
    }
    if (list.length === 0) throw invalid(`the batch holds no calls`);
    const inputs = list.map((c, i) => {
      try {
        return callInput(c);
      } catch (err) {
        throw invalid(`calls[${i}]: ${(err as Error).message}`);
      }
    });
    fromCaller(req, params.app!, d.calls, inputs);
    const ids = await d.dispatcher.submitMany(params.app!, params.fn!, inputs);
    return { status: 202, body: { call_ids: ids } };
  });

  r.on("POST", "/v1/calls/results", async ({ req, res }) => {
    const body = (await readJson(req, d.maxBatchBodyBytes)) as { call_ids?: unknown; wait?: unknown } | undefined;
    const ids = body?.call_ids;
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== "string" || !CALL_ID_PATTERN.test(id))) {
      throw invalid(`the body must be {"call_ids": ["fc-…", ...], "wait": seconds}`);
    }
    if (ids.length > MAX_BATCH_CALLS) throw new ApiError(413, "too_many_calls", `results of at most ${MAX_BATCH_CALLS} calls at once; asked for ${ids.length}`);
    const wait = body!.wait ?? 0;
    if (typeof wait !== "number" || !(wait >= 0)) throw invalid(`wait must be a number of seconds >= 0`);
    streamResults(d, ids as string[], Math.min(wait, d.maxWaitSeconds) * 1000, req, res);
    return undefined;
  });
}

/** Writes a line per finished call (at once for those already finished), until all are or `waitMs` passes. */
function streamResults(d: BatchRouteDeps, ids: string[], waitMs: number, req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  // A client that reads slower than results come is cut off (bounded-stream.ts); no last line: clients ask again for calls a stream left out.
  const sink = new BoundedStream(res, { onCutOff: () => end() });
  let out = "";
  let flushing = false;
  const write = (line: ResultLine) => {
    out += JSON.stringify(line) + "\n";
    if (!flushing) {
      flushing = true;
      setImmediate(() => {
        flushing = false;
        sink.write(out);
        out = "";
        if (ended) sink.end();
      });
    }
  };
  let ended = false;
  const unwatch: Array<() => void> = [];
  let open = 0;
  const end = () => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    req.socket.off("close", end); // a keep-alive connection carries many streams: each takes its listener back
    unwatch.forEach((u) => u());
    if (!flushing) sink.end();
  };
  const now = Date.now();
  ids.forEach((id, index) => {
    if (!d.dispatcher.isLive(id)) {
      // Finished (or unknown): answered at once. A live call is read only once it finishes.
      const rec = d.calls.get(id);
      if (!rec) return write({ index, call_id: id, not_found: true });
      if (TERMINAL.has(rec.status)) return write({ index, ...callOutcome(rec, now) });
    }
    if (waitMs <= 0) return;
    open++;
    unwatch.push(
      d.waiters.watch(id, () => {
        write({ index, ...callOutcome(d.calls.get(id)!, Date.now()) });
        if (--open === 0) end();
      }),
    );
  });
  const timer = setTimeout(end, waitMs);
  req.socket.once("close", end);
  if (open === 0) end();
}
