/**
 * Volumes' files on this machine: a folder per volume under $GANTRY_HOME/volumes, bind-mounted
 * into containers, owned by the functions' uid so that they can write there.
 *
 * Functions can make symbolic links in their volumes, and the daemon is root: a path from the API
 * must never lead outside its volume, even while a function swaps folders for links. So every
 * operation walks the path one part at a time from the volume's folder, each step opened with
 * O_NOFOLLOW | O_DIRECTORY and the next one named through the open folder (`/proc/self/fd/N/part`,
 * as openat would): a link met anywhere is refused, never followed, and an operation acts on the
 * folder it opened, whatever the path names by then. Writes go to a temporary file in the target
 * folder and are renamed (or hard-linked, when nothing may be overwritten) into place.
 */
import { execFile } from "node:child_process";
import { constants, type Dirent } from "node:fs";
import { chmod, lchown, link, lstat, mkdir, open, readdir, rename, rmdir, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { Readable } from "node:stream";
import { VOLUME_LIMITS, type VolumeEntry } from "../../protocol/volumes.js";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const UPLOAD_PREFIX = ".gantry-upload-";

/** A path through an open folder: what openat(fd, name) would open. */
const at = (fd: number, name?: string) => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

export type VolumePathErrorKind = "not_found" | "exists" | "link" | "not_folder" | "is_folder" | "too_many" | "root";

/** A path a volume operation cannot take, and why (the service turns each kind into its answer). */
export class VolumePathError extends Error {
  constructor(
    readonly kind: VolumePathErrorKind,
    message: string,
  ) {
    super(message);
  }
}

const shown = (parts: readonly string[]) => (parts.length ? parts.join("/") : "/");

/** Why an open of `parts` failed, in the volume's words. */
function explain(err: unknown, parts: readonly string[]): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const path = shown(parts);
  if (code === "ENOENT") return new VolumePathError("not_found", `${path}: no such file or folder`);
  if (code === "ELOOP") return new VolumePathError("link", `${path} is a symbolic link: gantry does not follow links inside volumes`);
  if (code === "ENOTDIR") return new VolumePathError("not_folder", `${path} is not a folder`);
  if (code === "EEXIST") return new VolumePathError("exists", `${path} already exists`);
  if (code === "EISDIR") return new VolumePathError("is_folder", `${path} is a folder`);
  return err;
}

export class VolumeFiles {
  constructor(
    /** $GANTRY_HOME/volumes. */
    readonly dir: string,
    /** The functions' uid and gid, who own what is written (null: the daemon is not root; folders are made 0777). */
    private readonly owner: { uid: number; gid: number } | null,
  ) {}

  folder(volume: string): string {
    return join(this.dir, volume);
  }

