/**
 * The calls a TypeScript `gantry run` spawns, so that Ctrl-C can cancel them (without --detach).
 *
 * The entrypoint calls functions through its own copy of the SDK (bundled into the app), so the
 * calls are seen where every copy meets: node's HTTP client, whose diagnostics channel shows each
 * answer. An answer to `POST …/functions/F/calls` (or `…/calls/batch`) names the calls made; an
 * answer to `GET /v1/calls/ID` that says the call finished drops it.
 */
import dc from "node:diagnostics_channel";
import type { ClientRequest, IncomingMessage } from "node:http";
import type { GantryClient } from "../sdk/client.js";

const SPAWN = /\/v1\/apps\/[^/]+\/functions\/[^/]+\/calls(\/batch)?$/;
const READ = /\/v1\/calls\/([^/?]+)$/;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const CHANNEL = "http.client.response.finish";

export interface SpawnedCalls {
  /** The IDs of the calls spawned and not seen to finish. */
  readonly calls: Set<string>;
  stop(): void;
}

/** Starts watching this process's requests for calls it spawns. */
export function trackSpawnedCalls(): SpawnedCalls {
  const calls = new Set<string>();
  const onAnswer = (message: unknown) => {
    const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
    const path = request.path.split("?")[0]!;
    const spawn = request.method === "POST" && SPAWN.test(path);
    const read = request.method === "GET" ? READ.exec(path) : null;
    if ((!spawn && !read) || (response.statusCode ?? 0) >= 300) return;
    // Another listener beside the SDK's: both get every chunk (the stream flows once both are attached).
    const chunks: Buffer[] = [];
    response.on("data", (c: Buffer) => chunks.push(c));
    response.on("end", () => {
      let body: { call_id?: unknown; call_ids?: unknown; status?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof body;
      } catch {
        return;
      }
      if (spawn) {
        const ids = Array.isArray(body.call_ids) ? body.call_ids : [body.call_id];
        for (const id of ids) if (typeof id === "string") calls.add(id);
      } else if (read && typeof body.status === "string" && TERMINAL.has(body.status)) {
        calls.delete(decodeURIComponent(read[1]!));
      }
    });
  };
  dc.subscribe(CHANNEL, onAnswer);
  return { calls, stop: () => dc.unsubscribe(CHANNEL, onAnswer) };
}

/** Cancels the calls, 16 at a time: how many were cancelled, and how many could not be (those that had finished are neither). */
export async function cancelCalls(client: GantryClient, ids: Iterable<string>): Promise<{ cancelled: number; failed: number }> {
  const queue = [...ids];
  let cancelled = 0;
  let failed = 0;
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      try {
        const { status } = await client.transport.raw("POST", `/v1/calls/${encodeURIComponent(id)}/cancel`);
        if (status === 200) cancelled++;
        else if (status !== 404 && status !== 409) failed++; // 409: it had finished
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, queue.length) }, worker));
  return { cancelled, failed };
}
