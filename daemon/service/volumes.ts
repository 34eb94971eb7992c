/**
 * Volumes as the service layer sees them (issue 19): created (by name, at deploy with
 * createIfMissing, or ephemeral for as long as their owner heartbeats), mounted into the
 * containers of the functions that name them, read and written from outside, and removed only
 * when no deployed function mounts them. Files live in VolumeFiles' folders; records in
 * VolumeStore. Changes to the set of volumes run one at a time.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { EPHEMERAL_TTL_S, fileModeProblem, volumeNameProblem, volumePathParts, type VolumeEntry, type VolumeView } from "../../protocol/volumes.js";
import type { FunctionSpec } from "../../protocol/function-spec.js";
import { makeId, type RandomSource } from "../core/ids.js";
import type { Logger } from "../logger.js";
import type { AppStore } from "../store/app-store.js";
import type { StoredVolume, VolumeStore } from "../store/volume-store.js";
import { VolumePathError, type VolumeFiles } from "../host/volume-files.js";
import { invalid, notFound, ServiceError, ServiceErrorCode } from "./errors.js";
import { pooledRandom } from "./random-pool.js";

export interface VolumesDeps {
  store: VolumeStore;
  files: VolumeFiles;
  apps: Pick<AppStore, "listFunctions" | "listApps">;
  log: Logger;
  /** Why volumes cannot be mounted here (a multi-node Swarm cluster without a shared driver), or null. */
  mountProblem?: () => Promise<string | null>;
  /** Swarm: the Docker volume driver every node mounts volumes through (their storage shared), or none. */
  driver?: VolumeDriver | null;
  clock?: () => number;
  random?: RandomSource;
}

/** A Docker volume driver and its options (`{name}` in them stands for the gantry volume's name). */
export interface VolumeDriver {
  name: string;
  options: Record<string, string>;
}

/**
 * A volume mounted into a container: its folder on this machine and where the function sees it;
 * with a shared driver, the Docker volume a Swarm node mounts instead (made on each node on first use).
 */
export interface VolumeBind {
  name: string;
  hostPath: string;
  path: string;
  readOnly: boolean;
  driver?: { volume: string; name: string; options: Record<string, string> };
}

/** A volume as a container mounts it: what the container's credential may reach. */
export interface ContainerMount {
  name: string;
  readOnly: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();
const howToCreate = (name: string) => `create it with: gantry volume create ${name} (or Volume.from_name("${name}", create_if_missing=True))`;
/** How long a volume's size is kept before it is counted again (the dashboard polls the list). */
const USAGE_TTL_MS = 5_000;
const SWEEP_EVERY_MS = 30_000;

export class Volumes {
  private readonly now: () => number;
  private readonly random: RandomSource;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly usage = new Map<string, { at: number; bytes: number; files: number }>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly d: VolumesDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? pooledRandom();
  }

