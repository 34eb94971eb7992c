/**
 * `gantry volume` (or `volumes`): create, ls, put, get, rm, cp, delete — volumes through the
 * daemon's /v1/volumes (protocol/volumes.ts). `put` and `get` take a file or a folder (recursively),
 * and `-` for stdin / stdout; transfers show progress on a terminal's stderr.
 */
import type { Command } from "commander";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, type Stats } from "node:fs";
import { lstat, mkdir, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { volumeNameProblem, volumePathParts, type VolumeEntry, type VolumeView } from "../../protocol/volumes.js";
import type { GantryClient } from "../../sdk/client.js";
import { ConflictError, GantryError, InvalidArgumentError, NotFoundError } from "../../sdk/errors.js";
import { eachLimited, localTree, volumePath, type Volume } from "../../sdk/volume.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { formatBytes } from "../../protocol/units.js";
import { ago, table, type Output } from "../output.js";

export { formatBytes };
import type { Runner } from "../runner.js";

/** Files sent or fetched at once by put and get of a folder. */
const CONCURRENCY = 4;

/** A path inside a volume as people read it: "data:/models/a.bin". */
export function where(volume: string, path: string): string {
  return `${volume}:/${path}`;
}

/** One progress line: "uploading data:/models  45.2 MiB / 120 MiB  37%  3/10 files  12.1 MiB/s". */
export function progressLine(p: { verb: string; target: string; bytes: number; total: number | null; filesDone: number; files: number; elapsedMs: number }): string {
  const rate = p.elapsedMs > 0 ? `  ${formatBytes((p.bytes / p.elapsedMs) * 1000)}/s` : "";
  const size = p.total === null ? formatBytes(p.bytes) : `${formatBytes(p.bytes)} / ${formatBytes(p.total)}  ${p.total ? Math.min(100, Math.floor((p.bytes / p.total) * 100)) : 100}%`;
  const files = p.files > 1 ? `  ${p.filesDone}/${p.files} files` : "";
  return `${p.verb} ${p.target}  ${size}${files}${rate}`;
}

/**
 * A transfer's progress on stderr: only on a terminal (and not with --json), at most every 100 ms,
 * and not before 300 ms have passed (a small transfer shows nothing). The result line on stdout is
 * the final word either way.
 */
export class Progress {
  bytes = 0;
  filesDone = 0;
  private readonly started = Date.now();
  private last = 0;
  private readonly live: boolean;

  constructor(
    private readonly out: Output,
    private readonly verb: string,
    private readonly target: string,
    private readonly total: number | null,
    private readonly files: number,
    live = process.stderr.isTTY === true && !out.json,
  ) {
    this.live = live;
  }

  add(n: number): void {
    this.bytes += n;
    this.show();
  }

  fileDone(): void {
    this.filesDone++;
    this.show();
  }

  private show(): void {
    if (!this.live) return;
    const now = Date.now();
    if (now - this.started < 300 || now - this.last < 100) return;
    this.last = now;
    this.out.progress(progressLine({ verb: this.verb, target: this.target, bytes: this.bytes, total: this.total, filesDone: this.filesDone, files: this.files, elapsedMs: now - this.started }));
  }

  end(): void {
    if (this.live) this.out.endProgress();
  }
}

function checkedName(name: string): string {
  const problem = volumeNameProblem(name);
  if (problem) throw new UsageError(problem);
  return name;
}

/** The volume, or NotFoundError saying how to make it. */
async function openVolume(client: GantryClient, name: string): Promise<Volume> {
  try {
    return await client.volumes.fromName(checkedName(name));
  } catch (err) {
    if (err instanceof NotFoundError) throw new NotFoundError(`${err.message.replace(/[.\s]+$/, "")}: create it with gantry volume create ${name}`);
    throw err;
  }
}

/**
 * Where `put` writes a file, as Modal's `volume put` does: REMOTE itself, or REMOTE/basename(LOCAL)
 * when REMOTE is the root or ends with "/".
 */
export function putFileTarget(volume: string, local: string, remote: string | undefined): string {
  const r = remote ?? "/";
  const p = volumePath(volume, r);
  if (!p || r.endsWith("/")) return p ? `${p}/${basename(local)}` : basename(local);
  return p;
}

/** What `get` fetches: one file, or a folder's files and subfolders (paths relative to the folder). */
export interface DownloadPlan {
  /** The remote path asked for, normalised ("" for the root). */
  path: string;
  folder: boolean;
  /** For a file, `rel` is its own name. */
  files: Array<{ remote: string; rel: string; size: number }>;
  dirs: string[];
  skipped: Array<{ path: string; why: string }>;
}

/**
 * Reads a recursive listing of REMOTE into what to fetch. Every path the daemon lists is checked
 * again here (no "..", nothing outside REMOTE): a local path is only ever made from such a path.
 */
export function downloadPlan(volume: string, remote: string, entries: VolumeEntry[]): DownloadPlan {
  const path = volumePath(volume, remote);
  const only = entries[0];
  if (path && entries.length === 1 && only!.path === path && only!.type !== "directory") {
    if (only!.type !== "file") throw new InvalidArgumentError(`${where(volume, path)} is a ${only!.type}, not a file or a folder: nothing to download`);
    return { path, folder: false, files: [{ remote: path, rel: basename(path), size: only!.size }], dirs: [], skipped: [] };
  }
  const prefix = path ? `${path}/` : "";
  const plan: DownloadPlan = { path, folder: true, files: [], dirs: [], skipped: [] };
  for (const e of entries) {
    let parts: string[];
    try {
      parts = volumePathParts(e.path);
    } catch (err) {
      throw new GantryError(`the daemon listed ${JSON.stringify(e.path)} in ${where(volume, path)}, which is not a path inside it (${(err as Error).message}); nothing was written`);
    }
    const full = parts.join("/");
    if (!full.startsWith(prefix) || full === path) {
      throw new GantryError(`the daemon listed ${JSON.stringify(e.path)} as inside ${where(volume, path)}, which it is not; nothing was written`);
    }
    const rel = full.slice(prefix.length);
    if (e.type === "file") plan.files.push({ remote: full, rel, size: e.size });
    else if (e.type === "directory") plan.dirs.push(rel);
    else plan.skipped.push({ path: full, why: `a ${e.type}` });
  }
  return plan;
}

/**
 * The local path of `rel` (a "/"-separated path checked by downloadPlan) under `root`, refusing
 * anything that would land outside it.
 */
export function localPath(root: string, rel: string): string {
  const parts = rel.split("/");
  if (parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\0"))) throw new GantryError(`refusing to write ${JSON.stringify(rel)}: not a plain relative path`);
  const target = resolve(root, ...parts);
  const back = relative(resolve(root), target);
  if (!back || back.startsWith("..") || isAbsolute(back)) throw new GantryError(`refusing to write ${target}: it is outside ${root}`);
  return target;
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Makes the folders of `rel` under `root` one by one, refusing to pass through a link (which could lead outside it). */
async function makeFolders(root: string, rel: string): Promise<void> {
  let at = resolve(root);
  for (const part of rel.split("/").filter(Boolean)) {
    at = join(at, part);
    let st = await lstatOrNull(at);
    if (!st) {
      try {
        await mkdir(at);
        continue;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        st = await lstat(at);
      }
    }
    if (st.isSymbolicLink()) throw new GantryError(`refusing to write into ${at}: it is a symbolic link, which could lead outside ${resolve(root)}`);
    if (!st.isDirectory()) throw new ConflictError(`${at} exists and is not a folder`);
  }
}

/** Fetches one file to `target` through a temporary file beside it, renamed over it at the end (never a half-written file). */
async function fetchFile(vol: Volume, remote: string, target: string, progress: Progress): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString("hex")}.gantry-part`);
  try {
    await pipeline(
      vol.readStream(remote),
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          progress.add(chunk.length);
          cb(null, chunk);
        },
      }),
      createWriteStream(tmp, { flags: "wx", mode: 0o644 }),
    );
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (err instanceof GantryError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new GantryError(`fetching ${where(vol.name, remote)} to ${target} failed: ${e.code ?? e.message}`);
  }
  progress.fileDone();
}

function listing(volume: string, path: string, entries: VolumeEntry[]): string {
  const type = { file: "file", directory: "dir", symlink: "link" } as const;
  return (
    table(
      ["PATH", "TYPE", "SIZE", "MODIFIED"],
      entries.map((e) => [e.type === "directory" ? `${e.path}/` : e.path, type[e.type] ?? e.type, e.type === "file" ? formatBytes(e.size) : "-", ago(new Date(e.mtime * 1000).toISOString())]),
    ) || `${where(volume, path)} is empty`
  );
}

function volumesTable(volumes: VolumeView[]): string {
  return (
    table(
      ["NAME", "SIZE", "FILES", "MOUNTED BY", "CREATED"],
      volumes.map((v) => [v.ephemeral ? `${v.name} (ephemeral)` : v.name, formatBytes(v.size_bytes), String(v.files), v.mounted_by.join(",") || "-", ago(v.created_at)]),
    ) || "no volumes: create one with gantry volume create NAME"
  );
}

/** Asks on the terminal; false for anything but y or yes. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export function registerVolumes(program: Command, run: Runner): void {
  const volume = program
    .command("volume")
    .alias("volumes")
    .description("keep files in volumes that functions mount (volumes: {\"/data\": Volume.fromName(\"data\")})");

  volume
    .command("create")
    .argument("<name>", "the volume's name: letters, digits, -, . and _")
    .description("create an empty volume")
    .action(run(async (g, name) => {
      checkedName(name!);
      const { out, client } = makeContext(g);
      try {
        const v = await client.volumes.create(name!);
        out.result(v, () => `created volume ${v.name}`);
      } finally {
        client.close();
      }
    }));

  volume
    .command("ls")
    .alias("list")
    .argument("[name]", "a volume: list its files (else: list the volumes)")
    .argument("[path]", "a folder or file inside the volume (default: its root)")
    .option("-r, --recursive", "list everything below the folder")
    .description("list volumes (size, files, the functions mounting each), or the files in one")
    .action(run<{ recursive?: boolean }>(async (opts, name, path) => {
      if (name === undefined) {
        if (opts.recursive) throw new UsageError("-r lists a volume's files: gantry volume ls NAME [PATH] -r");
        const { out, client } = makeContext(opts);
        try {
          const volumes = await client.volumes.list();
          out.result(volumes, () => volumesTable(volumes));
        } finally {
          client.close();
        }
        return;
      }
      const { out, client } = makeContext(opts);
      try {
        const vol = await openVolume(client, name);
        const p = volumePath(name, path ?? "/");
        const entries = await vol.listdir(p, { recursive: Boolean(opts.recursive) });
        out.result(entries, () => listing(name, p, entries));
      } finally {
        client.close();
      }
    }));

  volume
    .command("put")
    .argument("<name>", "the volume")
    .argument("<local>", "a local file or folder (a folder goes recursively), or - for stdin")
    .argument("[remote]", "where in the volume: a file's path, or a folder ending with / (default: the root); a folder's files go below it")
    .option("-f, --force", "replace files that exist in the volume")
    .description("upload a file or a folder into a volume")
    .action(run<{ force?: boolean }>(async (opts, name, local, remote) => {
      checkedName(name!);
      const overwrite = Boolean(opts.force);
      let st: Stats | null = null;
      if (local !== "-") {
        try {
          st = await stat(local!);
        } catch (err) {
          throw new UsageError(`cannot read ${local}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        if (!st.isFile() && !st.isDirectory()) throw new UsageError(`${local} is neither a file nor a folder`);
      } else if (remote === undefined || remote.endsWith("/") || !volumePath(name!, remote)) {
        throw new UsageError("put NAME - REMOTE reads stdin into one file: give the file's path in the volume as REMOTE");
      }
      const { out, client } = makeContext(opts);
      try {
        const vol = await openVolume(client, name!);
        const conflict = (err: unknown) => (err instanceof ConflictError ? new ConflictError(`${err.message.replace(/[.\s]+$/, "")}; replace it with --force`) : err);

        if (!st?.isDirectory()) {
          let path = local === "-" ? volumePath(name!, remote!) : putFileTarget(name!, local!, remote);
          if (local !== "-" && remote !== undefined && !remote.endsWith("/") && path) {
            // cp's rule: a REMOTE that is a folder in the volume takes the file under its own name.
            const there = await vol.listdir(path).catch((err: unknown) => (err instanceof NotFoundError ? null : Promise.reject(err)));
            if (there && !(there.length === 1 && there[0]!.path === path && there[0]!.type !== "directory")) path = `${path}/${basename(local!)}`;
          }
          const size = st?.size ?? null;
          const progress = new Progress(out, "uploading", where(name!, path), size, 1);
          let sent = 0;
          const res = await vol
            .putFile(path, local === "-" ? process.stdin : createReadStream(local!), {
              overwrite,
              // The local file's permission bits go with it, as with cp -p and Modal's put.
              ...(st ? { mode: st.mode & 0o777 } : {}),
              ...(size !== null ? { length: size } : {}),
              onProgress: (n) => {
                progress.add(n - sent);
                sent = n;
              },
            })
            .catch((err: unknown) => Promise.reject(conflict(err)))
            .finally(() => progress.end());
          const answer = { volume: name, files: [{ path: res.path ?? path, size: res.size ?? sent }], skipped: [], bytes: res.size ?? sent };
          out.result(answer, () => `uploaded ${local === "-" ? "stdin" : local} to ${where(name!, answer.files[0]!.path)} (${formatBytes(answer.bytes)})`);
          return;
        }

        const base = volumePath(name!, remote ?? "/");
        let tree: Awaited<ReturnType<typeof localTree>>;
        try {
          tree = await localTree(local!);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw new UsageError(`cannot read the folder ${e.path ?? local}: ${e.code ?? e.message}`);
        }
        for (const s of tree.skipped) out.note(`skipped ${join(local!, s.path)}: ${s.why}`);
        const planned = tree.files.map((f) => ({ ...f, remote: base ? `${base}/${f.rel}` : f.rel }));
        if (!overwrite && planned.length) {
          // Refuse before sending anything, rather than stop halfway at the first file that exists.
          const existing = await vol.listdir(base, { recursive: true }).catch((err: unknown) => {
            if (err instanceof NotFoundError || err instanceof InvalidArgumentError) return []; // no such folder yet; or too big to list: the daemon still refuses each
            throw err;
          });
          const have = new Set(existing.filter((e) => e.type !== "directory").map((e) => e.path));
          const clash = planned.filter((f) => have.has(f.remote));
          if (clash.length) {
            const more = clash.length > 1 ? ` and ${clash.length - 1} more` : "";
            throw new ConflictError(`volume ${name} already has ${clash[0]!.remote}${more}; nothing was uploaded: replace them with --force`);
          }
        }
        const total = planned.reduce((n, f) => n + f.size, 0);
        const progress = new Progress(out, "uploading", where(name!, base), total, planned.length);
        const files: Array<{ path: string; size: number }> = [];
        try {
          await eachLimited(planned, CONCURRENCY, async (f) => {
            let sent = 0;
            const res = await vol
              .putFile(f.remote, createReadStream(f.local), {
                overwrite,
                length: f.size,
                mode: f.mode,
                onProgress: (n) => {
                  progress.add(n - sent);
                  sent = n;
                },
              })
              .catch((err: unknown) => Promise.reject(conflict(err)));
            progress.fileDone();
            files.push({ path: res.path ?? f.remote, size: res.size ?? f.size });
          });
        } finally {
          progress.end();
        }
        files.sort((a, b) => (a.path < b.path ? -1 : 1));
        const answer = { volume: name, files, skipped: tree.skipped, bytes: total };
        out.result(answer, () => `uploaded ${files.length} file(s) (${formatBytes(total)}) from ${local} to ${where(name!, base)}`);
      } finally {
        client.close();
      }
    }));

  volume
    .command("get")
    .argument("<name>", "the volume")
    .argument("<remote>", "a file or a folder in the volume (a folder comes recursively)")
    .argument("[local]", "where to write: a file's path, an existing folder to write into, or - for stdout (default: .)")
    .option("-f, --force", "replace local files that exist")
    .description("download a file or a folder from a volume")
    .action(run<{ force?: boolean }>(async (opts, name, remote, localArg) => {
      checkedName(name!);
      const local = localArg ?? ".";
      const { out, client } = makeContext(opts);
      try {
        const vol = await openVolume(client, name!);
        const plan = downloadPlan(name!, remote!, await vol.listdir(remote!, { recursive: true }));
        for (const s of plan.skipped) out.note(`skipped ${where(name!, s.path)}: ${s.why}`);

        if (local === "-") {
          if (plan.folder) throw new UsageError(`${where(name!, plan.path)} is a folder: give a local folder to write it into, not -`);
          const file = plan.files[0]!;
          const progress = new Progress(out, "downloading", where(name!, file.remote), file.size, 1);
          try {
            await pipeline(vol.readStream(file.remote), new Transform({ transform: (c: Buffer, _e, cb) => (progress.add(c.length), cb(null, c)) }), process.stdout);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err; // the reader stopped (| head): not a failure
          } finally {
            progress.end();
          }
          return;
        }

        const localSt = await lstatOrNull(local);
        const isDir = localSt?.isDirectory() || (localSt?.isSymbolicLink() && (await stat(local).catch(() => null))?.isDirectory()) || false;
        // cp's rules: into an existing folder (under the remote's own name), else to LOCAL itself.
        let root: string;
        let targets: Array<{ remote: string; local: string; size: number }>;
        if (!plan.folder) {
          const file = plan.files[0]!;
          const target = isDir || local.endsWith("/") ? localPath(local, file.rel) : resolve(local);
          targets = [{ remote: file.remote, local: target, size: file.size }];
          root = dirname(target);
        } else {
          if (localSt && !isDir) throw new ConflictError(`${local} exists and is not a folder: ${where(name!, plan.path)} is a folder`);
          root = isDir && plan.path ? localPath(local, basename(plan.path)) : resolve(local);
          targets = plan.files.map((f) => ({ remote: f.remote, local: localPath(root, f.rel), size: f.size }));
        }
        if (!opts.force) {
          const clash: string[] = [];
          for (const t of targets) if (await lstatOrNull(t.local)) clash.push(t.local);
          if (clash.length) {
            const more = clash.length > 1 ? ` and ${clash.length - 1} more` : "";
            throw new ConflictError(`${clash[0]}${more} already exist${clash.length > 1 ? "" : "s"}; nothing was downloaded: replace with --force`);
          }
        }
        for (const t of targets) {
          const st = await lstatOrNull(t.local);
          if (st?.isDirectory()) throw new ConflictError(`${t.local} is a folder: it cannot be replaced by ${where(name!, t.remote)}`);
        }

        if (plan.folder && root !== resolve(local)) {
          // LOCAL/FOLDER, a name gantry chose: made here, never followed if it is a link.
          await mkdir(local, { recursive: true });
          await makeFolders(local, basename(root));
        } else {
          await mkdir(root, { recursive: true }); // LOCAL (or a file's folder), as given
        }
        for (const d of plan.dirs) await makeFolders(root, d);
        const total = targets.reduce((n, t) => n + t.size, 0);
        const progress = new Progress(out, "downloading", where(name!, plan.path), total, targets.length);
        try {
          await eachLimited(targets, CONCURRENCY, async (t) => {
            if (plan.folder) await makeFolders(root, relative(root, dirname(t.local)));
            await fetchFile(vol, t.remote, t.local, progress);
          });
        } finally {
          progress.end();
        }
        const answer = { volume: name, files: targets.map((t) => ({ path: t.remote, local: t.local, size: t.size })), bytes: progress.bytes };
        out.result(answer, () =>
          plan.folder
            ? `downloaded ${targets.length} file(s) (${formatBytes(progress.bytes)}) from ${where(name!, plan.path)} to ${root}`
            : `downloaded ${where(name!, plan.path)} to ${targets[0]!.local} (${formatBytes(progress.bytes)})`,
        );
      } finally {
        client.close();
      }
    }));

  volume
    .command("rm")
    .argument("<name>", "the volume")
    .argument("<path>", "a file, or a folder with -r")
    .option("-r, --recursive", "remove a folder and everything in it")
    .description("remove a file or a folder from a volume")
    .action(run<{ recursive?: boolean }>(async (opts, name, path) => {
      checkedName(name!);
      const p = volumePath(name!, path!);
      if (!p) throw new UsageError(`${where(name!, "")} is the volume's root: remove what is in it, or delete the volume with gantry volume delete ${name}`);
      const { out, client } = makeContext(opts);
      try {
        const vol = await openVolume(client, name!);
        await vol.removeFile(p, { recursive: Boolean(opts.recursive) }).catch((err: unknown) => {
          if (!opts.recursive && err instanceof InvalidArgumentError && /folder|director/i.test(err.message)) {
            throw new InvalidArgumentError(`${err.message.replace(/[.\s]+$/, "")}; remove a folder and everything in it with -r`);
          }
          throw err;
        });
        out.result({ volume: name, path: p, removed: true }, () => `removed ${where(name!, p)}`);
      } finally {
        client.close();
      }
    }));

  volume
    .command("cp")
    .argument("<name>", "the volume")
    .argument("<paths...>", "SRC... DST: into DST when it is a folder or ends with /, else to DST (one source)")
    .option("-r, --recursive", "copy folders, with everything in them (as cp -r)")
    .description("copy files or folders inside a volume")
    .action(run<{ recursive?: boolean }>(async (g, name, ...paths) => {
      checkedName(name!);
      if (paths.length < 2) throw new UsageError("cp takes the sources and a destination: gantry volume cp NAME SRC... DST");
      const dst = paths.at(-1)!;
      const srcs = paths.slice(0, -1);
      const { out, client } = makeContext(g);
      try {
        const vol = await openVolume(client, name!);
        const copied = await vol.copyFiles(srcs, dst, { recursive: Boolean(g.recursive) });
        out.result({ volume: name, copied }, () => `copied ${srcs.map((s) => where(name!, volumePath(name!, s))).join(", ")} to ${where(name!, volumePath(name!, dst))}${dst.endsWith("/") && volumePath(name!, dst) ? "/" : ""}`);
      } finally {
        client.close();
      }
    }));

  volume
    .command("delete")
    .argument("<name>", "the volume")
    .option("-y, --yes", "do not ask (needed where there is no terminal to ask on)")
    .description("delete a volume and all its files (refused while deployed functions mount it)")
    .action(run<{ yes?: boolean }>(async (opts, name) => {
      checkedName(name!);
      const { out, client } = makeContext(opts);
      try {
        if (!opts.yes) {
          const info = await client.volumes.info(name!);
          const what = `volume ${name} and its ${info.files} file(s) (${formatBytes(info.size_bytes)})`;
          if (!process.stdin.isTTY || !process.stderr.isTTY) throw new UsageError(`deleting ${what} cannot be undone: pass --yes to confirm (there is no terminal to ask on)`);
          if (!(await confirm(`delete ${what}? This cannot be undone.`))) throw new GantryError(`volume ${name} was not deleted`, "aborted");
        }
        await client.volumes.delete(name!);
        out.result({ name, deleted: true }, () => `deleted volume ${name}`);
      } finally {
        client.close();
      }
    }));
}
