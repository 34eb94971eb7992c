/**
 * A stand-in for the daemon's /v1/dicts and /v1/queues (issue 20, protocol/dicts-queues.ts), in
 * memory: it records what it was sent and waits as the daemon does (a get with nothing there, a put
 * with no room, a read of items with none new) for at most the request's `timeout` or `wait`.
 * Used by test/unit/dq-sdk.test.ts and test/unit/dq-cli.test.ts.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { canonicalJson, DQ_LIMITS, type DictView, type QueueView, type WireValue } from "../../protocol/dicts-queues.js";

export interface FakeQueue {
  view: QueueView;
  partitions: Map<string, Array<{ seq: number; value: WireValue }>>;
  ttl: Map<string, number>;
  seq: number;
}

/** The daemon's dict and queue routes, in memory. */
export interface Fake {
  dicts: Map<string, { view: DictView; entries: Map<string, { key: WireValue; value: WireValue }> }>;
  queues: Map<string, FakeQueue>;
  requests: Array<{ method: string; url: string; body: Record<string, unknown> | null; at: number }>;
  /** Items a partition holds (the contract's is DQ_LIMITS.itemsPerPartition). */
  capacity: number;
  /** Answers a full put with 429 at once, without waiting (a limit waiting does not lift). */
  fullAtOnce: boolean;
  /** This many gets answer { values: [] } at once, as if their wait had run out. */
  emptyAtOnce: number;
}

