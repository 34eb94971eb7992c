/**
 * Queues (issue 20): FIFO partitions in SQLite, shared by the host's programs and the functions'
 * containers. A get takes items atomically (two consumers never get one item); a get on an empty
 * partition, and a put on a full one, wait in the daemon (long-poll, at most MAX_WAIT_S a request)
 * until a put or a take on that partition wakes them. As Modal: a Queue has 100,000 partitions,
 * an item 1 MiB, and a partition is cleared 24 h after its last put (or its `partition_ttl`); a
 * partition holds 100,000 items (Modal's 5,000 would not take a put_many of 10,000).
 */
import { DQ_LIMITS, MAX_WAIT_S, PARTITION_TTL_S, partitionProblem, type QueueView, type WireValue } from "../../protocol/dicts-queues.js";
import type { RandomSource } from "../core/ids.js";
import type { Logger } from "../logger.js";
import { LimitError, type QueueStore } from "../store/dq-store.js";
import type { Caller } from "./dicts.js";
import { fromStore, invalid, ServiceError, ServiceErrorCode } from "./errors.js";
import { readableBy, storedOf } from "./dq-values.js";
import { iso, NamedObjects } from "./named-objects.js";
import { pooledRandom } from "./random-pool.js";

export interface QueuesDeps {
  store: QueueStore;
  log: Logger;
  /** Tests: smaller limits than DQ_LIMITS'. */
  limits?: { itemsPerPartition: number; partitionsPerQueue: number };
  clock?: () => number;
  random?: RandomSource;
}

/** The default partition's key (Modal's: none given). */
const DEFAULT_PARTITION = "";

export class Queues {
  readonly objects: NamedObjects;
  private readonly now: () => number;
  /** Requests waiting on a partition ("queue\0partition"), woken by a put (getters) or a take (putters). */
  private readonly waiting = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(private readonly d: QueuesDeps) {
    this.now = d.clock ?? Date.now;
    this.objects = new NamedObjects({
      kind: "Queue",
      rows: d.store.objects,
      log: d.log,
      now: this.now,
      random: d.random ?? pooledRandom(),
      onRemoved: (name) => this.wakeQueue(name),
    });
  }

  start(): void {
    this.objects.start(() => this.sweepPartitions());
  }

  /** Wakes every waiting request (they answer as they stand) and stops the sweeps. */
  close(): void {
    this.closed = true;
    this.objects.stop();
    for (const set of this.waiting.values()) for (const wake of set) wake();
  }

  view(name: string): QueueView {
    const o = this.objects.require(name);
    return { name: o.name, created_at: iso(o.createdAt)!, ephemeral: o.ephemeral, expires_at: iso(o.expiresAt), len: this.d.store.len(o.name, null), partitions: this.d.store.partitions(o.name) };
  }

  list(): QueueView[] {
    return this.objects.list().map((o) => this.view(o.name));
  }

  /** Appends values to a partition; without room for them all, waits up to `timeoutS` for it, then refuses (429, nothing put). */
  async put(name: string, body: { values?: unknown; partition?: unknown; partition_ttl?: unknown; timeout?: unknown }, caller: Caller): Promise<{ put: number }> {
    this.objects.require(name);
    const partition = checkedPartition(body.partition);
    if (!Array.isArray(body.values) || !body.values.length || body.values.length > DQ_LIMITS.perRequest) throw invalid(`values must be a list of 1 to ${DQ_LIMITS.perRequest} values`);
    const values = body.values.map((v, i) => storedOf(v, `values[${i}]`));
    const ttl = body.partition_ttl ?? PARTITION_TTL_S;
    if (typeof ttl !== "number" || !(ttl > 0) || ttl > PARTITION_TTL_S) throw invalid(`partition_ttl must be a number of seconds from above 0 to ${PARTITION_TTL_S}`);
    const deadline = this.now() + checkedWait(body.timeout, "timeout") * 1000;
    for (;;) {
      try {
        const limits = this.d.limits ?? DQ_LIMITS;
        const put = await this.d.store.put(name, partition, values, caller, { perPartition: limits.itemsPerPartition, maxPartitions: limits.partitionsPerQueue }, this.now() + ttl * 1000);
        this.wake(name, partition);
        return { put };
      } catch (err) {
        if (err instanceof LimitError) {
          // Waiting would not help: a partition goes only when cleared or expired.
          throw new ServiceError(ServiceErrorCode.limitExceeded, `Queue ${name}: ${err.message}; nothing was put: clear partitions, or let them expire (${PARTITION_TTL_S / 3600} h after their last put)`);
        }
        if (!(err instanceof RangeError)) throw fromStore(err);
        if (!(await this.waitFor(name, partition, deadline))) {
          throw new ServiceError(ServiceErrorCode.queueFull, `Queue ${name}${partition ? ` partition ${partition}` : ""}: ${err.message}; nothing was put`);
        }
      }
    }
  }