  /** Removes expired ephemeral volumes now and every 30 s. */
  start(): void {
    void this.sweep();
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  exists(name: string): boolean {
    return this.d.store.get(name) !== undefined;
  }

  async list(): Promise<VolumeView[]> {
    const users = this.mountersByName();
    return Promise.all(this.d.store.list().map((v) => this.view(v, users.get(v.name) ?? [])));
  }

  async get(name: string): Promise<VolumeView> {
    return this.view(this.require(name), this.mountersByName().get(name) ?? []);
  }

  /** Creates a named volume; an existing one is returned with `existOk`, refused (409) otherwise. */
  create(name: string, existOk: boolean): Promise<{ volume: VolumeView; created: boolean }> {
    const problem = volumeNameProblem(name);
    if (problem) return Promise.reject(invalid(problem));
    return this.serialised(async () => {
      if (this.exists(name)) {
        if (!existOk) throw new ServiceError(ServiceErrorCode.conflict, `volume ${name} already exists`);
        return { volume: await this.get(name), created: false };
      }
      await this.add({ name, createdAt: this.now(), ephemeral: false, expiresAt: null });
      this.d.log.info("volume created", { volume: name });
      return { volume: await this.get(name), created: true };
    });
  }

  /** An ephemeral volume: removed once no heartbeat came for EPHEMERAL_TTL_S (and no deployed function mounts it). */
  createEphemeral(): Promise<VolumeView> {
    return this.serialised(async () => {
      const now = this.now();
      const name = makeId("ephemeral", now, this.random, 10).toLowerCase();
      await this.add({ name, createdAt: now, ephemeral: true, expiresAt: now + EPHEMERAL_TTL_S * 1000 });
      return this.get(name);
    });
  }

  heartbeat(name: string): { name: string; expires_at: string } {
    const v = this.require(name);
    if (!v.ephemeral) throw invalid(`volume ${name} is not ephemeral: it needs no heartbeat`);
    const expiresAt = this.now() + EPHEMERAL_TTL_S * 1000;
    this.d.store.touch(name, expiresAt);
    return { name, expires_at: iso(expiresAt) };
  }

  /** Removes a volume and its files; refused while deployed functions mount it (it would vanish under them). */
  delete(name: string): Promise<void> {
    return this.serialised(async () => {
      this.require(name);
      const users = this.mountersByName().get(name) ?? [];
      if (users.length) {
        throw new ServiceError(ServiceErrorCode.conflict, `volume ${name} is mounted by ${users.join(", ")}: deploy them without it (or stop their apps) first`);
      }
      this.d.store.remove(name);
      this.usage.delete(name);
      await this.d.files.destroy(name);
      this.d.log.info("volume deleted", { volume: name });
    });
  }

  /** Checks a deploy's volumes: each exists (or is made, with createIfMissing) and can be mounted here. */
  async prepare(app: string, specs: readonly FunctionSpec[]): Promise<void> {
    const mounting = specs.filter((s) => s.volumes?.length);
    if (!mounting.length) return;
    const problem = (await this.d.mountProblem?.()) ?? null;
    if (problem) throw invalid(`function ${app}.${mounting[0]!.name} mounts volumes, but ${problem}`);
    for (const s of mounting) {
      for (const m of s.volumes!) {
        if (this.exists(m.name)) continue;
        if (!m.createIfMissing) throw invalid(`function ${app}.${s.name} mounts volume ${m.name} at ${m.path}, which does not exist: ${howToCreate(m.name)}`);
        await this.create(m.name, true);
      }
    }
  }

  /** The binds of one function's containers, and the map its code finds them by (GANTRY_VOLUMES). */
  binds(spec: FunctionSpec): VolumeBind[] {
    return (spec.volumes ?? []).map((m) => ({
      name: m.name,
      hostPath: this.d.files.folder(m.name),
      path: m.path,
      readOnly: m.readOnly ?? false,
      ...(this.d.driver ? { driver: sharedVolume(this.d.driver, m.name) } : {}),
    }));
  }

  // ── files ─────────────────────────────────────────────────────────────────────────────────

  entries(name: string, path: string, recursive: boolean): Promise<VolumeEntry[]> {
    return this.onFiles(name, path, (parts) => this.d.files.list(name, parts, recursive));
  }

  read(name: string, path: string): Promise<{ size: number; stream: Readable }> {
    return this.onFiles(name, path, (parts) => this.d.files.read(name, parts));
  }

  write(name: string, path: string, body: AsyncIterable<Buffer>, overwrite: boolean, mode?: number): Promise<{ path: string; size: number }> {
    const problem = mode === undefined ? null : fileModeProblem(mode);
    if (problem) return Promise.reject(invalid(`volume ${name}: ${problem}`));
    return this.onFiles(name, path, async (parts) => {
      const { size } = await this.d.files.write(name, parts, body, overwrite, mode);
      this.usage.delete(name);
      return { path: parts.join("/"), size };
    });
  }

  remove(name: string, path: string, recursive: boolean): Promise<{ path: string; removed: true }> {
    return this.onFiles(name, path, async (parts) => {
      await this.d.files.remove(name, parts, recursive);
      this.usage.delete(name);
      return { path: parts.join("/"), removed: true as const };
    });
  }

  /** Modal's copy_files, as `cp` (a folder only with `recursive`, as `cp -r`). */
  copy(name: string, srcPaths: unknown, dstPath: unknown, recursive: unknown = false): Promise<{ copied: string[] }> {
    if (!Array.isArray(srcPaths) || !srcPaths.length || srcPaths.length > 1000) throw invalid(`src_paths must be a list of 1 to 1000 paths inside volume ${name}`);
    if (typeof dstPath !== "string") throw invalid(`dst_path must be a path inside volume ${name}`);
    if (typeof recursive !== "boolean") throw invalid(`recursive must be true or false, got ${JSON.stringify(recursive)?.slice(0, 40)}`);
    return this.onFiles(name, dstPath, async (dst) => {
      const sources = srcPaths.map((p) => this.parts(p));
      const copied = await this.d.files.copy(name, sources, dst, dstPath.endsWith("/"), recursive);
      this.usage.delete(name);
      return { copied };
    });
  }

  /**
   * What code in a function's container may do with a volume: reach only those its function mounts
   * (`mounts`, fixed when the container was launched), and write only where the mount is read-write.
   */
  containerAccess(name: string, mounts: readonly ContainerMount[], write: boolean): void {
    const m = mounts.find((x) => x.name === name);
    if (!m) {
      const have = mounts.length ? `it mounts ${mounts.map((x) => x.name).join(", ")}` : "it mounts none";
      throw new ServiceError(ServiceErrorCode.forbidden, `a container reaches only the volumes its function mounts, and ${have}: volume ${name} is refused`);
    }
    if (write && m.readOnly) throw new ServiceError(ServiceErrorCode.forbidden, `volume ${name} is mounted read-only in this container: it cannot be written here`);
  }

  async commit(name: string): Promise<void> {
    this.require(name);
    await this.d.files.sync(name);
  }

  // ── inside ────────────────────────────────────────────────────────────────────────────────

  private require(name: string): StoredVolume {
    const problem = volumeNameProblem(name);
    if (problem) throw invalid(problem);
    const v = this.d.store.get(name);
    if (!v) throw notFound(`no volume named ${name}; ${howToCreate(name)}`);
    return v;
  }

  private parts(path: unknown): string[] {
    try {
      return volumePathParts(path);
    } catch (err) {
      throw invalid((err as Error).message);
    }
  }

  /** Runs a file operation on an existing volume, its path checked first; its errors as the service tells them. */
  private async onFiles<T>(name: string, path: string, op: (parts: string[]) => Promise<T>): Promise<T> {
    this.require(name);
    const parts = this.parts(path);
    try {
      return await op(parts);
    } catch (err) {
      throw fileError(name, err);
    }
  }

  private async add(v: StoredVolume): Promise<void> {
    await this.d.files.create(v.name);
    this.d.store.insert(v);
  }

  private async view(v: StoredVolume, mountedBy: string[]): Promise<VolumeView> {
    let u = this.usage.get(v.name);
    if (!u || this.now() - u.at > USAGE_TTL_MS) {
      const counted = await this.d.files.usage(v.name).catch(() => ({ bytes: 0, files: 0 }));
      u = { at: this.now(), ...counted };
      this.usage.set(v.name, u);
    }
    return {
      name: v.name,
      created_at: iso(v.createdAt),
      size_bytes: u.bytes,
      files: u.files,
      mounted_by: mountedBy,
      ephemeral: v.ephemeral,
      expires_at: v.expiresAt === null ? null : iso(v.expiresAt),
    };
  }

  /** Functions of deployed (not stopped) apps by the volumes they mount, as "app.function". */
  private mountersByName(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const deployed = new Set(this.d.apps.listApps().filter((a) => a.state === "deployed").map((a) => a.name));
    for (const f of this.d.apps.listFunctions()) {
      if (!deployed.has(f.app)) continue;
      for (const m of f.spec.volumes ?? []) out.set(m.name, [...(out.get(m.name) ?? []), `${f.app}.${f.name}`]);
    }
    return out;
  }

  private async sweep(): Promise<void> {
    const mounted = this.mountersByName();
    for (const name of this.d.store.expired(this.now())) {
      if (mounted.has(name)) continue;
      await this.delete(name).then(
        () => this.d.log.info("ephemeral volume expired", { volume: name }),
        (err: Error) => this.d.log.warn("removing an expired volume failed", { volume: name, err: err.message }),
      );
    }
  }

  private serialised<T>(step: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(step);
    this.chain = next;
    return next;
  }
}

/**
 * The Docker volume a gantry volume is on every node of a cluster: its options with `{name}`
 * filled in, and a name that changes with them (a node keeps a Docker volume's options once made,
 * so new options must make a new one rather than meet the old).
 */
export function sharedVolume(driver: VolumeDriver, name: string): NonNullable<VolumeBind["driver"]> {
  const options = Object.fromEntries(Object.entries(driver.options).map(([k, v]) => [k, v.replaceAll("{name}", name)]));
  const digest = createHash("sha256").update(JSON.stringify([driver.name, options])).digest("hex").slice(0, 10);
  return { volume: `gantry-vol-${name}-${digest}`, name: driver.name, options };
}

/** A file operation's failure in the API's terms: what is missing or in the way, a full disk. */
function fileError(volume: string, err: unknown): unknown {
  if (err instanceof VolumePathError) {
    const message = `volume ${volume}: ${err.message}`;
    if (err.kind === "not_found") return notFound(message);
    if (err.kind === "exists") return new ServiceError(ServiceErrorCode.conflict, `${message}: pass overwrite (--force, force=True) to replace it`);
    return invalid(message);
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new ServiceError(ServiceErrorCode.diskFull, `volume ${volume}: the disk holding it is full; nothing was written in its place. Free some space and try again`);
  }
  return err;
}