/** The default partition's key in `partitions`. */
export const DEFAULT = "\0default";
export const keyOf = (w: WireValue) => ("pickled" in w ? `pickle:${w.pickled}` : canonicalJson(w.value));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startFake(): Promise<{ fake: Fake; server: http.Server; url: string }> {
  const fake: Fake = { dicts: new Map(), queues: new Map(), requests: [], capacity: DQ_LIMITS.itemsPerPartition, fullAtOnce: false, emptyAtOnce: 0 };
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const error = (res: http.ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });
  const now = () => new Date().toISOString();
  /** Waits until `ready()` or `seconds` have passed (checked every 5 ms); whether it became ready. */
  const until = async (ready: () => boolean, seconds: number) => {
    const end = Date.now() + seconds * 1000;
    while (!ready()) {
      if (Date.now() >= end) return false;
      await sleep(5);
    }
    return true;
  };
  const queueLen = (q: FakeQueue) => [...q.partitions.values()].reduce((n, p) => n + p.length, 0);
  const qView = (q: FakeQueue): QueueView => ({ ...q.view, len: queueLen(q), partitions: [...q.partitions.values()].filter((p) => p.length).length });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const text = Buffer.concat(chunks).toString();
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      fake.requests.push({ method: req.method!, url: req.url!, body, at: Date.now() });
      const u = new URL(req.url!, "http://x");
      const m = /^\/v1\/(dicts|queues)(?:\/([^/]+))?(?:\/([a-z]+))?$/.exec(u.pathname);
      if (!m) return error(res, 404, "not_found", "no route");
      const [, kind, rawName, sub] = m;
      const name = rawName ? decodeURIComponent(rawName) : undefined;
      const store = (kind === "dicts" ? fake.dicts : fake.queues) as Map<string, unknown>;
      const make = (n: string, ephemeral: boolean) => {
        const base = { name: n, created_at: now(), ephemeral, expires_at: ephemeral ? new Date(Date.now() + 300_000).toISOString() : null, len: 0 };
        if (kind === "dicts") fake.dicts.set(n, { view: base, entries: new Map() });
        else fake.queues.set(n, { view: { ...base, partitions: 0 }, partitions: new Map(), ttl: new Map(), seq: 0 });
      };
      const view = (n: string) => (kind === "dicts" ? { ...fake.dicts.get(n)!.view, len: fake.dicts.get(n)!.entries.size } : qView(fake.queues.get(n)!));

      if (name === "ephemeral" && req.method === "POST" && !sub) {
        const n = `eph-${store.size}`;
        make(n, true);
        return send(res, 201, view(n));
      }
      if (!name) {
        if (req.method === "GET") return send(res, 200, { [kind!]: [...store.keys()].map(view) });
        const n = body!.name as string;
        if (store.has(n)) return body!.exist_ok ? send(res, 200, view(n)) : error(res, 409, "conflict", `${n} exists`);
        make(n, false);
        return send(res, 201, view(n));
      }
      if (!store.has(name)) return error(res, 404, "not_found", `no ${kind === "dicts" ? "dict" : "queue"} named ${name}`);
      if (!sub && req.method === "GET") return send(res, 200, view(name));
      if (!sub && req.method === "DELETE") {
        store.delete(name);
        return send(res, 200, { name, deleted: true });
      }
      if (sub === "heartbeat") return send(res, 200, { name, expires_at: now() });

      if (kind === "dicts") {
        const d = fake.dicts.get(name)!;
        const key = body?.key as WireValue;
        switch (sub) {
          case "get":
          case "pop": {
            const e = d.entries.get(keyOf(key));
            if (sub === "pop") d.entries.delete(keyOf(key));
            return send(res, 200, e ? { found: true, value: e.value } : { found: false });
          }
          case "contains":
            return send(res, 200, { found: d.entries.has(keyOf(key)) });
          case "put": {
            const k = keyOf(key);
            if (body!.skip_if_exists && d.entries.has(k)) return send(res, 200, { created: false });
            d.entries.delete(k);
            d.entries.set(k, { key, value: body!.value as WireValue });
            return send(res, 200, { created: true });
          }
          case "update": {
            const entries = body!.entries as Array<{ key: WireValue; value: WireValue }>;
            for (const e of entries) {
              d.entries.delete(keyOf(e.key));
              d.entries.set(keyOf(e.key), e);
            }
            return send(res, 200, { updated: entries.length });
          }
          case "len":
            return send(res, 200, { len: d.entries.size });
          case "clear": {
            const cleared = d.entries.size;
            d.entries.clear();
            return send(res, 200, { cleared });
          }
          case "items": {
            const all = [...d.entries.values()];
            const after = Number(u.searchParams.get("after") ?? 0);
            const limit = Number(u.searchParams.get("limit") ?? 100);
            const items = all.slice(after, after + limit);
            return send(res, 200, { items, next: after + limit < all.length ? after + limit : null }); // a number, as the daemon's
          }
        }
        return error(res, 404, "not_found", "no route");
      }

      const q = fake.queues.get(name)!;
      const part = (p: unknown) => {
        const k = typeof p === "string" ? p : DEFAULT;
        if (!q.partitions.has(k)) q.partitions.set(k, []);
        return q.partitions.get(k)!;
      };
      switch (sub) {
        case "put": {
          const values = body!.values as WireValue[];
          const items = part(body!.partition);
          const room = () => items.length + values.length <= fake.capacity;
          if (!room() && (fake.fullAtOnce || !(await until(room, Number(body!.timeout ?? 0))))) {
            return error(res, 429, "queue_full", `queue ${name} is full: a partition holds at most ${fake.capacity} items`);
          }
          for (const value of values) items.push({ seq: ++q.seq, value });
          if (body!.partition_ttl !== undefined) q.ttl.set(String(body!.partition ?? DEFAULT), body!.partition_ttl as number);
          return send(res, 200, { put: values.length });
        }
        case "get": {
          const items = part(body!.partition);
          if (fake.emptyAtOnce > 0 && !items.length) {
            fake.emptyAtOnce--;
            return send(res, 200, { values: [] });
          }
          await until(() => items.length > 0, Number(body!.timeout ?? 0));
          const n = Number(body!.n ?? 1);
          return send(res, 200, { values: items.splice(0, n).map((i) => i.value) });
        }
        case "len": {
          if (u.searchParams.get("total") === "1") return send(res, 200, { len: queueLen(q) });
          return send(res, 200, { len: part(u.searchParams.get("partition") ?? undefined).length });
        }
        case "clear": {
          const cleared = body!.all ? queueLen(q) : part(body!.partition).length;
          if (body!.all) q.partitions.clear();
          else part(body!.partition).length = 0;
          return send(res, 200, { cleared });
        }
        case "items": {
          const items = part(u.searchParams.get("partition") ?? undefined);
          const after = Number(u.searchParams.get("after") ?? 0);
          const limit = Number(u.searchParams.get("limit") ?? 100);
          const newer = () => items.filter((i) => i.seq > after);
          await until(() => newer().length > 0, Number(u.searchParams.get("wait") ?? 0));
          return send(res, 200, { items: newer().slice(0, limit) });
        }
      }
      return error(res, 404, "not_found", "no route");
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ fake, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })),
  );
}