  /** Takes up to `n` items, oldest first; with none, waits up to `timeoutS` for the first put. */
  async get(name: string, body: { n?: unknown; partition?: unknown; timeout?: unknown }, caller: Caller): Promise<{ values: WireValue[] }> {
    this.objects.require(name);
    const partition = checkedPartition(body.partition);
    const n = body.n ?? 1;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > DQ_LIMITS.maxGet) throw invalid(`n must be a whole number from 1 to ${DQ_LIMITS.maxGet}`);
    const deadline = this.now() + checkedWait(body.timeout, "timeout") * 1000;
    for (;;) {
      // What another app's function pickled is refused before it is taken, not after (the host reads all).
      if (caller !== null) for (const head of this.d.store.after(name, partition, 0, n)) readableBy(head, caller, `Queue ${name}`);
      const rows = await this.d.store.take(name, partition, n);
      if (rows.length) {
        this.wake(name, partition); // putters waiting for room
        return { values: rows.map((r) => readableBy(r, caller, `Queue ${name}`)) };
      }
      if (!(await this.waitFor(name, partition, deadline))) return { values: [] };
    }
  }

  /** Items after `after` (a seq) without taking them; with none, waits up to `waitS` for one. */
  async items(name: string, partition: unknown, after: number, limit: number, waitS: unknown, caller: Caller): Promise<{ items: Array<{ seq: number; value: WireValue }> }> {
    this.objects.require(name);
    const p = checkedPartition(partition);
    const deadline = this.now() + checkedWait(waitS, "wait") * 1000;
    for (;;) {
      const rows = this.d.store.after(name, p, after, limit);
      if (rows.length) return { items: rows.map((r) => ({ seq: r.seq, value: readableBy(r, caller, `Queue ${name}`) })) };
      if (!(await this.waitFor(name, p, deadline))) return { items: [] };
    }
  }

  len(name: string, partition: unknown, total: boolean): { len: number } {
    this.objects.require(name);
    return { len: this.d.store.len(name, total ? null : checkedPartition(partition)) };
  }

  async clear(name: string, partition: unknown, all: boolean): Promise<{ cleared: number }> {
    this.objects.require(name);
    const p = all ? null : checkedPartition(partition);
    const cleared = await this.d.store.clear(name, p);
    if (p === null) this.wakeQueue(name);
    else this.wake(name, p);
    return { cleared };
  }

  /** Waits until the partition changes or the deadline passes; false when it passed (or the daemon closes). */
  private waitFor(name: string, partition: string, deadline: number): Promise<boolean> {
    const left = deadline - this.now();
    if (left <= 0 || this.closed) return Promise.resolve(false);
    const key = `${name}\0${partition}`;
    return new Promise((resolve) => {
      const set = this.waiting.get(key) ?? new Set();
      this.waiting.set(key, set);
      const done = (changed: boolean) => {
        clearTimeout(timer);
        set.delete(wake);
        if (!set.size) this.waiting.delete(key);
        resolve(changed && !this.closed);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), left);
      set.add(wake);
    });
  }

  private wake(name: string, partition: string): void {
    for (const wake of [...(this.waiting.get(`${name}\0${partition}`) ?? [])]) wake();
  }

  private wakeQueue(name: string): void {
    for (const [key, set] of this.waiting) if (key.startsWith(`${name}\0`)) for (const wake of [...set]) wake();
  }

  private async sweepPartitions(): Promise<void> {
    for (const { queue, partition } of this.d.store.expiredPartitions(this.now())) {
      await this.d.store.clear(queue, partition);
      this.wake(queue, partition);
    }
  }
}

function checkedPartition(partition: unknown): string {
  const problem = partitionProblem(partition);
  if (problem) throw invalid(problem);
  return (partition as string | null | undefined) ?? DEFAULT_PARTITION;
}

/** A wait in seconds, 0 when absent, at most MAX_WAIT_S. */
function checkedWait(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !(v >= 0)) throw invalid(`${what} must be a number of seconds from 0 to ${MAX_WAIT_S}`);
  return Math.min(v, MAX_WAIT_S);
}
