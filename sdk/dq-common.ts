/**
 * What Dicts and Queues (issue 20) share in the SDK: values as they travel (protocol/dicts-queues.ts's
 * Value: `{value}` or `{pickled}`), the checks made before anything is sent, waits cut into requests
 * the daemon holds at most MAX_WAIT_S each, and the heartbeats of ephemeral ones.
 */
import { DQ_LIMITS, dqNameProblem, EPHEMERAL_TTL_S, MAX_WAIT_S, partitionProblem, type WireValue } from "../protocol/dicts-queues.js";
import { GantryError, InvalidArgumentError, NotFoundError, ValueNotJsonError } from "./errors.js";
import type { Transport } from "./transport.js";
import { Lease } from "./volume.js";

export type { WireValue } from "../protocol/dicts-queues.js";

/** Milliseconds between an ephemeral Dict's or Queue's heartbeats: a quarter of the time it lives without one. */
export const DQ_HEARTBEAT_INTERVAL_MS = (EPHEMERAL_TTL_S / 4) * 1000;

export type DqKind = "Dict" | "Queue";

export function checkDqName(what: DqKind, name: string): void {
  const problem = dqNameProblem(what, name);
  if (problem) throw new InvalidArgumentError(problem);
}

export function checkPartition(what: string, partition: unknown): string | undefined {
  const problem = partitionProblem(partition);
  if (problem) throw new InvalidArgumentError(`${what}: ${problem}`);
  return (partition ?? undefined) as string | undefined;
}

function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (typeof v === "number") return `the number ${String(v)}`;
  if (typeof v === "bigint") return `the bigint ${String(v)}n`;
  if (typeof v === "function") return "a function";
  if (typeof v === "symbol") return "a symbol";
  if (typeof v === "object" && v !== null) return `a ${(v as object).constructor?.name ?? "object without a prototype"}`;
  return typeof v;
}

/** Where in `v` a value JSON cannot hold (exactly) sits, and what it is; null when `v` is JSON through and through. */
export function jsonProblem(v: unknown, at = "", ancestors: object[] = []): string | null {
  if (v === null || typeof v === "string" || typeof v === "boolean") return null;
  if (typeof v === "number") return Number.isFinite(v) ? null : `${at || "it"} is ${describe(v)}, which JSON cannot hold`;
  if (typeof v !== "object") return `${at || "it"} is ${describe(v)}, which JSON cannot hold`;
  if (ancestors.includes(v)) return `${at || "it"} refers to itself`;
  const inner = [...ancestors, v];
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const problem = jsonProblem(v[i], `${at}[${i}]`, inner);
      if (problem) return problem;
    }
    return null;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const hint = v instanceof Date ? " (store date.toISOString())" : v instanceof Map ? " (store Object.fromEntries(map))" : "";
    return `${at || "it"} is ${describe(v)}, which JSON cannot hold${hint}: values are JSON (strings, finite numbers, booleans, null, arrays, plain objects)`;
  }
  for (const [k, inside] of Object.entries(v)) {
    const problem = jsonProblem(inside, `${at}${/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}`, inner);
    if (problem) return problem;
  }
  return null;
}

/**
 * A key or value as it travels: `{ value }`, checked to be JSON (nothing JSON.stringify would drop or
 * change) and at most DQ_LIMITS.valueBytes as JSON text. `what` names it in errors.
 */
export function toWire(v: unknown, what: string): { value: unknown } {
  const problem = jsonProblem(v);
  if (problem) throw new InvalidArgumentError(`${what}: ${problem.replace(/^it /, "the value ")}`);
  const bytes = Buffer.byteLength(JSON.stringify(v), "utf8");
  if (bytes > DQ_LIMITS.valueBytes) throw new InvalidArgumentError(`${what} is ${bytes} bytes as JSON; at most ${DQ_LIMITS.valueBytes} (1 MiB) are allowed`);
  return { value: v };
}

/** Whether the daemon sent a Value. */
export function isWire(w: unknown): w is WireValue {
  if (typeof w !== "object" || w === null) return false;
  return ("value" in w && !("pickled" in w)) || (typeof (w as { pickled?: unknown }).pickled === "string" && !("value" in w));
}

/** The bytes a pickled Value holds. */
export function pickledBytes(base64: string): number {
  return Buffer.from(base64, "base64").length;
}

/**
 * A Value read from the daemon as a JavaScript value. A pickled one throws ValueNotJsonError, saying
 * what holds it (`where`: "queue jobs", "dict cache's key \"a\"") and, with `removed`, what the read
 * took out (kept on the error as it travelled).
 */
export function fromWire(w: unknown, where: string, pythonHint: string, removed: readonly WireValue[] = []): unknown {
  if (!isWire(w)) throw new GantryError(`${where}: the daemon sent ${JSON.stringify(w)?.slice(0, 120)}, not a value ({value} or {pickled})`, "transport");
  if ("pickled" in w) {
    const took = removed.length ? ` It was taken out all the same: the error's \`removed\` holds ${removed.length === 1 ? "it" : `the ${removed.length} values taken`} as ${removed.length === 1 ? "it" : "they"} travelled.` : "";
    throw new ValueNotJsonError(
      `${where} holds a Python value (pickled by the Python program that stored it, ${pickledBytes(w.pickled)} bytes), which only a Python client can read: ${pythonHint}.${took}`,
      w.pickled,
      removed,
    );
  }
  return w.value;
}

