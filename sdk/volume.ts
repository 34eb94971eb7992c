/**
 * Volumes (issue 19): named folders the daemon keeps, mounted into the containers of the functions
 * that ask, and read and written from outside over the API (protocol/volumes.ts, the contract).
 *
 * In an app file, `Volume.fromName("models")` names one for a function's options:
 * `app.function({ volumes: { "/models": Volume.fromName("models", { createIfMissing: true }) } }, fn)`.
 * Through a client, `await client.volumes.fromName("models")` is the same kind of handle, able to
 * list, read, write, remove and copy its files too.
 */
import type { Dirent } from "node:fs";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { PassThrough, pipeline, Readable, Transform } from "node:stream";
import {
  EPHEMERAL_TTL_S,
  fileModeProblem,
  mountPathProblem,
  overlappingMounts,
  VOLUME_LIMITS,
  volumeNameProblem,
  volumePathParts,
  type VolumeEntry,
  type VolumeMount,
  type VolumeView,
} from "../protocol/volumes.js";
import { GantryError, InvalidArgumentError, NotFoundError } from "./errors.js";
import type { Transport } from "./transport.js";

export type { VolumeEntry, VolumeView } from "../protocol/volumes.js";

/** How a handle from another copy of the SDK (bundled twice) is still known for a Volume. */
const BRAND = Symbol.for("gantry.volume");

/** Seconds between an ephemeral volume's heartbeats: a quarter of the time it lives without one. */
export const HEARTBEAT_INTERVAL_MS = (EPHEMERAL_TTL_S / 4) * 1000;

/** @internal An ephemeral volume's heartbeat, shared by its handles (`vol` and `vol.readOnly()`). */
export class Lease {
  timer: ReturnType<typeof setInterval> | null = null;
  constructor(private readonly leases: Set<Lease>) {
    leases.add(this);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.leases.delete(this);
  }
}

interface Link {
  transport: Transport;
  lease: Lease | null;
}

interface Flags {
  readOnly: boolean;
  createIfMissing: boolean;
}

/** What `putFile`, `putDirectory` report as they send. */
export interface UploadProgress {
  /** Bytes sent so far, of `totalBytes`. */
  sentBytes: number;
  totalBytes: number;
  /** Files finished, of `totalFiles`. */
  filesDone: number;
  totalFiles: number;
}

export interface PutFileOptions {
  /** Replace the file when it exists (else the daemon refuses: ConflictError). Default false. */
  overwrite?: boolean;
  /** The bytes a Readable holds, sent as Content-Length (a stream holding another number fails); without it the stream goes chunked. */
  length?: number;
  /** Called as bytes go, with the bytes sent so far. */
  onProgress?: (sentBytes: number) => void;
  /** The file's permission bits (0o644 when left out); setuid, setgid and sticky bits are refused. */
  mode?: number;
}

export interface PutDirectoryOptions {
  overwrite?: boolean;
  /** Files sent at once; default 4. */
  concurrency?: number;
  onProgress?: (progress: UploadProgress) => void;
}

/** A file `putDirectory` sent ("/"-separated path inside the volume), or one it left out, and why. */
export interface PutDirectoryResult {
  files: Array<{ path: string; size: number }>;
  skipped: Array<{ path: string; why: string }>;
  bytes: number;
}

/** A local folder's files, for putDirectory and `gantry volume put`: regular files (and links to them), in path order. */
export interface LocalTree {
  /** `mode`: the local file's permission bits, which the upload keeps (as Modal's put_directory does). */
  files: Array<{ local: string; rel: string; size: number; mode: number }>;
  /** What is not sent: links to folders (they could loop) and special files (sockets, devices, FIFOs). */
  skipped: Array<{ path: string; why: string }>;
}

/** Walks a local folder: every regular file under it, by its "/"-separated path relative to it. */
export async function localTree(dir: string): Promise<LocalTree> {
  const tree: LocalTree = { files: [], skipped: [] };
  const walk = async (abs: string, rel: string): Promise<void> => {
    const entries: Dirent[] = await readdir(abs, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const local = join(abs, e.name);
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        await walk(local, path);
        continue;
      }
      if (e.isFile()) {
        const st = await stat(local);
        tree.files.push({ local, rel: path, size: st.size, mode: st.mode & 0o777 });
        continue;
      }
      if (e.isSymbolicLink()) {
        const target = await stat(local).catch(() => null);
        if (target?.isFile()) tree.files.push({ local, rel: path, size: target.size, mode: target.mode & 0o777 });
        else tree.skipped.push({ path, why: target ? "a link to a folder" : "a broken link" });
        continue;
      }
      tree.skipped.push({ path, why: "not a regular file" });
    }
  };
  await walk(dir, "");
  return tree;
}

