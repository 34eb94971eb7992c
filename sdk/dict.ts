/**
 * Dicts (issue 20): named key-value stores the daemon keeps, shared by the host's programs and the
 * functions' containers, Python's and TypeScript's alike (protocol/dicts-queues.ts, the contract).
 *
 * `const d = await client.dicts.fromName("cache", { createIfMissing: true })`, then
 * `await d.put("k", v)`, `await d.get("k")`, `for await (const [k, v] of d.items())`. Keys and values
 * are JSON; a key is the same key whatever order its object's fields came in, and the same one a
 * Python program's JSON key is.
 */
import { DQ_LIMITS, type DictView, type WireValue } from "../protocol/dicts-queues.js";
import { chunks, closeEphemeral, DqRegistry, fromWire, isWire, keyText, toWire, type DqLink } from "./dq-common.js";
import { GantryError, InvalidArgumentError } from "./errors.js";
import type { Transport } from "./transport.js";

export type { DictView } from "../protocol/dicts-queues.js";

/** One entry as /items answers it: key and value as they travelled. */
export interface DictEntry {
  key: WireValue;
  value: WireValue;
}

/** What `update` takes: an object's fields (string keys), a Map, or [key, value] pairs (any JSON keys). */
export type DictEntries = Record<string, unknown> | Map<unknown, unknown> | Iterable<readonly [unknown, unknown]>;

/** A Dict: from `client.dicts.fromName(name)` or `client.dicts.ephemeral()`. */
export class Dict {
  private constructor(
    readonly name: string,
    private readonly link: DqLink,
  ) {}

  /** @internal A handle bound to a client (client.dicts). */
  static attach(name: string, link: DqLink): Dict {
    return new Dict(name, link);
  }

  /** An ephemeral dict (client.dicts.ephemeral()): gone once its heartbeats stop. */
  get isEphemeral(): boolean {
    return this.link.lease !== null;
  }

  private route(rest = ""): string {
    return `/v1/dicts/${encodeURIComponent(this.name)}${rest}`;
  }

  private key(key: unknown, verb: string): WireValue {
    return toWire(key, `dict ${this.name}: ${verb}'s key`);
  }

  private read(w: unknown, what: string, removed: readonly WireValue[] = []): unknown {
    return fromWire(w, `dict ${this.name}: ${what}`, `gantry.Dict.from_name(${JSON.stringify(this.name)})`, removed);
  }

  /** The value at `key`, or undefined when there is none (a stored null is null). */
  async get(key: unknown): Promise<unknown> {
    const res = await this.link.transport.json<{ found: boolean; value?: unknown }>("POST", this.route("/get"), { key: this.key(key, "get") });
    return res.found ? this.read(res.value, `the value at ${keyText(key)}`) : undefined;
  }

  /** Whether `key` is there. */
  async has(key: unknown): Promise<boolean> {
    return (await this.link.transport.json<{ found: boolean }>("POST", this.route("/contains"), { key: this.key(key, "has") })).found === true;
  }

  /**
   * Sets `key` to `value`. With `skipIfExists`, a key that is there is left as it is: then it
   * resolves false (else true).
   */
  async put(key: unknown, value: unknown, opts: { skipIfExists?: boolean } = {}): Promise<boolean> {
    const body = { key: this.key(key, "put"), value: toWire(value, `dict ${this.name}: put's value at ${keyText(key)}`), ...(opts.skipIfExists ? { skip_if_exists: true } : {}) };
    return (await this.link.transport.json<{ created: boolean }>("POST", this.route("/put"), body)).created !== false;
  }

