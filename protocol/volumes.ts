/**
 * Volumes (issue 19): named folders kept by the daemon under $GANTRY_HOME/volumes/NAME, mounted
 * into the containers of the functions that ask (`volumes: {"/data": vol}`), and read and written
 * from outside over the API. What a name, a mount and a path inside a volume may be is checked
 * here once, for the SDKs and CLI (early, friendly) and the daemon (authoritative).
 *
 * Routes (all JSON but the file bodies, which are application/octet-stream):
 *   GET    /v1/volumes                                   → { volumes: VolumeView[] }
 *   POST   /v1/volumes              {name, exist_ok?}    → 201 VolumeView (200 with exist_ok when it exists; else 409)
 *   POST   /v1/volumes/ephemeral                         → 201 VolumeView (kept while heartbeats come: EPHEMERAL_TTL_S)
 *   GET    /v1/volumes/:name                             → VolumeView
 *   DELETE /v1/volumes/:name                             → { name, deleted: true } (409 while deployed functions mount it)
 *   POST   /v1/volumes/:name/heartbeat                   → { name, expires_at } (ephemeral volumes)
 *   POST   /v1/volumes/:name/commit                      → { name, committed: true } (its writes made durable: fsync)
 *   GET    /v1/volumes/:name/entries?path=P&recursive=1  → { entries: VolumeEntry[] } (P a folder or a file; "" or "/" the root)
 *   GET    /v1/volumes/:name/files?path=P                → the file's bytes, streamed (Content-Length set)
 *   PUT    /v1/volumes/:name/files?path=P&overwrite=0|1&mode=644 → 201 { path, size } (body: the bytes; parents made; 409 when it exists
 *                                                         without overwrite; mode: octal permission bits, 0644 when left out)
 *   DELETE /v1/volumes/:name/files?path=P&recursive=0|1  → { path, removed: true } (a folder needs recursive=1)
 *   POST   /v1/volumes/:name/copy   {src_paths, dst_path, recursive?} → { copied: string[] } (Modal's copy_files: into dst when it is a
 *                                                         folder or ends with "/"; a folder source needs recursive: true, as cp -r)
 *
 * Code in a function's container reaches the volumes its function mounts, and only those:
 * GET /v1/volumes/:name, commit, entries and files (reading), and PUT/DELETE files and copy when
 * the mount is read-write (VOLUME_CONTAINER_ROUTES). Anything else answers 403.
 */
import { z } from "zod";

export const VOLUME_LIMITS = {
  /** Characters of a volume's name. */
  nameLength: 63,
  /** Characters of a path inside a volume. */
  pathLength: 4096,
  /** Volumes one function mounts. */
  mountsPerFunction: 16,
  /** Entries one listing returns (a recursive listing of more is refused, naming the limit). */
  entriesPerListing: 100_000,
} as const;

/** Why `mode` cannot be a file's mode (permission bits only: no setuid, setgid or sticky bit), or null. */
export function fileModeProblem(mode: unknown): string | null {
  if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) return `a file mode is permission bits such as 0o644, got ${JSON.stringify(mode)}`;
  if (mode > 0o777) return `file mode 0o${mode.toString(8)} sets setuid, setgid or the sticky bit, which volumes refuse: give permission bits up to 0o777`;
  return null;
}

/** Seconds an ephemeral volume lives past its last heartbeat (its owner heartbeats every EPHEMERAL_TTL_S / 4). */
export const EPHEMERAL_TTL_S = 300;

const NAME = /^[A-Za-z0-9._-]+$/;

/** Why `name` cannot name a volume, or null when it can: letters, digits, - . _, under 64 characters. */
export function volumeNameProblem(name: unknown): string | null {
  if (typeof name !== "string" || !name) return `a volume name must be a non-empty string, got ${JSON.stringify(name)?.slice(0, 80)}`;
  if (name.length > VOLUME_LIMITS.nameLength) return `volume name ${JSON.stringify(name.slice(0, 40))}… is ${name.length} characters; at most ${VOLUME_LIMITS.nameLength} are allowed`;
  if (!NAME.test(name) || name === "." || name === "..") {
    return `${JSON.stringify(name.slice(0, 80))} is not a volume name: use letters, digits, -, . and _ (not "." or "..")`;
  }
  return null;
}