/** Runs `fn` on each item, at most `limit` at once; after a failure starts no more, and throws the first one once those running end. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw (failure as { err: unknown }).err;
}

/** A path inside a volume as the API takes it ("a/b", "" for the root), checked by the contract's rules. */
export function volumePath(volume: string, path: string): string {
  try {
    return volumePathParts(path).join("/");
  } catch (err) {
    throw new InvalidArgumentError(`volume ${volume}: ${(err as Error).message}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `a ${(value as object).constructor?.name ?? "object"}`;
  return `${typeof value} ${JSON.stringify(value)?.slice(0, 60)}`;
}

function isVolume(v: unknown): v is Volume {
  return v instanceof Volume || (typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[BRAND] === true);
}

/**
 * A function's `volumes` option (`{ "/data": Volume.fromName("data") }`) as its spec keeps it:
 * `[{ path, name, readOnly?, createIfMissing? }]`, checked by the contract's rules. Throws naming
 * the mount point or volume at fault.
 */
export function volumeMounts(volumes: unknown): VolumeMount[] {
  if (typeof volumes !== "object" || volumes === null || Array.isArray(volumes) || isVolume(volumes)) {
    throw new InvalidArgumentError(`volumes takes an object of mount points, { "/data": Volume.fromName("NAME") }, got ${describe(volumes)}`);
  }
  const entries = Object.entries(volumes as Record<string, unknown>);
  if (entries.length > VOLUME_LIMITS.mountsPerFunction) {
    throw new InvalidArgumentError(`volumes mounts ${entries.length} volumes; a function mounts at most ${VOLUME_LIMITS.mountsPerFunction}`);
  }
  const mounts = entries.map(([path, v]) => {
    if (!isVolume(v)) throw new InvalidArgumentError(`volumes[${JSON.stringify(path)}] must be a Volume (Volume.fromName("NAME")), got ${describe(v)}`);
    const problem = mountPathProblem(path) ?? volumeNameProblem(v.name);
    if (problem) throw new InvalidArgumentError(`volumes[${JSON.stringify(path)}]: ${problem}`);
    return v.toMount(path);
  });
  const overlap = overlappingMounts(mounts.map((m) => m.path));
  if (overlap) throw new InvalidArgumentError(overlap);
  return mounts;
}

/** A streamed answer's whole body (a cut-off one is a transport error). */
export async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of res) chunks.push(c as Buffer);
  } catch (err) {
    throw new GantryError(`the daemon's answer was cut short: ${(err as Error).message}`, "transport");
  }
  return Buffer.concat(chunks);
}

async function readJson<T>(res: IncomingMessage): Promise<T> {
  const text = (await readAll(res)).toString("utf8");
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new GantryError(`the daemon answered with something other than JSON: ${text.slice(0, 200)}`, "transport");
  }
}

/** Counts the bytes passing through. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/**
 * A volume: in function options, a name to mount (`Volume.fromName`); from a client
 * (`client.volumes.fromName`, `client.volumes.ephemeral()`), also its files.
 */
export class Volume {
  private constructor(
    readonly name: string,
    private readonly flags: Flags,
    private readonly link: Link | null,
  ) {}

  /**
   * A volume by name, for a function's options: `volumes: { "/data": Volume.fromName("data") }`.
   * With `createIfMissing`, deploying creates it when it does not exist (else the deploy fails);
   * with `readOnly`, the functions mount it read-only.
   */
  static fromName(name: string, opts: { createIfMissing?: boolean; readOnly?: boolean } = {}): Volume {
    const problem = volumeNameProblem(name);
    if (problem) throw new InvalidArgumentError(`Volume.fromName(${JSON.stringify(name)?.slice(0, 80)}): ${problem}`);
    return new Volume(name, { readOnly: opts.readOnly === true, createIfMissing: opts.createIfMissing === true }, null);
  }

  /** @internal A handle bound to a client (client.volumes). */
  static attach(transport: Transport, name: string, opts: { createIfMissing?: boolean; readOnly?: boolean }, lease: Lease | null = null): Volume {
    return new Volume(name, { readOnly: opts.readOnly === true, createIfMissing: opts.createIfMissing === true }, { transport, lease });
  }

