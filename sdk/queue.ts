/**
 * Queues (issue 20): named FIFO queues the daemon keeps, shared by the host's programs and the
 * functions' containers, Python's and TypeScript's alike (protocol/dicts-queues.ts, the contract).
 *
 * `const q = await client.queues.fromName("jobs", { createIfMissing: true })`, then `q.put(x)`,
 * `await q.get()`, `q.getMany(10, { timeoutMs: 0 })`, `for await (const x of q.iterate())`. Values are
 * JSON; partitions (`{ partition: "user-1" }`) are independent queues inside one. Waiting is done by
 * the daemon, one request at most MAX_WAIT_S long: a longer wait is several requests, never polling.
 */
import { DQ_LIMITS, PARTITION_TTL_S, type QueueView, type WireValue } from "../protocol/dicts-queues.js";
import {
  checkPartition,
  checkTimeout,
  chunks,
  closeEphemeral,
  DqRegistry,
  fromWire,
  isWire,
  toWire,
  waitSeconds,
  type DqLink,
} from "./dq-common.js";
import { GantryError, InvalidArgumentError, QueueEmptyError, QueueFullError } from "./errors.js";
import type { Transport } from "./transport.js";

export type { QueueView } from "../protocol/dicts-queues.js";

export interface QueuePutOptions {
  /** The partition to put into (default: the default partition): a non-empty string of at most 64 bytes. */
  partition?: string;
  /** The partition is cleared this long after its last put (default and most: 24 h). */
  partitionTtlMs?: number;
  /**
   * How long to wait for room when the partition is full (DQ_LIMITS.itemsPerPartition items), in
   * milliseconds; then QueueFullError. Default: wait for ever. 0: do not wait.
   */
  timeoutMs?: number;
}

export interface QueueGetOptions {
  /** The partition to take from (default: the default partition). */
  partition?: string;
  /** How long to wait for an item when there is none, in milliseconds. Default: wait for ever. 0: do not wait. */
  timeoutMs?: number;
}

export interface QueueIterateOptions {
  /** The partition to read (default: the default partition). */
  partition?: string;
  /** The iteration ends when nothing new arrives for this long, in milliseconds (default 0: it ends at the last item there). */
  itemPollTimeoutMs?: number;
}

/** One item as /items answers it: its place in its partition, and its value as it travelled. */
export interface QueueItem {
  seq: number;
  value: WireValue;
}

/** Items a put may carry: no more than a partition holds, so that a request can ever fit. */
const PUT_CHUNK = Math.min(DQ_LIMITS.perRequest, DQ_LIMITS.itemsPerPartition);

/** A Queue: from `client.queues.fromName(name)` or `client.queues.ephemeral()`. */
export class Queue {
  private constructor(
    readonly name: string,
    private readonly link: DqLink,
  ) {}

  /** @internal A handle bound to a client (client.queues). */
  static attach(name: string, link: DqLink): Queue {
    return new Queue(name, link);
  }

  /** An ephemeral queue (client.queues.ephemeral()): gone once its heartbeats stop. */
  get isEphemeral(): boolean {
    return this.link.lease !== null;
  }

  private route(rest = ""): string {
    return `/v1/queues/${encodeURIComponent(this.name)}${rest}`;
  }

  private where(partition: string | undefined): string {
    return partition === undefined ? `queue ${this.name}` : `queue ${this.name} (partition ${JSON.stringify(partition)})`;
  }

  private pythonHint(partition: string | undefined): string {
    return `gantry.Queue.from_name(${JSON.stringify(this.name)})${partition === undefined ? "" : ` with partition=${JSON.stringify(partition)}`}`;
  }

  /** Adds a value (JSON) to the end of the queue (or of a partition). See QueuePutOptions for waiting when it is full. */
  async put(value: unknown, opts: QueuePutOptions = {}): Promise<void> {
    await this.send([toWire(value, `${this.where(opts.partition)}: put's value`)], opts, "put");
  }

  /**
   * Adds values (JSON) to the end of the queue, in order. Every value is checked before any is sent.
   * More than a partition holds go in several requests, each waiting for room as `put` does: when
   * one fails, those before it stay put (the error says how many).
   */
  async putMany(values: Iterable<unknown>, opts: QueuePutOptions = {}): Promise<void> {
    if (values === null || typeof values !== "object" || typeof (values as Iterable<unknown>)[Symbol.iterator] !== "function" || typeof values === "string") {
      throw new InvalidArgumentError(`${this.where(opts.partition)}: putMany takes an array of values, got ${typeof values === "string" ? "a string" : JSON.stringify(values)?.slice(0, 60)}`);
    }
    const wire = [...values].map((v, i) => toWire(v, `${this.where(opts.partition)}: putMany's values[${i}]`));
    await this.send(wire, opts, "putMany");
  }

