/**
 * Secrets as the service layer sees them: created, replaced and removed through the API, given
 * to containers as environment variables when they are created, and never shown: views carry
 * names and keys only, and log lines the same. Changing a secret rolls the containers of the
 * deployed functions that use it (running calls finish, new calls go to new containers).
 */
import type { SecretView } from "../../protocol/api.js";
import type { CreateSecretRequest } from "../../protocol/secrets.js";
import type { Logger } from "../logger.js";
import type { AppStore } from "../store/app-store.js";
import type { SecretStore, StoredSecret } from "../store/secret-store.js";
import { notFound, ServiceError, ServiceErrorCode } from "./errors.js";

export interface SecretsDeps {
  store: SecretStore;
  apps: Pick<AppStore, "listApps" | "listFunctions">;
  /** Retires the containers of the deployed functions using this secret; returns them ("app.fn"). */
  roll: (secret: string) => string[];
  log: Logger;
  clock?: () => number;
}

export interface SecretChange {
  secret: SecretView;
  /** False when the secret is new. */
  replaced: boolean;
  /** Functions whose containers were rolled to see the change. */
  rolled: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const howToCreate = (name: string) => `create it with: gantry secret create ${name} KEY=VALUE`;

export class Secrets {
  private readonly now: () => number;
  /** Changes one at a time, so that "exists?" and the write that follows cannot interleave. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: SecretsDeps) {
    this.now = d.clock ?? Date.now;
  }

  exists(name: string): boolean {
    return this.d.store.get(name) !== undefined;
  }

  list(): SecretView[] {
    const users = this.usersByName();
    return this.d.store.list().map((s) => this.view(s, users.get(s.name) ?? []));
  }

  get(name: string): SecretView {
    const s = this.d.store.get(name);
    if (!s) throw notFound(`no secret named ${name}; ${howToCreate(name)}`);
    return this.view(s, this.usersByName().get(name) ?? []);
  }

  /** Creates a secret; one that exists is replaced only with `force`, and its users' containers roll. */
  create(req: CreateSecretRequest): Promise<SecretChange> {
    return this.serialised(async () => {
      const old = this.d.store.get(req.name);
      if (old && !req.force) {
        throw new ServiceError(
          ServiceErrorCode.conflict,
          `secret ${req.name} already exists (keys ${Object.keys(old.values).sort().join(", ")}); replace it with --force ("force": true in the API)`,
        );
      }
      const now = this.now();
      const secret: StoredSecret = { name: req.name, values: { ...req.values }, createdAt: old?.createdAt ?? now, updatedAt: now };
      await this.d.store.put(secret);
      // A new secret's users, if any, are functions whose containers could not start without it.
      const rolled = this.d.roll(req.name);
      this.d.log.info(old ? "secret replaced" : "secret created", { secret: req.name, keys: Object.keys(secret.values).length, rolled });
      return { secret: this.view(secret, this.usersByName().get(req.name) ?? []), replaced: old !== undefined, rolled };
    });
  }

  /**
   * Removes a secret. One that deployed functions use is refused unless `force`: then their
   * containers roll, and new ones fail to start, naming the secret, until it is created again.
   */
  remove(name: string, force: boolean): Promise<{ name: string; rolled: string[] }> {
    return this.serialised(async () => {
      if (!this.d.store.get(name)) throw notFound(`no secret named ${name}`);
      const users = this.usersByName().get(name) ?? [];
      if (users.length && !force) {
        throw new ServiceError(
          ServiceErrorCode.conflict,
          `secret ${name} is used by ${users.join(", ")}: their containers could not start without it. ` +
            `Deploy them without it (or stop their apps) first, or remove it anyway with --force ("force=1" in the API)`,
        );
      }
      await this.d.store.remove(name);
      const rolled = this.d.roll(name);
      this.d.log.info("secret removed", { secret: name, rolled });
      return { name, rolled };
    });
  }

  /**
   * The environment a container of a function using `names` gets from them: a later secret wins
   * over an earlier one. Throws, naming the secret, when one no longer exists.
   */
  envFor(names: readonly string[]): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of names) {
      const s = this.d.store.get(name);
      if (!s) throw new Error(`secret ${name} does not exist (it was removed); ${howToCreate(name)}`);
      Object.assign(env, s.values);
    }
    return env;
  }

  /** The deployed functions (of apps not stopped) using each secret, as "app.fn". */
  private usersByName(): Map<string, string[]> {
    const deployed = new Set(this.d.apps.listApps().filter((a) => a.state === "deployed").map((a) => a.name));
    const users = new Map<string, string[]>();
    for (const f of this.d.apps.listFunctions()) {
      if (!deployed.has(f.app)) continue;
      for (const s of f.spec.secrets ?? []) users.set(s, [...(users.get(s) ?? []), `${f.app}.${f.name}`]);
    }
    return users;
  }

  private view(s: StoredSecret, usedBy: string[]): SecretView {
    return { name: s.name, keys: Object.keys(s.values).sort(), created_at: iso(s.createdAt), updated_at: iso(s.updatedAt), used_by: usedBy };
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(fn);
    this.chain = next;
    return next;
  }
}