  /** Makes the volume's folder (an existing one is kept: a volume whose record a crash lost). */
  async create(volume: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await mkdir(this.folder(volume), { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    await this.own(this.folder(volume));
  }

  /** Removes the volume's folder and everything in it (links removed, never followed). */
  async destroy(volume: string): Promise<void> {
    const top = await open(this.dir, DIR_FLAGS).catch((err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? null : Promise.reject(err)));
    if (!top) return;
    try {
      await removeTree(top.fd, volume).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
    } finally {
      await top.close();
    }
  }

  private async own(path: string): Promise<void> {
    if (this.owner) await lchown(path, this.owner.uid, this.owner.gid);
    else await chmod(path, 0o777);
  }

  /** Opens the folder `parts` names in the volume, walking part by part (made when `create`). The caller closes it. */
  private async walk(volume: string, parts: readonly string[], create = false, full: readonly string[] = parts): Promise<FileHandle> {
    let dir = await open(this.folder(volume), DIR_FLAGS);
    try {
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        let next: FileHandle;
        try {
          next = await open(at(dir.fd, part), DIR_FLAGS);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR: say it is a link.
          if (code === "ENOTDIR" && (await lstat(at(dir.fd, part)).catch(() => null))?.isSymbolicLink()) throw explain({ code: "ELOOP" }, parts.slice(0, i + 1));
          if (code === "ENOENT" && !create) throw explain(err, full); // the path asked for, not the first part missing
          if (code !== "ENOENT") throw explain(err, parts.slice(0, i + 1));
          await mkdir(at(dir.fd, part), { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => (e.code === "EEXIST" ? undefined : Promise.reject(e)));
          next = await open(at(dir.fd, part), DIR_FLAGS).catch((e) => Promise.reject(explain(e, parts.slice(0, i + 1))));
          await this.own(at(next.fd));
        }
        await dir.close();
        dir = next;
      }
      return dir;
    } catch (err) {
      await dir.close();
      throw err;
    }
  }

  /** Runs `step` with the folder holding the last part open; `parts` must name something below the root. */
  private async inParent<T>(volume: string, parts: readonly string[], create: boolean, step: (dir: FileHandle, name: string) => Promise<T>): Promise<T> {
    if (!parts.length) throw new VolumePathError("root", "the volume's root is a folder: name a path inside it");
    const dir = await this.walk(volume, parts.slice(0, -1), create, parts);
    try {
      return await step(dir, parts.at(-1)!);
    } finally {
      await dir.close();
    }
  }

  /** A file's size, permission bits and its bytes as a stream (the stream closes the file). */
  async read(volume: string, parts: readonly string[]): Promise<{ size: number; mode: number; stream: Readable }> {
    return this.inParent(volume, parts, false, async (dir, name) => {
      const fh = await open(at(dir.fd, name), O_RDONLY | O_NOFOLLOW).catch((err) => Promise.reject(explain(err, parts)));
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new VolumePathError("is_folder", `${shown(parts)} is a folder, not a file: list it, or read the files in it`);
      }
      return { size: st.size, mode: st.mode & 0o777, stream: fh.createReadStream() };
    });
  }

  /**
   * Writes a file from `body`, its folders made as needed; nothing is in place until the whole body
   * is written. Without `overwrite`, an existing file is left as it is (VolumePathError "exists").
   */
  async write(volume: string, parts: readonly string[], body: AsyncIterable<Buffer>, overwrite: boolean, mode = 0o644): Promise<{ size: number }> {
    return this.inParent(volume, parts, true, async (dir, name) => {
      const tmp = `${UPLOAD_PREFIX}${randomBytes(6).toString("hex")}`;
      const fh = await open(at(dir.fd, tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
      let size = 0;
      try {
        if (this.owner) await fh.chown(this.owner.uid, this.owner.gid);
        for await (const chunk of body) {
          await fh.write(chunk);
          size += chunk.length;
        }
        if (mode !== 0o644) await fh.chmod(mode); // created 0644 whatever the umask; only permission bits reach here
        await fh.close();
        if (overwrite) await rename(at(dir.fd, tmp), at(dir.fd, name)).catch((err) => Promise.reject(explain(err, parts)));
        else {
          await link(at(dir.fd, tmp), at(dir.fd, name)).catch((err) => Promise.reject(explain(err, parts)));
          await unlink(at(dir.fd, tmp));
        }
        return { size };
      } catch (err) {
        await fh.close().catch(() => undefined);
        await unlink(at(dir.fd, tmp)).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Removes a file or a link; a folder only with `recursive` (its links removed, never followed). */
  async remove(volume: string, parts: readonly string[], recursive: boolean): Promise<void> {
    await this.inParent(volume, parts, false, async (dir, name) => {
      const st = await lstat(at(dir.fd, name)).catch((err) => Promise.reject(explain(err, parts)));
      if (!st.isDirectory()) return unlink(at(dir.fd, name));
      if (!recursive) throw new VolumePathError("is_folder", `${shown(parts)} is a folder: remove it with recursive (gantry volume rm -r)`);
      await removeTree(dir.fd, name);
    });
  }

  /** What a path holds: the entries of a folder (all below it with `recursive`), or the one file or link it names. */
  async list(volume: string, parts: readonly string[], recursive: boolean): Promise<VolumeEntry[]> {
    if (parts.length) {
      const single = await this.inParent(volume, parts, false, async (dir, name) => {
        const st = await lstat(at(dir.fd, name)).catch((err) => Promise.reject(explain(err, parts)));
        return st.isDirectory() ? null : entryOf(parts.join("/"), st);
      });
      if (single) return [single];
    }
    const dir = await this.walk(volume, parts);
    const out: VolumeEntry[] = [];
    try {
      await listInto(dir.fd, parts.join("/"), recursive, out);
    } finally {
      await dir.close();
    }
    return out;
  }

  /** Bytes and entries in the whole volume. */
  async usage(volume: string): Promise<{ bytes: number; files: number }> {
    const dir = await this.walk(volume, []);
    const out = { bytes: 0, files: 0 };
    try {
      await sizeOf(dir.fd, out);
    } finally {
      await dir.close();
    }
    return out;
  }

  /**
   * Copies files within the volume as `cp` does (folders, with all they hold, only with `recursive`,
   * as `cp -r`); files keep their permission bits. Returns the paths written.
   */
  async copy(volume: string, sources: readonly (readonly string[])[], dst: readonly string[], dstIsFolder: boolean, recursive = true): Promise<string[]> {
    const into = dstIsFolder || sources.length > 1 || (await this.isFolder(volume, dst));
    const written: string[] = [];
    for (const src of sources) {
      if (!src.length) throw new VolumePathError("root", "copying the volume's root is not supported: name the files or folders in it");
      if (!recursive && (await this.isFolder(volume, src))) {
        throw new VolumePathError("is_folder", `${shown(src)} is a folder: copy it with recursive (copy_files(..., recursive=True), gantry volume cp -r)`);
      }
      const target = into ? [...dst, src.at(-1)!] : [...dst];
      await this.copyOne(volume, src, target, written);
    }
    return written;
  }

  private async isFolder(volume: string, parts: readonly string[]): Promise<boolean> {
    if (!parts.length) return true;
    return this.inParent(volume, parts, false, async (dir, name) => (await lstat(at(dir.fd, name)).catch(() => null))?.isDirectory() ?? false).catch(() => false);
  }

  private async copyOne(volume: string, src: readonly string[], dst: readonly string[], written: string[]): Promise<void> {
    const entries = await this.list(volume, src, true);
    const srcPrefix = src.join("/");
    const files = entries.filter((e) => e.type === "file");
    if (written.length + files.length > VOLUME_LIMITS.entriesPerListing) throw new VolumePathError("too_many", `copying more than ${VOLUME_LIMITS.entriesPerListing} files at once is refused`);
    for (const e of files) {
      const rest = e.path === srcPrefix ? [] : e.path.slice(srcPrefix.length + 1).split("/");
      const target = [...dst, ...rest];
      const { stream, mode } = await this.read(volume, e.path.split("/"));
      await this.write(volume, target, stream as AsyncIterable<Buffer>, true, mode);
      written.push(target.join("/"));
    }
  }

  /** Makes the volume's writes durable: syncfs of the file system holding it (coreutils' sync -f). */
  async sync(volume: string): Promise<void> {
    await promisify(execFile)("sync", ["-f", this.folder(volume)]);
  }
}

function entryOf(path: string, st: { isDirectory(): boolean; isSymbolicLink(): boolean; size: number; mtimeMs: number }): VolumeEntry {
  const type = st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "file";
  return { path, type, size: type === "directory" ? 0 : st.size, mtime: Math.floor(st.mtimeMs / 1000) };
}

/** The entries below an open folder (its upload leftovers left out), recursing through its folders, never its links. */
async function listInto(fd: number, prefix: string, recursive: boolean, out: VolumeEntry[]): Promise<void> {
  const names = (await readdir(at(fd))).filter((n) => !n.startsWith(UPLOAD_PREFIX)).sort();
  for (const name of names) {
    const st = await lstat(at(fd, name)).catch(() => null);
    if (!st) continue; // removed meanwhile
    const path = prefix ? `${prefix}/${name}` : name;
    if (out.length >= VOLUME_LIMITS.entriesPerListing) {
      throw new VolumePathError("too_many", `more than ${VOLUME_LIMITS.entriesPerListing} entries: list a folder further down`);
    }
    out.push(entryOf(path, st));
    if (recursive && st.isDirectory()) {
      const sub = await open(at(fd, name), DIR_FLAGS).catch(() => null); // became a link meanwhile: not followed
      if (!sub) continue;
      try {
        await listInto(sub.fd, path, true, out);
      } finally {
        await sub.close();
      }
    }
  }
}

async function sizeOf(fd: number, out: { bytes: number; files: number }): Promise<void> {
  for (const d of (await readdir(at(fd), { withFileTypes: true })) as Dirent[]) {
    out.files++;
    if (d.isDirectory()) {
      const sub = await open(at(fd, d.name), DIR_FLAGS).catch(() => null);
      if (!sub) continue;
      try {
        await sizeOf(sub.fd, out);
      } finally {
        await sub.close();
      }
    } else if (d.isFile()) out.bytes += (await lstat(at(fd, d.name)).catch(() => ({ size: 0 }))).size;
  }
}

/** Removes `name` in an open folder: a folder with all it holds, through open folders only; a link is unlinked. */
async function removeTree(parentFd: number, name: string): Promise<void> {
  let dir: FileHandle;
  try {
    dir = await open(at(parentFd, name), DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOTDIR") return unlink(at(parentFd, name)); // a link or a file: removed itself
    throw err;
  }
  try {
    for (const d of (await readdir(at(dir.fd), { withFileTypes: true })) as Dirent[]) {
      if (d.isDirectory()) await removeTree(dir.fd, d.name);
      else await unlink(at(dir.fd, d.name)).catch((err: NodeJS.ErrnoException) => (err.code === "EISDIR" ? removeTree(dir.fd, d.name) : Promise.reject(err)));
    }
  } finally {
    await dir.close();
  }
  await rmdir(at(parentFd, name));
}