  private async send(values: WireValue[], opts: QueuePutOptions, verb: string): Promise<void> {
    const what = `${this.where(opts.partition)}: ${verb}`;
    const partition = checkPartition(what, opts.partition);
    const timeoutMs = checkTimeout(what, "timeoutMs", opts.timeoutMs);
    let ttl: number | undefined;
    if (opts.partitionTtlMs !== undefined) {
      const ms = opts.partitionTtlMs;
      if (typeof ms !== "number" || !(ms > 0) || ms > PARTITION_TTL_S * 1000) {
        throw new InvalidArgumentError(`${what}: partitionTtlMs must be a number of milliseconds above 0 and at most ${PARTITION_TTL_S * 1000} (24 h), got ${JSON.stringify(ms)}`);
      }
      ttl = Math.round(ms) / 1000;
    }
    if (values.length === 0) return;
    const deadline = Date.now() + timeoutMs;
    let sent = 0;
    for (const chunk of chunks(values, PUT_CHUNK)) {
      for (;;) {
        const wait = waitSeconds(deadline);
        const asked = Date.now();
        try {
          await this.link.transport.json("POST", this.route("/put"), {
            values: chunk,
            ...(partition !== undefined ? { partition } : {}),
            ...(ttl !== undefined ? { partition_ttl: ttl } : {}),
            timeout: wait,
          });
          break;
        } catch (err) {
          if (!(err instanceof GantryError) || err.code !== "queue_full") throw err;
          // Full for as long as this request waited: wait again while time is left. An answer that
          // came well before its wait ended is a limit that waiting does not lift.
          const early = Date.now() - asked < wait * 1000 - 1000;
          if (Date.now() >= deadline || early) {
            const before = sent ? ` (${sent} of ${values.length} values were put before it)` : "";
            throw new QueueFullError(`${err.message.replace(/[.\s]+$/, "")}${before}`);
          }
        }
      }
      sent += chunk.length;
    }
  }

  /** Up to `n` items, taken out, oldest first: waits (as `timeoutMs` says) for the first; the rest only if there. Wire values. */
  private async take(n: number, opts: QueueGetOptions, verb: string): Promise<WireValue[]> {
    const what = `${this.where(opts.partition)}: ${verb}`;
    const partition = checkPartition(what, opts.partition);
    const deadline = Date.now() + checkTimeout(what, "timeoutMs", opts.timeoutMs);
    const taken: WireValue[] = [];
    let want = Math.min(n, DQ_LIMITS.maxGet);
    for (;;) {
      const wait = taken.length ? 0 : waitSeconds(deadline);
      let values: unknown;
      try {
        ({ values } = await this.link.transport.json<{ values: unknown }>("POST", this.route("/get"), {
          n: want,
          ...(partition !== undefined ? { partition } : {}),
          timeout: wait,
        }));
      } catch (err) {
        if (taken.length) return taken; // those taken are out of the queue: hand them over; the next read meets the error
        throw err;
      }
      if (!Array.isArray(values) || !values.every(isWire)) {
        throw new GantryError(`${what}: the daemon answered ${JSON.stringify(values)?.slice(0, 120)}, not a list of values`, "transport");
      }
      taken.push(...values);
      if (taken.length) {
        if (values.length < want || taken.length >= n) return taken;
        want = Math.min(n - taken.length, DQ_LIMITS.maxGet);
        continue;
      }
      if (Date.now() >= deadline) return taken;
    }
  }

  private decode(taken: WireValue[], partition: string | undefined): unknown[] {
    return taken.map((w) => fromWire(w, `${this.where(partition)}: an item`, this.pythonHint(partition), taken));
  }

  /**
   * Takes the oldest value out of the queue (or a partition). With none there, waits up to
   * `timeoutMs` (default: for ever) for one, then throws QueueEmptyError.
   */
  async get(opts: QueueGetOptions = {}): Promise<unknown> {
    const taken = await this.take(1, opts, "get");
    if (!taken.length) throw new QueueEmptyError(`${this.where(opts.partition)} is empty: nothing came within ${opts.timeoutMs} ms`);
    return this.decode(taken, opts.partition)[0];
  }