  /**
   * Sets many keys at once: an object's fields, a Map's entries, or [key, value] pairs. Every one is
   * checked before any is sent; more than DQ_LIMITS.perRequest go in several requests (when one
   * fails, those before it stay). Resolves with the entries written.
   */
  async update(entries: DictEntries): Promise<number> {
    let pairs: Array<readonly [unknown, unknown]>;
    if (entries instanceof Map) pairs = [...entries.entries()];
    else if (entries !== null && typeof entries === "object" && typeof (entries as Iterable<unknown>)[Symbol.iterator] === "function") {
      pairs = [...(entries as Iterable<readonly [unknown, unknown]>)];
      const bad = pairs.findIndex((p) => !Array.isArray(p) || p.length !== 2);
      if (bad >= 0) throw new InvalidArgumentError(`dict ${this.name}: update takes [key, value] pairs; entry ${bad} is ${JSON.stringify(pairs[bad])?.slice(0, 60)}`);
    } else if (entries !== null && typeof entries === "object" && (Object.getPrototypeOf(entries) === Object.prototype || Object.getPrototypeOf(entries) === null)) {
      pairs = Object.entries(entries);
    } else {
      throw new InvalidArgumentError(`dict ${this.name}: update takes an object, a Map or [key, value] pairs, got ${JSON.stringify(entries)?.slice(0, 60) ?? typeof entries}`);
    }
    const wire = pairs.map(([k, v]) => ({ key: this.key(k, "update"), value: toWire(v, `dict ${this.name}: update's value at ${keyText(k)}`) }));
    let updated = 0;
    for (const chunk of chunks(wire, DQ_LIMITS.perRequest)) {
      const res = await this.link.transport.json<{ updated?: number }>("POST", this.route("/update"), { entries: chunk });
      updated += typeof res.updated === "number" ? res.updated : chunk.length;
    }
    return updated;
  }

  /** Removes `key` and resolves with its value, or undefined when it was not there. */
  async pop(key: unknown): Promise<unknown> {
    const res = await this.link.transport.json<{ found: boolean; value?: unknown }>("POST", this.route("/pop"), { key: this.key(key, "pop") });
    if (!res.found) return undefined;
    return this.read(res.value, `the value at ${keyText(key)}`, isWire(res.value) ? [res.value] : []);
  }

  /** The entries it holds. */
  async len(): Promise<number> {
    return (await this.link.transport.json<{ len: number }>("GET", this.route("/len"))).len;
  }

  /** Removes every entry; resolves with how many there were. */
  async clear(): Promise<number> {
    const res = await this.link.transport.json<{ cleared?: unknown }>("POST", this.route("/clear"));
    return typeof res.cleared === "number" ? res.cleared : 0;
  }

  /** @internal One page of entries after `after` (the cursor of the page before), as they travelled. */
  async page(after?: string | null, limit: number = DQ_LIMITS.maxGet): Promise<{ items: DictEntry[]; next: string | null }> {
    const q = new URLSearchParams();
    if (after) q.set("after", after);
    q.set("limit", String(Math.max(1, Math.min(limit, DQ_LIMITS.maxGet))));
    const res = await this.link.transport.json<{ items?: unknown; next?: unknown }>("GET", this.route(`/items?${q.toString()}`));
    const items = res.items;
    if (!Array.isArray(items) || !items.every((i: { key?: unknown; value?: unknown }) => isWire(i?.key) && isWire(i?.value))) {
      throw new GantryError(`dict ${this.name}: the daemon answered ${JSON.stringify(res)?.slice(0, 120)}, not a page of entries`, "transport");
    }
    // The cursor is opaque: the daemon's is a number, kept as its text.
    const next = typeof res.next === "number" || (typeof res.next === "string" && res.next) ? String(res.next) : null;
    return { items: items as DictEntry[], next };
  }

  private async *entries(): AsyncGenerator<DictEntry, void, undefined> {
    let after: string | null = null;
    do {
      const page = await this.page(after);
      yield* page.items;
      after = page.items.length ? page.next : null;
    } while (after);
  }

  /** Its keys, oldest write first, a page (DQ_LIMITS.maxGet) at a time. */
  async *keys(): AsyncGenerator<unknown, void, undefined> {
    for await (const e of this.entries()) yield this.read(e.key, "a key");
  }

  /** Its values, oldest write first. */
  async *values(): AsyncGenerator<unknown, void, undefined> {
    for await (const e of this.entries()) yield this.read(e.value, "a value");
  }

  /** Its [key, value] pairs, oldest write first. */
  async *items(): AsyncGenerator<[unknown, unknown], void, undefined> {
    for await (const e of this.entries()) {
      const key = this.read(e.key, "a key");
      yield [key, this.read(e.value, `the value at ${keyText(key)}`)];
    }
  }

  /** An ephemeral dict: stops its heartbeats and deletes it (gone already is fine). A named one is refused. */
  async closeEphemeral(): Promise<void> {
    await closeEphemeral("dict", this.name, this.link, this.route());
  }
}

/** `client.dicts`: find, list, delete dicts, and make ephemeral ones. */
export class Dicts extends DqRegistry<DictView, Dict> {
  constructor(transport: Transport) {
    super(transport, "Dict", "dicts");
  }

  protected attach(name: string, link: DqLink): Dict {
    return Dict.attach(name, link);
  }
}
