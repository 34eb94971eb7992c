/**
 * Dicts and Queues (issue 20): named key-value stores and FIFO queues kept in the daemon's SQLite,
 * shared by the host's programs and the functions' containers. What a name, a partition, a value
 * and a request may be is checked here once, for the SDKs and CLI (early) and the daemon.
 *
 * Values and keys travel as a Value: `{"value": <JSON>}` (TypeScript, the CLI, and Python values
 * JSON holds exactly: str, int, float, bool, None, lists and str-keyed dicts of those) or
 * `{"pickled": "<base64>"}` (any other Python value; the daemon never unpickles). A key's identity
 * is its canonical text (JSON with sorted object keys, or "pickle:" and the base64), so a key one
 * language wrote is the same key for the other when it is JSON.
 *
 * Dict routes (JSON bodies and answers):
 *   GET    /v1/dicts                               → { dicts: DictView[] }
 *   POST   /v1/dicts              {name, exist_ok?} → 201 DictView (200 with exist_ok when it exists; else 409)
 *   POST   /v1/dicts/ephemeral                     → 201 DictView (kept while heartbeats come: EPHEMERAL_TTL_S)
 *   GET    /v1/dicts/:name                         → DictView
 *   DELETE /v1/dicts/:name                         → { name, deleted: true }
 *   POST   /v1/dicts/:name/heartbeat               → { name, expires_at }
 *   POST   /v1/dicts/:name/get      {key}          → { found, value?: Value }
 *   POST   /v1/dicts/:name/contains {key}          → { found }
 *   POST   /v1/dicts/:name/put      {key, value, skip_if_exists?} → { created } (false: skip_if_exists and the key was there; nothing changed)
 *   POST   /v1/dicts/:name/update   {entries: [{key, value}]}     → { updated }
 *   POST   /v1/dicts/:name/pop      {key}          → { found, value?: Value } (removed)
 *   GET    /v1/dicts/:name/len                     → { len }
 *   GET    /v1/dicts/:name/items?after=CURSOR&limit=N → { items: [{key, value}], next: CURSOR | null } (oldest write first)
 *   POST   /v1/dicts/:name/clear                   → { cleared }
 *
 * Queue routes:
 *   GET    /v1/queues, POST /v1/queues {name, exist_ok?}, POST /v1/queues/ephemeral,
 *   GET|DELETE /v1/queues/:name, POST /v1/queues/:name/heartbeat   (as for dicts; QueueView)
 *   POST   /v1/queues/:name/put   {values: Value[], partition?, partition_ttl?, timeout?}
 *          → { put } ; a partition without room for them all waits up to `timeout` seconds
 *            (at most MAX_WAIT_S; 0 or absent: no wait) for room, then answers 429 queue_full
 *            naming the limit (nothing was put)
 *   POST   /v1/queues/:name/get   {n?, partition?, timeout?}
 *          → { values: Value[] } : up to n (1..MAX_GET) items, removed, oldest first; with none
 *            there, waits up to `timeout` seconds (at most MAX_WAIT_S) for the first, then answers
 *            { values: [] } (the client raises queue.Empty or waits again)
 *   GET    /v1/queues/:name/len?partition=P&total=0|1 → { len }
 *   POST   /v1/queues/:name/clear {partition?, all?}   → { cleared }
 *   GET    /v1/queues/:name/items?partition=P&after=SEQ&limit=N&wait=S
 *          → { items: [{seq, value}] } : items after SEQ without removing them (peek, iterate);
 *            with none, waits up to `wait` seconds for one
 *
 * Values written from a function's container are refused (403) to other apps' containers when
 * pickled (unpickling runs code; as for calls), JSON values pass to all.
 */

export const DQ_LIMITS = {
  /** Characters of a Dict's or Queue's name. */
  nameLength: 63,
  /** Bytes of one key or value as it travels (its JSON text, or its base64). */
  valueBytes: 1024 * 1024,
  /** Entries one Dict holds. */
  dictEntries: 1_000_000,
  /** Entries one update carries; values one put_many carries. */
  perRequest: 10_000,
  /**
   * Items one Queue partition holds. Modal's is 5,000; here a partition is rows on your own disk,
   * and a put_many of 10,000 in one request must fit (issue 20's yardstick).
   */
  itemsPerPartition: 100_000,
  /** Partitions one Queue has, as Modal. */
  partitionsPerQueue: 100_000,
  /** Bytes of a partition key, as Modal (non-empty when given). */
  partitionKeyBytes: 64,
  /** Items one get takes at most; items one read of items answers. */
  maxGet: 1_000,
} as const;

/** The longest a request waits in the daemon (a blocking get or put); clients wait again for longer timeouts. */
export const MAX_WAIT_S = 50;
/** Seconds an ephemeral Dict or Queue lives past its last heartbeat (its owner heartbeats every EPHEMERAL_TTL_S / 4). */
export const EPHEMERAL_TTL_S = 300;
/** A Queue partition is cleared this long after its last put, unless the put set a shorter partition_ttl (Modal's 24 h). */
export const PARTITION_TTL_S = 24 * 3600;

/** A value or key as it travels. */
export type WireValue = { value: unknown } | { pickled: string };

export interface DictView {
  name: string;
  created_at: string;
  ephemeral: boolean;
  expires_at: string | null;
  /** Entries it holds. */
  len: number;
}

export interface QueueView {
  name: string;
  created_at: string;
  ephemeral: boolean;
  expires_at: string | null;
  /** Items in all its partitions, and how many partitions hold some. */
  len: number;
  partitions: number;
}

const NAME = /^[A-Za-z0-9._-]+$/;

/** Why `name` cannot name a Dict or Queue (`what`), or null: letters, digits, - . _, under 64 characters. */
export function dqNameProblem(what: "Dict" | "Queue", name: unknown): string | null {
  if (typeof name !== "string" || !name) return `a ${what} name must be a non-empty string, got ${JSON.stringify(name)?.slice(0, 80)}`;
  if (name.length > DQ_LIMITS.nameLength) return `${what} name ${JSON.stringify(name.slice(0, 40))}… is ${name.length} characters; at most ${DQ_LIMITS.nameLength} are allowed`;
  if (!NAME.test(name) || name === "." || name === "..") return `${JSON.stringify(name.slice(0, 80))} is not a ${what} name: use letters, digits, -, . and _`;
  return null;
}

/** Why `partition` cannot be a partition key, or null (absent is the default partition). */
export function partitionProblem(partition: unknown): string | null {
  if (partition === undefined || partition === null) return null;
  if (typeof partition !== "string" || partition === "") return `a partition key must be a non-empty string, got ${JSON.stringify(partition)?.slice(0, 80)}`;
  const bytes = new TextEncoder().encode(partition).length;
  if (bytes > DQ_LIMITS.partitionKeyBytes) return `partition key ${JSON.stringify(partition.slice(0, 40))} is ${bytes} bytes; at most ${DQ_LIMITS.partitionKeyBytes} are allowed`;
  return null;
}

/** JSON with object keys sorted, so that equal values have one text (a key's identity). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}