  /**
   * Takes up to `n` values out, oldest first. With none there, waits up to `timeoutMs` (default: for
   * ever) for the first; then takes what is there, up to `n`. [] when nothing came in time.
   */
  async getMany(n: number, opts: QueueGetOptions = {}): Promise<unknown[]> {
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${this.where(opts.partition)}: getMany takes a whole number of values ≥ 1, got ${JSON.stringify(n)}`);
    return this.decode(await this.take(n, opts, "getMany"), opts.partition);
  }

  /** The items in the queue's default partition, or in `partition`, or with `total` in all its partitions. */
  async len(opts: { partition?: string; total?: boolean } = {}): Promise<number> {
    const what = `${this.where(opts.partition)}: len`;
    const partition = checkPartition(what, opts.partition);
    if (opts.total && partition !== undefined) throw new InvalidArgumentError(`${what}: give a partition or total, not both`);
    const q = new URLSearchParams();
    if (partition !== undefined) q.set("partition", partition);
    if (opts.total) q.set("total", "1");
    const qs = q.toString();
    return (await this.link.transport.json<{ len: number }>("GET", this.route(`/len${qs ? `?${qs}` : ""}`))).len;
  }

  /** Removes every item of the default partition, or of `partition`, or with `all` of every partition; resolves with how many. */
  async clear(opts: { partition?: string; all?: boolean } = {}): Promise<number> {
    const what = `${this.where(opts.partition)}: clear`;
    const partition = checkPartition(what, opts.partition);
    if (opts.all && partition !== undefined) throw new InvalidArgumentError(`${what}: give a partition or all, not both`);
    const res = await this.link.transport.json<{ cleared?: unknown }>("POST", this.route("/clear"), { ...(partition !== undefined ? { partition } : {}), ...(opts.all ? { all: true } : {}) });
    return typeof res.cleared === "number" ? res.cleared : 0;
  }

  /** @internal Items after `after` (a seq), left in place, as they travelled; with none, waits up to `waitS` seconds for one. */
  async peek(opts: { partition?: string; after?: number; limit?: number; waitS?: number } = {}): Promise<QueueItem[]> {
    const partition = checkPartition(`${this.where(opts.partition)}: peek`, opts.partition);
    const q = new URLSearchParams();
    if (partition !== undefined) q.set("partition", partition);
    if (opts.after !== undefined) q.set("after", String(opts.after));
    q.set("limit", String(Math.min(opts.limit ?? DQ_LIMITS.maxGet, DQ_LIMITS.maxGet)));
    if (opts.waitS) q.set("wait", String(opts.waitS));
    const { items } = await this.link.transport.json<{ items: unknown }>("GET", this.route(`/items?${q.toString()}`));
    if (!Array.isArray(items) || !items.every((i: { seq?: unknown; value?: unknown }) => typeof i?.seq === "number" && isWire(i.value))) {
      throw new GantryError(`${this.where(partition)}: the daemon answered ${JSON.stringify(items)?.slice(0, 120)}, not a list of items`, "transport");
    }
    return items as QueueItem[];
  }

  /**
   * The values in the queue (or a partition), oldest first, left in place; then those put while it
   * runs, until nothing new arrives for `itemPollTimeoutMs` (default 0: it ends at the last one there).
   */
  async *iterate(opts: QueueIterateOptions = {}): AsyncGenerator<unknown, void, undefined> {
    const what = `${this.where(opts.partition)}: iterate`;
    checkPartition(what, opts.partition);
    const pollMs = checkTimeout(what, "itemPollTimeoutMs", opts.itemPollTimeoutMs ?? 0);
    let after: number | undefined;
    let deadline = Date.now() + pollMs;
    for (;;) {
      const items = await this.peek({ ...(opts.partition !== undefined ? { partition: opts.partition } : {}), ...(after !== undefined ? { after } : {}), waitS: waitSeconds(deadline) });
      if (items.length) {
        for (const item of items) {
          after = item.seq;
          yield fromWire(item.value, `${this.where(opts.partition)}: item ${item.seq}`, this.pythonHint(opts.partition));
        }
        deadline = Date.now() + pollMs;
        continue;
      }
      if (Date.now() >= deadline) return;
    }
  }

  /** An ephemeral queue: stops its heartbeats and deletes it (gone already is fine). A named one is refused. */
  async closeEphemeral(): Promise<void> {
    await closeEphemeral("queue", this.name, this.link, this.route());
  }
}

/** `client.queues`: find, list, delete queues, and make ephemeral ones. */
export class Queues extends DqRegistry<QueueView, Queue> {
  constructor(transport: Transport) {
    super(transport, "Queue", "queues");
  }

  protected attach(name: string, link: DqLink): Queue {
    return Queue.attach(name, link);
  }
}