/** A key as people read it in messages. */
export function keyText(key: unknown): string {
  const text = JSON.stringify(key) ?? String(key);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** A timeout in milliseconds: undefined (or Infinity) waits for ever; else a number ≥ 0. */
export function checkTimeout(what: string, name: string, ms: unknown): number {
  if (ms === undefined || ms === Infinity) return Infinity;
  if (typeof ms !== "number" || !(ms >= 0)) throw new InvalidArgumentError(`${what}: ${name} must be a number of milliseconds ≥ 0 (or undefined: wait for ever), got ${JSON.stringify(ms) ?? String(ms)}`);
  return ms;
}

/** The seconds one request may wait in the daemon, to `deadline` (ms since the epoch), at most MAX_WAIT_S. */
export function waitSeconds(deadline: number, now = Date.now()): number {
  if (deadline === Infinity) return MAX_WAIT_S;
  return Math.min(MAX_WAIT_S, Math.max(0, Math.round(deadline - now) / 1000));
}

/** `items` cut into runs of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** @internal What a Dict or Queue handle needs of its client. */
export interface DqLink {
  transport: Transport;
  /** An ephemeral one's heartbeat (null for a named one). */
  lease: Lease | null;
}

/** `client.dicts` and `client.queues`: find, list and delete by name, and make ephemeral ones that heartbeat. */
export abstract class DqRegistry<View extends { name: string }, Handle> {
  private readonly leases = new Set<Lease>();

  constructor(
    protected readonly transport: Transport,
    private readonly what: DqKind,
    private readonly collection: "dicts" | "queues",
  ) {}

  protected abstract attach(name: string, link: DqLink): Handle;

  protected route(name?: string, rest = ""): string {
    return `/v1/${this.collection}${name === undefined ? "" : `/${encodeURIComponent(name)}`}${rest}`;
  }

  /**
   * The one of that name. A missing one throws NotFoundError, unless `createIfMissing` (then it is
   * created; another program creating it at once is fine).
   */
  async fromName(name: string, opts: { createIfMissing?: boolean } = {}): Promise<Handle> {
    checkDqName(this.what, name);
    try {
      await this.transport.json<View>("GET", this.route(name));
    } catch (err) {
      if (!(err instanceof NotFoundError) || !opts.createIfMissing) throw err;
      await this.transport.json<View>("POST", this.route(), { name, exist_ok: true });
    }
    return this.attach(name, { transport: this.transport, lease: null });
  }

  /** Its record: size, when it was made, whether it is ephemeral. A missing one throws NotFoundError. */
  async info(name: string): Promise<View> {
    checkDqName(this.what, name);
    return this.transport.json<View>("GET", this.route(name));
  }

  /** All of them, ephemeral ones included. */
  async list(): Promise<View[]> {
    const res = await this.transport.json<Record<string, View[]>>("GET", this.route());
    return res[this.collection] ?? [];
  }

  /** Deletes it and all it holds. A missing one throws NotFoundError, unless `allowMissing`. */
  async delete(name: string, opts: { allowMissing?: boolean } = {}): Promise<void> {
    checkDqName(this.what, name);
    try {
      await this.transport.json("DELETE", this.route(name));
    } catch (err) {
      if (!(err instanceof NotFoundError) || !opts.allowMissing) throw err;
    }
  }

  /**
   * One of its own, named by the daemon, kept while this process heartbeats it (every
   * EPHEMERAL_TTL_S / 4 s; the timer does not keep the process alive): `closeEphemeral()` deletes it.
   */
  async ephemeral(): Promise<Handle> {
    const view = await this.transport.json<View>("POST", this.route(undefined, "/ephemeral"));
    const lease = new Lease(this.leases);
    const path = this.route(view.name, "/heartbeat");
    lease.timer = setInterval(() => {
      this.transport.json("POST", path).catch((err: unknown) => {
        if (err instanceof NotFoundError) lease.stop(); // it is gone: nothing left to keep
      });
    }, DQ_HEARTBEAT_INTERVAL_MS);
    lease.timer.unref();
    return this.attach(view.name, { transport: this.transport, lease });
  }

  /** @internal Stops every ephemeral one's heartbeats (client.close()); the daemon removes them after EPHEMERAL_TTL_S. */
  stopHeartbeats(): void {
    for (const lease of [...this.leases]) lease.stop();
  }
}

/** Stops an ephemeral one's heartbeats and deletes it (gone already is fine); a named one is refused. */
export async function closeEphemeral(what: "dict" | "queue", name: string, link: DqLink, route: string): Promise<void> {
  if (!link.lease) {
    throw new InvalidArgumentError(`${what} ${name} is not ephemeral: closeEphemeral() deletes only what client.${what}s.ephemeral() made; delete a named one with client.${what}s.delete(${JSON.stringify(name)})`);
  }
  link.lease.stop();
  await link.transport.json("DELETE", route).catch((err: unknown) => {
    if (!(err instanceof NotFoundError)) throw err;
  });
}
