/**
 * Sandboxes (issue 24): containers started on demand from a program (Modal's `Sandbox.create`),
 * running a command (or nothing: kept alive until their timeout) with commands exec'd into them,
 * stdio streamed, files read and written. The daemon runs them with the function containers'
 * hardening and records them in SQLite. What a request may hold is checked here once, for the SDKs
 * and CLI (early) and the daemon (authoritative).
 *
 * A "process" is a sandbox's main command (`main`) or one exec (`ex-…`). Each has stdout and
 * stderr (kept by the daemon on disk, up to SANDBOX_LIMITS.outputBytes per stream: past that the
 * stream says so in one line and the rest is dropped) and stdin.
 *
 * Routes (JSON unless said; `:id` is `sb-…`, `:proc` is `main` or `ex-…`):
 *   POST   /v1/sandboxes            SandboxCreate        → 201 SandboxView (state "pending": the image is built
 *                                                          and the container started in the background; wait for
 *                                                          "running", or a "failed" state with its `error`)
 *   GET    /v1/sandboxes?app=A&tag=K=V&tag=…&state=running|finished&limit=N
 *                                                        → { sandboxes: SandboxView[] } (newest first; every tag must match)
 *   GET    /v1/sandboxes/:id?wait=S                      → SandboxView; with wait (seconds, at most MAX_WAIT_S) the answer
 *                                                          comes once the sandbox has ended or S have passed (state says which),
 *                                                          or once it is running when &until=running
 *   POST   /v1/sandboxes/:id/terminate                   → SandboxView (ended: returncode 137; at once for one ended already)
 *   PUT    /v1/sandboxes/:id/tags   {tags}               → SandboxView (replaces the tags)
 *   POST   /v1/sandboxes/:id/exec   SandboxExec          → 201 ProcessView (409 unless the sandbox is running)
 *   GET    /v1/sandboxes/:id/procs/:proc?wait=S          → ProcessView (as for the sandbox: answered once it ended or after S)
 *   GET    /v1/sandboxes/:id/procs/:proc/stdout?offset=N&follow=0|1
 *   GET    /v1/sandboxes/:id/procs/:proc/stderr?offset=N&follow=0|1
 *                                                        → application/octet-stream: the stream's bytes from offset N (default 0);
 *                                                          with follow=1 the answer goes on as the process writes and ends when
 *                                                          the stream is closed (the process ended); header x-gantry-closed: 1|0
 *                                                          says whether the stream was already closed when answered
 *   POST   /v1/sandboxes/:id/procs/:proc/stdin?eof=0|1   body: application/octet-stream bytes (at most SANDBOX_LIMITS.stdinBytes)
 *                                                        → { written } (eof=1 closes stdin after the bytes; later writes: 409)
 *   GET    /v1/sandboxes/:id/files?path=P                → the file's bytes (404 missing, 403 not allowed, 400 a folder)
 *   PUT    /v1/sandboxes/:id/files?path=P&append=0|1     body: bytes → 201 { path, size } (made or replaced, as the sandbox's user)
 *   DELETE /v1/sandboxes/:id/files?path=P&recursive=0|1  → { path, removed: true }
 *   GET    /v1/sandboxes/:id/entries?path=P              → { entries: SandboxEntry[] } (a folder's entries, as `ls`)
 *   POST   /v1/sandboxes/:id/mkdir  {path, parents?}     → 201 { path }
 *   WS     /v1/sandboxes/:id/procs/:proc/attach          a process made with pty: binary frames are the terminal's bytes both
 *                                                        ways; a text frame {"type":"resize","cols":C,"rows":R} resizes it;
 *                                                        the daemon closes with code 1000 and reason "exit N" when it ends
 *
 * A file route's error carries `errno` beside code and message (ENOENT, EACCES, EISDIR, ENOTDIR,
 * EEXIST, ENOSPC, EIO), for clients to raise what a local open() would.
 *
 * File operations run as the sandbox's own user inside it (through an exec of sh and coreutils),
 * so they can do nothing the sandbox's code could not. Paths must be absolute.
 *
 * Code in a function's container reaches these routes (but the terminal's) for its own app's
 * sandboxes only; it may not give them secrets or a function's image, and may mount only the
 * volumes its function mounts, no wider.
 *
 * Exit codes (Modal's): a process's own code; 124 when its timeout (or the sandbox's, or its idle
 * timeout) ended it; 137 when it was terminated (terminate(), a daemon restart, an app stop).
 */
import { z } from "zod";
import { assetSchema } from "./function-spec.js";
import { imageSpecSchema } from "./image-spec.js";
import { volumeMountsSchema } from "./volumes.js";

export const SANDBOX_LIMITS = {
  /** Seconds a sandbox may live (Modal's default 300; at most 24 h). */
  timeoutSeconds: { min: 1, max: 24 * 3600 },
  /** Bytes kept of one process's stdout (and, apart, of its stderr). */
  outputBytes: 64 * 1024 * 1024,
  /** Bytes one stdin write may carry. */
  stdinBytes: 8 * 1024 * 1024,
  /** Bytes of a command line (Modal's ARG_MAX_BYTES). */
  commandBytes: 65_536,
  /** Execs one sandbox runs at once. */
  runningExecs: 32,
  /** Execs one sandbox keeps (their output too): older ended ones are forgotten past this. */
  keptExecs: 256,
  /** Sandboxes running at once on this daemon (GANTRY_MAX_SANDBOXES changes it). */
  runningSandboxes: 100,
  /** Tags on one sandbox; characters of a tag's name and value. */
  tags: 20,
  tagLength: 256,
  /** Bytes of a file read or written at once through the files routes. */
  fileBytes: 256 * 1024 * 1024,
} as const;