  /** The same volume, read-only: functions mount it so, and this handle refuses writes. */
  readOnly(): Volume {
    return new Volume(this.name, { ...this.flags, readOnly: true }, this.link);
  }

  get isReadOnly(): boolean {
    return this.flags.readOnly;
  }

  /** An ephemeral volume (client.volumes.ephemeral()): gone once its heartbeats stop. */
  get isEphemeral(): boolean {
    return this.link?.lease != null;
  }

  /** @internal Its entry in a function's spec, mounted at `path`. */
  toMount(path: string): VolumeMount {
    return {
      path,
      name: this.name,
      ...(this.flags.readOnly ? { readOnly: true } : {}),
      ...(this.flags.createIfMissing ? { createIfMissing: true } : {}),
    };
  }

  private transport(what: string): Transport {
    if (!this.link) {
      throw new InvalidArgumentError(
        `volume ${this.name}: ${what} needs a client: Volume.fromName only names a volume for function options; use (await client.volumes.fromName(${JSON.stringify(this.name)})).${what}`,
      );
    }
    return this.link.transport;
  }

  private writable(what: string): Transport {
    const t = this.transport(what);
    if (this.flags.readOnly) throw new InvalidArgumentError(`volume ${this.name} is read-only here (readOnly()): ${what} writes to it`);
    return t;
  }

  private route(rest = ""): string {
    return `/v1/volumes/${encodeURIComponent(this.name)}${rest}`;
  }

  private query(params: Record<string, string>): string {
    return `?${new URLSearchParams(params).toString()}`;
  }

  /** A file's path: not the root, not a folder's "…/". */
  private filePath(path: string, what: string): string {
    const p = volumePath(this.name, path);
    if (!p || path.endsWith("/")) {
      throw new InvalidArgumentError(`volume ${this.name}: ${what} needs a file's path, got ${JSON.stringify(path)}${p ? " (it ends with /, a folder's)" : " (the root)"}`);
    }
    return p;
  }

  /**
   * The entries of a folder (or the one entry of a file), paths relative to the volume's root;
   * `recursive` lists everything below it (up to VOLUME_LIMITS.entriesPerListing entries).
   */
  async listdir(path = "/", opts: { recursive?: boolean } = {}): Promise<VolumeEntry[]> {
    const t = this.transport("listdir");
    const p = volumePath(this.name, path);
    const res = await t.json<{ entries: VolumeEntry[] }>("GET", this.route(`/entries${this.query({ path: p, ...(opts.recursive ? { recursive: "1" } : {}) })}`));
    return res.entries;
  }

  /** A file's bytes. A missing file throws NotFoundError. */
  async readFile(path: string): Promise<Buffer> {
    const t = this.transport("readFile");
    const p = this.filePath(path, "readFile");
    const res = await t.request("GET", this.route(`/files${this.query({ path: p })}`));
    const data = await readAll(res);
    const announced = Number(res.headers["content-length"]);
    if (res.headers["content-length"] !== undefined && announced !== data.length) {
      throw new GantryError(`volume ${this.name}: ${p} came cut short: ${data.length} of ${announced} bytes`, "transport");
    }
    return data;
  }