/** Mount points gantry's own files use, or the system's: a volume cannot go there. */
export const RESERVED_MOUNT_POINTS = ["/run/gantry", "/opt/gantry", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64"];

/** Why `path` cannot be a mount point, or null when it can: absolute, normalised, not / nor a reserved folder. */
export function mountPathProblem(path: unknown): string | null {
  if (typeof path !== "string" || !path.startsWith("/")) return `a volume's mount point must be an absolute path, got ${JSON.stringify(path)?.slice(0, 80)}`;
  if (path === "/") return `a volume cannot be mounted at /`;
  if (path.length > 512 || path.includes("\0") || path.endsWith("/") || path.split("/").slice(1).some((p) => p === "" || p === "." || p === "..")) {
    return `mount point ${JSON.stringify(path.slice(0, 80))} must be a plain absolute path: no //, . or .. parts, no trailing /`;
  }
  const reserved = RESERVED_MOUNT_POINTS.find((r) => path === r || path.startsWith(`${r}/`));
  if (reserved) return `a volume cannot be mounted at ${path}: ${reserved} is ${reserved.startsWith("/run/gantry") || reserved.startsWith("/opt/gantry") ? "gantry's own" : "the system's"}`;
  return null;
}

/** Why these mount points cannot go together (one inside another), or null. */
export function overlappingMounts(paths: readonly string[]): string | null {
  for (const a of paths) {
    for (const b of paths) {
      if (a !== b && b.startsWith(`${a}/`)) return `volume mount points ${a} and ${b} overlap: one is inside the other`;
    }
  }
  return null;
}

/**
 * A path inside a volume as the API takes it, split into its parts ([] for the root). Refuses
 * what could leave the volume: an absolute path is taken relative to the root (as Modal does), but
 * `..`, NUL and over-long paths are refused, naming the path.
 */
export function volumePathParts(path: unknown): string[] {
  if (typeof path !== "string") throw new Error(`a path inside a volume must be a string, got ${JSON.stringify(path)?.slice(0, 80)}`);
  if (path.length > VOLUME_LIMITS.pathLength) throw new Error(`path ${JSON.stringify(path.slice(0, 60))}… is ${path.length} characters; at most ${VOLUME_LIMITS.pathLength} are allowed`);
  if (path.includes("\0")) throw new Error(`path ${JSON.stringify(path.slice(0, 80))} contains a NUL character`);
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`path ${JSON.stringify(path.slice(0, 80))} has a .. part: paths stay inside their volume`);
  return parts;
}

/** One volume mounted by a function, as its spec keeps it. */
export const volumeMountSchema = z
  .object({
    path: z.string().superRefine((p, ctx) => {
      const problem = mountPathProblem(p);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
    name: z.string().superRefine((n, ctx) => {
      const problem = volumeNameProblem(n);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
    readOnly: z.boolean().optional(),
    /** Created at deploy when it does not exist (`Volume.from_name(name, create_if_missing=True)`). */
    createIfMissing: z.boolean().optional(),
  })
  .strict();
export type VolumeMount = z.infer<typeof volumeMountSchema>;

export const volumeMountsSchema = z
  .array(volumeMountSchema)
  .max(VOLUME_LIMITS.mountsPerFunction, `a function mounts at most ${VOLUME_LIMITS.mountsPerFunction} volumes`)
  .superRefine((mounts, ctx) => {
    const problem = overlappingMounts(mounts.map((m) => m.path));
    if (problem) ctx.addIssue({ code: "custom", message: problem });
    if (new Set(mounts.map((m) => m.path)).size !== mounts.length) ctx.addIssue({ code: "custom", message: "two volumes are mounted at the same path" });
  });

export interface VolumeView {
  name: string;
  created_at: string;
  /** Bytes of its files (as `du` counts file sizes), and how many files and folders it holds. */
  size_bytes: number;
  files: number;
  /** Deployed functions that mount it, as "app.function". */
  mounted_by: string[];
  /** An ephemeral volume (Volume.ephemeral()): removed once its owner stops heartbeating. */
  ephemeral: boolean;
  /** When an ephemeral volume goes unless a heartbeat comes; null for named ones. */
  expires_at: string | null;
}

export interface VolumeEntry {
  /** Relative to the volume's root, "/"-separated. */
  path: string;
  type: "file" | "directory" | "symlink";
  size: number;
  /** Seconds since the epoch, as Modal's FileEntry.mtime. */
  mtime: number;
}
