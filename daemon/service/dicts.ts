/**
 * Dicts (issue 20): named or ephemeral key-value stores in SQLite, shared by the host's programs
 * and the functions' containers. Each operation is one atomic write; `put(skip_if_exists)` is a
 * compare-and-set with one winner among concurrent callers. Entries do not expire (Modal drops
 * idle ones after a while to bound its cloud storage; here they are state on your own disk, kept
 * until removed): a Dict holds at most DQ_LIMITS.dictEntries entries.
 */
import { DQ_LIMITS, type DictView, type WireValue } from "../../protocol/dicts-queues.js";
import type { RandomSource } from "../core/ids.js";
import type { Logger } from "../logger.js";
import { LimitError, type DictStore } from "../store/dq-store.js";
import { fromStore, invalid, ServiceError, ServiceErrorCode } from "./errors.js";
import { keyOf, readableBy, storedOf } from "./dq-values.js";
import { iso, NamedObjects } from "./named-objects.js";
import { pooledRandom } from "./random-pool.js";

export interface DictsDeps {
  store: DictStore;
  log: Logger;
  clock?: () => number;
  random?: RandomSource;
}

/** Who asks: an app's container (its name), or null for the host. */
export type Caller = string | null;

export class Dicts {
  readonly objects: NamedObjects;

  constructor(private readonly d: DictsDeps) {
    this.objects = new NamedObjects({ kind: "Dict", rows: d.store.objects, log: d.log, now: d.clock ?? Date.now, random: d.random ?? pooledRandom() });
  }

  view(name: string): DictView {
    const o = this.objects.require(name);
    return { name: o.name, created_at: iso(o.createdAt)!, ephemeral: o.ephemeral, expires_at: iso(o.expiresAt), len: this.d.store.len(o.name) };
  }

  list(): DictView[] {
    return this.objects.list().map((o) => this.view(o.name));
  }

  get(name: string, key: unknown, caller: Caller): { found: boolean; value?: WireValue } {
    this.objects.require(name);
    const v = this.d.store.get(name, keyOf(key));
    return v ? { found: true, value: readableBy(v, caller, `Dict ${name}`) } : { found: false };
  }

  contains(name: string, key: unknown): { found: boolean } {
    this.objects.require(name);
    return { found: this.d.store.get(name, keyOf(key)) !== undefined };
  }

  /** Sets one entry; with skipIfExists a key that is there wins (created: false, nothing changed). */
  async put(name: string, key: unknown, value: unknown, skipIfExists: boolean, caller: Caller): Promise<{ created: boolean }> {
    this.objects.require(name);
    const entry = { key: keyOf(key), data: storedOf(value, "the value") };
    const { added, written } = await this.write(name, [entry], caller, skipIfExists);
    return { created: skipIfExists ? written === 1 : added === 1 };
  }

  async update(name: string, entries: unknown, caller: Caller): Promise<{ updated: number }> {
    this.objects.require(name);
    if (!Array.isArray(entries) || entries.length > DQ_LIMITS.perRequest) throw invalid(`entries must be a list of at most ${DQ_LIMITS.perRequest} {"key", "value"} pairs`);
    const rows = entries.map((e: unknown, i) => {
      const pair = e as { key?: unknown; value?: unknown } | null;
      if (pair === null || typeof pair !== "object") throw invalid(`entries[${i}] must be {"key", "value"}`);
      return { key: keyOf(pair.key), data: storedOf(pair.value, `entries[${i}].value`) };
    });
    const { written } = await this.write(name, rows, caller, false);
    return { updated: written };
  }

  async pop(name: string, key: unknown, caller: Caller): Promise<{ found: boolean; value?: WireValue }> {
    this.objects.require(name);
    const k = keyOf(key);
    const existing = this.d.store.get(name, k);
    if (existing) readableBy(existing, caller, `Dict ${name}`); // refused before anything is removed
    const v = await this.d.store.pop(name, k);
    return v ? { found: true, value: readableBy(v, caller, `Dict ${name}`) } : { found: false };
  }

  len(name: string): { len: number } {
    this.objects.require(name);
    return { len: this.d.store.len(name) };
  }

  /** A page of entries, oldest write first; `next` is the cursor of the page after (null: the last). */
  items(name: string, after: number, limit: number, caller: Caller): { items: Array<{ key: WireValue; value: WireValue }>; next: number | null } {
    this.objects.require(name);
    const rows = this.d.store.page(name, after, limit);
    const items = rows.map((r) => ({ key: readableBy({ data: r.key, origin: r.origin }, caller, `Dict ${name}`), value: readableBy(r, caller, `Dict ${name}`) }));
    return { items, next: rows.length === limit ? rows.at(-1)!.seq : null };
  }

  async clear(name: string): Promise<{ cleared: number }> {
    this.objects.require(name);
    return { cleared: await this.d.store.clear(name) };
  }

  private async write(name: string, entries: Array<{ key: string; data: string }>, caller: Caller, skipIfExists: boolean): Promise<{ added: number; written: number }> {
    try {
      return await this.d.store.put(name, entries, caller, { skipIfExists, maxEntries: DQ_LIMITS.dictEntries });
    } catch (err) {
      if (err instanceof LimitError) throw new ServiceError(ServiceErrorCode.limitExceeded, `Dict ${name}: ${err.message}; nothing was written: remove keys (pop, clear) first`);
      throw fromStore(err);
    }
  }
}