  /**
   * A file's bytes as a stream, read as they come (for files too big to hold). A missing file, or a
   * failure on the way, is the stream's "error".
   */
  readStream(path: string): Readable {
    const t = this.transport("readStream");
    const p = this.filePath(path, "readStream");
    const out = new PassThrough();
    t.request("GET", this.route(`/files${this.query({ path: p })}`)).then(
      (res) => pipeline(res, out, () => undefined), // an error destroys `out` with it; destroying `out` ends the answer
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  }

  /**
   * Writes a file (its folders are made): bytes, a string (UTF-8) or a stream. An existing file is
   * replaced only with `overwrite` (else ConflictError).
   */
  async putFile(remotePath: string, data: Uint8Array | string | Readable, opts: PutFileOptions = {}): Promise<{ path: string; size: number }> {
    const t = this.writable("putFile");
    const p = this.filePath(remotePath, "putFile");
    const modeProblem = opts.mode === undefined ? null : fileModeProblem(opts.mode);
    if (modeProblem) throw new InvalidArgumentError(`volume ${this.name}: putFile: ${modeProblem}`);
    const url = this.route(`/files${this.query({ path: p, overwrite: opts.overwrite ? "1" : "0", ...(opts.mode !== undefined ? { mode: opts.mode.toString(8) } : {}) })}`);
    let body: Uint8Array | Readable;
    if (typeof data === "string") body = Buffer.from(data, "utf8");
    else if (data instanceof Uint8Array) body = data;
    else if (data instanceof Readable) body = data;
    else throw new InvalidArgumentError(`volume ${this.name}: putFile takes a Buffer, a string or a Readable, got ${describe(data)}`);
    const onProgress = opts.onProgress;
    let length = opts.length;
    if (body instanceof Uint8Array) length = undefined;
    if (onProgress && body instanceof Readable) {
      let sent = 0;
      // pipeline: a source that fails fails the counter (and the request); a request that fails closes the source.
      body = pipeline(body, counter((n) => onProgress((sent += n))), () => undefined);
    }
    let answer: { path: string; size: number };
    try {
      const res = await t.request("PUT", url, { body, ...(length !== undefined ? { length } : {}) });
      answer = await readJson<{ path: string; size: number }>(res);
    } catch (err) {
      if (err instanceof GantryError) throw err;
      const e = err as NodeJS.ErrnoException;
      // The data's own stream failed (a local file that cannot be read, say).
      const what = `volume ${this.name}: the data for ${p} could not be read: ${e.code && e.path ? `${e.code} ${e.path}` : e.message}`;
      throw e.code === "ENOENT" || e.code === "EACCES" || e.code === "EISDIR" ? new InvalidArgumentError(what) : new GantryError(what);
    }
    if (onProgress && data instanceof Uint8Array) onProgress(data.byteLength);
    else if (onProgress && typeof data === "string") onProgress((body as Uint8Array).byteLength);
    return answer;
  }

  /**
   * Writes every file under a local folder to `remotePath` in the volume (`dir/a.txt` goes to
   * `remotePath/a.txt`), `concurrency` at a time. Links to files are followed; links to folders and
   * special files are left out (named in `skipped`); empty folders are not made. Without
   * `overwrite`, the first file that exists stops it (ConflictError); those sent before stay.
   */
  async putDirectory(localDir: string, remotePath = "/", opts: PutDirectoryOptions = {}): Promise<PutDirectoryResult> {
    this.writable("putDirectory");
    const base = volumePath(this.name, remotePath);
    let tree: LocalTree;
    try {
      tree = await localTree(localDir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new InvalidArgumentError(`cannot read the folder ${localDir}: ${e.code ?? e.message}`);
    }
    const totalBytes = tree.files.reduce((n, f) => n + f.size, 0);
    const progress: UploadProgress = { sentBytes: 0, totalBytes, filesDone: 0, totalFiles: tree.files.length };
    const files: PutDirectoryResult["files"] = [];
    await eachLimited(tree.files, opts.concurrency ?? 4, async (f) => {
      const path = base ? `${base}/${f.rel}` : f.rel;
      let sent = 0;
      const res = await this.putFile(path, createReadStream(f.local), {
        overwrite: opts.overwrite === true,
        length: f.size,
        mode: f.mode,
        onProgress: (n) => {
          progress.sentBytes += n - sent;
          sent = n;
          opts.onProgress?.({ ...progress });
        },
      });
      progress.filesDone++;
      opts.onProgress?.({ ...progress });
      files.push({ path: res.path ?? path, size: res.size ?? f.size });
    });
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
    return { files, skipped: tree.skipped, bytes: files.reduce((n, f) => n + f.size, 0) };
  }

  /** Removes a file, or a folder with `recursive` (not the root: delete the volume instead). */
  async removeFile(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const t = this.writable("removeFile");
    const p = volumePath(this.name, path);
    if (!p) throw new InvalidArgumentError(`volume ${this.name}: removeFile("${path}") names the volume's root; remove what is in it, or delete the volume`);
    await t.json("DELETE", this.route(`/files${this.query({ path: p, recursive: opts.recursive ? "1" : "0" })}`));
  }

  /**
   * Copies files inside the volume as `cp` does (Modal's copy_files): into `dstPath` when it is a
   * folder or ends with "/", else to that path (one source); a folder only with `recursive`, as
   * `cp -r`. Files keep their permissions. Resolves with the paths made.
   */
  async copyFiles(srcPaths: string[], dstPath: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
    const t = this.writable("copyFiles");
    if (!Array.isArray(srcPaths) || srcPaths.length === 0) throw new InvalidArgumentError(`volume ${this.name}: copyFiles needs at least one source path`);
    const src = srcPaths.map((s) => {
      const p = volumePath(this.name, s);
      if (!p) throw new InvalidArgumentError(`volume ${this.name}: copyFiles cannot copy the volume's root`);
      return p;
    });
    const dst = volumePath(this.name, dstPath);
    const res = await t.json<{ copied: string[] }>("POST", this.route("/copy"), {
      src_paths: src,
      dst_path: dst && dstPath.endsWith("/") ? `${dst}/` : dst,
      recursive: opts.recursive === true,
    });
    return res.copied;
  }

  /** Makes its writes durable (fsync) before it resolves. */
  async commit(): Promise<void> {
    await this.transport("commit").json("POST", this.route("/commit"));
  }

  /** Deletes the volume and all its files (refused while deployed functions mount it); an ephemeral one's heartbeats stop. */
  async delete(): Promise<void> {
    const t = this.transport("delete");
    this.link?.lease?.stop();
    await t.json("DELETE", this.route());
  }

  /** An ephemeral volume: stops its heartbeats and deletes it. A named one: nothing to do. */
  async close(): Promise<void> {
    if (!this.link?.lease) return;
    await this.delete().catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err; // gone already: what close wants
    });
  }
}