/** The longest one `?wait=` holds an answer; clients wait again for longer. */
export const MAX_WAIT_S = 50;

/** Modal's exit codes for a sandbox or exec its timeout ended, and for one terminated. */
export const TIMEOUT_EXIT_CODE = 124;
export const TERMINATED_EXIT_CODE = 137;

export const SANDBOX_ID_PATTERN = /^sb-[0-9a-z]{18}$/;
export const EXEC_ID_PATTERN = /^ex-[0-9a-z]{18}$/;

const absolutePath = (what: string) =>
  z.string().min(1).max(4096).regex(/^\/[^\0\n\r]*$/, `${what} must be an absolute path (start with /)`);
const envSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _"),
  z.string().max(65_536).regex(/^[^\0]*$/, "env values may not contain NUL"),
);
const commandSchema = z
  .array(z.string().max(SANDBOX_LIMITS.commandBytes).regex(/^[^\0]*$/, "command arguments may not contain NUL"))
  .max(4096)
  .refine((c) => c.reduce((n, a) => n + Buffer.byteLength(a), 0) <= SANDBOX_LIMITS.commandBytes, `a command's arguments may total at most ${SANDBOX_LIMITS.commandBytes} bytes`);
const tagsSchema = z
  .record(z.string().min(1).max(SANDBOX_LIMITS.tagLength), z.string().max(SANDBOX_LIMITS.tagLength))
  .refine((t) => Object.keys(t).length <= SANDBOX_LIMITS.tags, `a sandbox has at most ${SANDBOX_LIMITS.tags} tags`);

export const sandboxCreateSchema = z
  .object({
    /**
     * The app it belongs to (an app name; it need not be deployed: Modal's App.lookup(create_if_missing=True)).
     * Required from the host; from a function's container it is that function's app (left out, or the same).
     */
    app: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "app names are letters, digits, _ and -, at most 64 characters").optional(),
    /** Which runtime layer the image gets (the SDK's language; only matters for what the image holds). */
    runtime: z.enum(["node", "python"]).default("python"),
    /** The image to build (as functions'); left out: the runtime's base image with nothing added. */
    image: imageSpecSchema.optional(),
    /** Instead of `image`: the image (and volumes, secrets, env) of a deployed function (`gantry shell APP::FUNCTION`). */
    from_function: z.object({ app: z.string().min(1).max(64), function: z.string().min(1).max(128) }).strict().optional(),
    /** The files `image`'s local steps name, by content hash (as a deploy's). */
    assets: z.record(z.string().regex(/^[0-9a-f]{64}$/, "an asset is named by its 64-hex-digit hash"), assetSchema).optional(),
    /** The main command; empty or left out: the sandbox just stays up (until its timeout or terminate). */
    command: commandSchema.optional(),
    /** Seconds it may run, counted from its start (building its image or waiting for a GPU is not counted). */
    timeout: z.number().int().min(SANDBOX_LIMITS.timeoutSeconds.min).max(SANDBOX_LIMITS.timeoutSeconds.max).default(300),
    /** Ended after this many seconds with no exec running, no stdin written and no file touched. */
    idle_timeout: z.number().int().min(1).max(SANDBOX_LIMITS.timeoutSeconds.max).optional(),
    workdir: absolutePath("workdir").optional(),
    env: envSchema.optional(),
    secrets: z.array(z.string().min(1).max(128)).max(20).optional(),
    volumes: volumeMountsSchema.optional(),
    cpu: z.number().positive().max(1024).optional(),
    /** MiB. */
    memory: z.number().int().min(6).max(4 * 1024 * 1024).optional(),
    gpu: z.string().regex(/^(any|[A-Za-z0-9-]+)(:[1-8])?$/, 'gpu must look like "any", "A100" or "H100:2"').optional(),
    /** No network at all (only loopback). Left false: Docker's default bridge network (outbound access, no inbound). */
    block_network: z.boolean().default(false),
    tags: tagsSchema.optional(),
    /** Unique among the app's running sandboxes. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "a sandbox name is letters, digits, . _ and -, at most 64 characters").optional(),
    /** The main command gets a terminal (attach over WebSocket). */
    pty: z.boolean().default(false),
  })
  .strict()
  .refine((c) => !(c.image && c.from_function), "give image or from_function, not both");
export type SandboxCreate = z.input<typeof sandboxCreateSchema>;
export type SandboxCreateParsed = z.output<typeof sandboxCreateSchema>;

export const sandboxExecSchema = z
  .object({
    command: commandSchema.refine((c) => c.length > 0, "exec needs a command"),
    workdir: absolutePath("workdir").optional(),
    /** Seconds; the exec ends with 124 past it. */
    timeout: z.number().int().min(1).max(SANDBOX_LIMITS.timeoutSeconds.max).optional(),
    env: envSchema.optional(),
    secrets: z.array(z.string().min(1).max(128)).max(20).optional(),
    pty: z.boolean().default(false),
  })
  .strict();
export type SandboxExec = z.input<typeof sandboxExecSchema>;

export const sandboxTagsSchema = z.object({ tags: tagsSchema }).strict();

export { ENDED_STATES, type ProcessView, type SandboxEntry, type SandboxState, type SandboxView } from "./sandbox-views.js";
