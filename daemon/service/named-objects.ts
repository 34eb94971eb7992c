/**
 * What Dicts and Queues share: named ones made once (create_if_missing, exist_ok), ephemeral ones
 * kept while their owner heartbeats and swept after, and removal with all they hold.
 */
import { dqNameProblem, EPHEMERAL_TTL_S } from "../../protocol/dicts-queues.js";
import { makeId, type RandomSource } from "../core/ids.js";
import type { Logger } from "../logger.js";
import type { ObjectRows, StoredObject } from "../store/dq-store.js";
import { fromStore, invalid, notFound, ServiceError, ServiceErrorCode } from "./errors.js";

export interface NamedObjectsDeps {
  kind: "Dict" | "Queue";
  rows: ObjectRows;
  log: Logger;
  now: () => number;
  random: RandomSource;
  /** Called after one is removed (its waiters are told). */
  onRemoved?: (name: string) => void;
}

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export class NamedObjects {
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly d: NamedObjectsDeps) {}

  /** The named one, or why not: a bad name (400) or none (404, saying how to make it). */
  require(name: string): StoredObject {
    const problem = dqNameProblem(this.d.kind, name);
    if (problem) throw invalid(problem);
    const o = this.d.rows.get(name);
    if (!o) throw notFound(`no ${this.d.kind} named ${name}; create it with ${this.d.kind}.from_name("${name}", create_if_missing=True) (TypeScript: createIfMissing: true)`);
    return o;
  }

  list(): StoredObject[] {
    return this.d.rows.list();
  }

  /** Makes a named one; an existing one is returned with `existOk`, refused (409) otherwise. */
  async create(name: string, existOk: boolean): Promise<{ object: StoredObject; created: boolean }> {
    const problem = dqNameProblem(this.d.kind, name);
    if (problem) throw invalid(problem);
    const created = await this.d.rows.insert({ name, createdAt: this.d.now(), ephemeral: false, expiresAt: null }).catch((err) => Promise.reject(fromStore(err)));
    if (!created && !existOk) throw new ServiceError(ServiceErrorCode.conflict, `${this.d.kind} ${name} already exists`);
    if (created) this.d.log.info(`${this.d.kind.toLowerCase()} created`, { name });
    return { object: this.d.rows.get(name)!, created };
  }

  async createEphemeral(): Promise<StoredObject> {
    const now = this.d.now();
    const name = makeId("ephemeral", now, this.d.random, 10).toLowerCase();
    await this.d.rows.insert({ name, createdAt: now, ephemeral: true, expiresAt: now + EPHEMERAL_TTL_S * 1000 }).catch((err) => Promise.reject(fromStore(err)));
    return this.d.rows.get(name)!;
  }

  async heartbeat(name: string): Promise<{ name: string; expires_at: string }> {
    const o = this.require(name);
    if (!o.ephemeral) throw invalid(`${this.d.kind} ${name} is not ephemeral: it needs no heartbeat`);
    const expiresAt = this.d.now() + EPHEMERAL_TTL_S * 1000;
    await this.d.rows.touch(name, expiresAt);
    return { name, expires_at: iso(expiresAt)! };
  }

  async delete(name: string): Promise<void> {
    this.require(name);
    await this.d.rows.remove(name);
    this.d.onRemoved?.(name);
    this.d.log.info(`${this.d.kind.toLowerCase()} deleted`, { name });
  }

  /** Removes expired ephemeral ones now and every 30 s; `more` runs on each sweep too. */
  start(more: () => Promise<void> = async () => undefined): void {
    const sweep = async () => {
      for (const name of this.d.rows.expired(this.d.now())) await this.delete(name).catch((err: Error) => this.d.log.warn("sweep failed", { name, err: err.message }));
      await more().catch((err: Error) => this.d.log.warn("sweep failed", { err: err.message }));
    };
    void sweep();
    this.sweeper = setInterval(() => void sweep(), 30_000);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }
}