Object.defineProperty(Volume.prototype, BRAND, { value: true });

/** `client.volumes`: find, create, list, delete volumes, and make ephemeral ones. */
export class Volumes {
  private readonly leases = new Set<Lease>();

  constructor(private readonly transport: Transport) {}

  /**
   * The volume of that name, to read and write. A missing one throws NotFoundError, unless
   * `createIfMissing` (then it is created).
   */
  async fromName(name: string, opts: { createIfMissing?: boolean; readOnly?: boolean } = {}): Promise<Volume> {
    checkName(name);
    try {
      await this.transport.json<VolumeView>("GET", `/v1/volumes/${encodeURIComponent(name)}`);
    } catch (err) {
      if (!(err instanceof NotFoundError) || !opts.createIfMissing) throw err;
      await this.create(name, { existOk: true });
    }
    return Volume.attach(this.transport, name, opts);
  }

  /** Creates a volume; one that exists is ConflictError, unless `existOk`. */
  async create(name: string, opts: { existOk?: boolean } = {}): Promise<VolumeView> {
    checkName(name);
    return this.transport.json<VolumeView>("POST", "/v1/volumes", { name, ...(opts.existOk ? { exist_ok: true } : {}) });
  }

  /** A volume's record: size, files, the functions that mount it. */
  async info(name: string): Promise<VolumeView> {
    checkName(name);
    return this.transport.json<VolumeView>("GET", `/v1/volumes/${encodeURIComponent(name)}`);
  }

  async list(): Promise<VolumeView[]> {
    return (await this.transport.json<{ volumes: VolumeView[] }>("GET", "/v1/volumes")).volumes;
  }

  /** Deletes a volume and its files; refused (ConflictError) while deployed functions mount it. */
  async delete(name: string): Promise<void> {
    checkName(name);
    await this.transport.json("DELETE", `/v1/volumes/${encodeURIComponent(name)}`);
  }

  /**
   * A volume of its own, named by the daemon, kept while this process heartbeats it (every
   * EPHEMERAL_TTL_S / 4 s; the timer does not keep the process alive): `close()` deletes it.
   */
  async ephemeral(): Promise<Volume> {
    const view = await this.transport.json<VolumeView>("POST", "/v1/volumes/ephemeral");
    const lease = new Lease(this.leases);
    const path = `/v1/volumes/${encodeURIComponent(view.name)}/heartbeat`;
    lease.timer = setInterval(() => {
      this.transport.json("POST", path).catch((err: unknown) => {
        if (err instanceof NotFoundError) lease.stop(); // it is gone: nothing left to keep
      });
    }, HEARTBEAT_INTERVAL_MS);
    lease.timer.unref();
    return Volume.attach(this.transport, view.name, {}, lease);
  }

  /** @internal Stops every ephemeral volume's heartbeats (client.close()); the daemon removes them after EPHEMERAL_TTL_S. */
  stopHeartbeats(): void {
    for (const lease of [...this.leases]) lease.stop();
  }
}

function checkName(name: string): void {
  const problem = volumeNameProblem(name);
  if (problem) throw new InvalidArgumentError(problem);
}
