/**
 * Sandboxes (issue 24; the contract is protocol/sandboxes.ts), shaped like Modal's JS SDK:
 * `const sb = await client.sandboxes.create({ app: "my-app", command: ["python3", "-c", "print(1)"] })`,
 * `await sb.stdout.readText()`, `await sb.wait()` (the exit code), `const p = await sb.exec(["cat"])`,
 * `await p.stdin.writeText("hi"); await p.stdin.close()`, `await sb.terminate()`,
 * `client.sandboxes.fromId(id)`, `for await (const sb of client.sandboxes.list({ app }))`.
 */
import type { ZodType } from "zod";
import { packImages } from "../cli/image-assets.js";
import { formatZodError } from "../protocol/function-spec.js";
import {
  ENDED_STATES,
  EXEC_ID_PATTERN,
  MAX_WAIT_S,
  SANDBOX_ID_PATTERN,
  sandboxCreateSchema,
  sandboxExecSchema,
  sandboxTagsSchema,
  type ProcessView,
  type SandboxCreate,
  type SandboxEntry,
  type SandboxExec,
  type SandboxView,
} from "../protocol/sandboxes.js";
import { GantryError, InvalidArgumentError, NotFoundError } from "./errors.js";
import type { Image } from "./image.js";
import { SandboxReadStream, SandboxWriteStream } from "./sandbox-streams.js";
import type { Secret } from "./secret.js";
import type { Transport } from "./transport.js";
import { readAll } from "./volume.js";
import { volumeMounts, type Volume } from "./volume.js";

export type { ProcessView, SandboxEntry, SandboxState, SandboxView } from "../protocol/sandboxes.js";

/** A sandbox that never started: its image did not build, a secret or volume is missing… (the daemon's words). */
export class SandboxCreateError extends GantryError {
  constructor(
    message: string,
    readonly sandboxId: string,
  ) {
    super(message, "sandbox_failed");
  }
}

/** What `client.sandboxes.create` takes. Times are seconds (Modal's `timeoutMs`/`idleTimeoutMs`, whole seconds, are taken too). */
export interface SandboxCreateParams {
  /** The app it belongs to, by name (it need not be deployed), or an App. */
  app: string | { name: string };
  /** The image (Image.node()…, Image.fromRegistry(…)); left out: gantry's Node.js base image. */
  image?: Image;
  /** Instead of `image`: the image, volumes, secrets and env of a deployed function. */
  fromFunction?: { app: string; function: string };
  /** The main command; left out: the sandbox stays up until its timeout or terminate(). */
  command?: string[];
  /** Seconds it may live (default 300, at most 24 h); past it, it ends with 124. */
  timeout?: number;
  timeoutMs?: number;
  /** Seconds with no exec running, no stdin written and no file touched before it ends (124). */
  idleTimeout?: number;
  idleTimeoutMs?: number;
  workdir?: string;
  env?: Record<string, string>;
  /** Secrets (Secret.fromName("x"), or the name) whose keys become environment variables. */
  secrets?: Array<Secret | string>;
  /** Volumes by mount point: `{ "/data": Volume.fromName("data") }`. */
  volumes?: Record<string, Volume>;
  cpu?: number;
  /** MiB (Modal's `memoryMiB` is taken too). */
  memory?: number;
  memoryMiB?: number;
  /** "any", "A100", "H100:2". */
  gpu?: string;
  /** No network at all (loopback only). */
  blockNetwork?: boolean;
  tags?: Record<string, string>;
  /** Unique among the app's running sandboxes. */
  name?: string;
  /** The main command gets a terminal (attach with `gantry sandbox exec -t` or the WebSocket route). */
  pty?: boolean;
}

/** What `sb.exec` takes. `timeout` is seconds (Modal's `timeoutMs`, whole seconds, too). */
export interface SandboxExecParams {
  workdir?: string;
  timeout?: number;
  timeoutMs?: number;
  env?: Record<string, string>;
  secrets?: Array<Secret | string>;
  pty?: boolean;
}

/** What `client.sandboxes.list` takes: every tag given must match. */
export interface SandboxListParams {
  app?: string;
  /** Modal's name for `app` (an app's ID is its name here). */
  appId?: string;
  tags?: Record<string, string>;
  /** "running" (the default, as Modal's: pending ones too), "finished" (ended ones), or "all". */
  state?: "running" | "finished" | "all";
  limit?: number;
}

const CREATE_KEYS = new Set<string>(["app", "image", "fromFunction", "command", "timeout", "timeoutMs", "idleTimeout", "idleTimeoutMs", "workdir", "env", "secrets", "volumes", "cpu", "memory", "memoryMiB", "gpu", "blockNetwork", "tags", "name", "pty"]);
const EXEC_KEYS = new Set<string>(["workdir", "timeout", "timeoutMs", "env", "secrets", "pty"]);

function unknownKeys(what: string, params: object, known: Set<string>): void {
  const odd = Object.keys(params).filter((k) => !known.has(k) && (params as Record<string, unknown>)[k] !== undefined);
  if (odd.length) throw new InvalidArgumentError(`${what} takes no ${odd.map((k) => JSON.stringify(k)).join(", ")} (it takes ${[...known].join(", ")})`);
}

/** Seconds from `s` or Modal's `ms` (whole seconds), or undefined; both given is refused. */
function seconds(what: string, s: number | undefined, ms: number | undefined): number | undefined {
  if (s !== undefined && ms !== undefined) throw new InvalidArgumentError(`give ${what} (seconds) or ${what}Ms, not both`);
  if (ms === undefined) return s;
  if (typeof ms !== "number" || ms % 1000 !== 0) throw new InvalidArgumentError(`${what}Ms must be a whole number of seconds (a multiple of 1000), got ${ms}`);
  return ms / 1000;
}

function secretNames(list: Array<Secret | string> | undefined): string[] | undefined {
  return list?.map((s) => (typeof s === "string" ? s : s?.name));
}

function parsedOr400(what: string, schema: ZodType, body: unknown): void {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new InvalidArgumentError(`${what}: ${formatZodError(parsed.error)}`);
}

/** The body of POST /v1/sandboxes: checked by the contract, an image's local files packed as a deploy's. */
export function sandboxCreateBody(params: SandboxCreateParams): SandboxCreate {
  if (typeof params !== "object" || params === null) throw new InvalidArgumentError("sandboxes.create takes an object: { app, command, image, … }");
  unknownKeys("sandboxes.create", params, CREATE_KEYS);
  // In a function's container the app defaults to the function's own (the daemon allows no other there).
  const app = typeof params.app === "string" ? params.app : (params.app?.name ?? (process.env.GANTRY_CONTAINER_ID ? process.env.GANTRY_APP : undefined));
  if (typeof app !== "string") throw new InvalidArgumentError("sandboxes.create needs an app: { app: \"my-app\" } (it need not be deployed)");
  if (params.memory !== undefined && params.memoryMiB !== undefined) throw new InvalidArgumentError("give memory or memoryMiB, not both");
  let image: SandboxCreate["image"];
  let assets: SandboxCreate["assets"];
  if (params.image !== undefined) {
    if (typeof (params.image as { toSpec?: unknown })?.toSpec !== "function") throw new InvalidArgumentError("sandboxes.create: image must be an Image (Image.node(), Image.fromRegistry(…))");
    const holder = [{ options: { image: params.image.toSpec() as unknown } }];
    const packed = packImages(holder);
    image = holder[0]!.options.image as SandboxCreate["image"];
    if (Object.keys(packed).length) assets = packed as unknown as SandboxCreate["assets"];
  }
  const body: SandboxCreate = {
    app,
    runtime: "node",
    ...(image ? { image } : {}),
    ...(params.fromFunction ? { from_function: { app: params.fromFunction.app, function: params.fromFunction.function } } : {}),
    ...(params.command !== undefined ? { command: params.command } : {}),
    timeout: seconds("timeout", params.timeout, params.timeoutMs),
    idle_timeout: seconds("idleTimeout", params.idleTimeout, params.idleTimeoutMs),
    workdir: params.workdir,
    env: params.env,
    secrets: secretNames(params.secrets),
    volumes: params.volumes === undefined ? undefined : volumeMounts(params.volumes),
    cpu: params.cpu,
    memory: params.memory ?? params.memoryMiB,
    gpu: params.gpu,
    block_network: params.blockNetwork ?? false,
    tags: params.tags,
    name: params.name,
    pty: params.pty ?? false,
  };
  for (const k of Object.keys(body) as Array<keyof SandboxCreate>) if (body[k] === undefined) delete body[k];
  parsedOr400("sandboxes.create", sandboxCreateSchema, { ...body, assets: undefined }); // assets: checked by the daemon
  return assets ? { ...body, assets } : body;
}

/** The body of POST …/exec, checked by the contract. */
export function sandboxExecBody(command: string[], params: SandboxExecParams = {}): SandboxExec {
  unknownKeys("exec", params, EXEC_KEYS);
  if (!Array.isArray(command)) throw new InvalidArgumentError(`exec takes the command as an array of strings, e.g. ["ls", "-l"], got ${typeof command}`);
  const timeout = seconds("timeout", params.timeout, params.timeoutMs);
  const body: SandboxExec = {
    command,
    ...(params.workdir !== undefined ? { workdir: params.workdir } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    ...(params.env !== undefined ? { env: params.env } : {}),
    ...(params.secrets !== undefined ? { secrets: secretNames(params.secrets)! } : {}),
    pty: params.pty ?? false,
  };
  parsedOr400("exec", sandboxExecSchema, body);
  return body;
}

export function checkedSandboxId(id: string): string {
  if (typeof id !== "string" || !SANDBOX_ID_PATTERN.test(id)) {
    throw new InvalidArgumentError(`${JSON.stringify(id)?.slice(0, 80)} is not a sandbox ID (expected sb- and 18 lowercase letters or digits)`);
  }
  return id;
}

function checkedPath(what: string, path: string): string {
  if (typeof path !== "string" || !path.startsWith("/") || /[\0\n\r]/.test(path)) {
    throw new InvalidArgumentError(`${what} needs an absolute path inside the sandbox (starting with /), got ${JSON.stringify(path)?.slice(0, 200)}`);
  }
  return path;
}

/** A sandbox's main command or one exec: its stdio, `wait()` → exit code, `poll()`. */
export class ContainerProcess {
  readonly stdout: SandboxReadStream;
  readonly stderr: SandboxReadStream;
  readonly stdin: SandboxWriteStream;
  /** Its exit code once known to have ended (wait() or poll() saw it), else null. */
  returncode: number | null = null;

  /** @internal */
  constructor(
    private readonly transport: Transport,
    readonly sandboxId: string,
    /** "main" or "ex-…". */
    readonly execId: string,
  ) {
    const base = `/v1/sandboxes/${sandboxId}/procs/${execId}`;
    const what = execId === "main" ? `sandbox ${sandboxId}'s` : `exec ${execId}'s`;
    this.stdout = new SandboxReadStream(transport, `${base}/stdout`, `${what} stdout`);
    this.stderr = new SandboxReadStream(transport, `${base}/stderr`, `${what} stderr`);
    this.stdin = new SandboxWriteStream(transport, `${base}/stdin`, `${what} stdin`);
  }

  /** The process's record now (running, returncode, bytes written). */
  async info(waitS = 0): Promise<ProcessView> {
    const view = await this.transport.json<ProcessView>("GET", `/v1/sandboxes/${this.sandboxId}/procs/${this.execId}${waitS > 0 ? `?wait=${waitS}` : ""}`);
    if (!view.running) this.returncode = view.returncode;
    return view;
  }

  /** Waits for it to end; its exit code (124: its timeout ended it; 137: terminated). */
  async wait(): Promise<number> {
    for (;;) {
      const view = await this.info(MAX_WAIT_S);
      if (!view.running) return view.returncode ?? -1;
    }
  }

  /** Its exit code if it has ended, else null (asks once). */
  async poll(): Promise<number | null> {
    const view = await this.info();
    return view.running ? null : view.returncode;
  }
}

/** A sandbox: a container started on demand, running a command (or nothing) with commands exec'd into it. */
export class Sandbox {
  readonly stdout: SandboxReadStream;
  readonly stderr: SandboxReadStream;
  readonly stdin: SandboxWriteStream;
  private readonly main: ContainerProcess;
  private last: SandboxView | null;

  /** @internal */
  constructor(
    private readonly transport: Transport,
    readonly sandboxId: string,
    view: SandboxView | null = null,
  ) {
    this.main = new ContainerProcess(transport, sandboxId, "main");
    this.stdout = this.main.stdout;
    this.stderr = this.main.stderr;
    this.stdin = this.main.stdin;
    this.last = view;
  }

  /** Its exit code once known to have ended, else null (Python's `sb.returncode`). */
  get returncode(): number | null {
    return this.last && ENDED_STATES.has(this.last.state) ? this.last.returncode : null;
  }

  /** Its record as last seen (create, list, info, wait, poll); null before any. */
  get lastInfo(): SandboxView | null {
    return this.last;
  }

  private route(rest = ""): string {
    return `/v1/sandboxes/${this.sandboxId}${rest}`;
  }

  /** Its record now (state, returncode, error, tags, times); `query` holds wait= and until=. */
  async info(query = ""): Promise<SandboxView> {
    this.last = await this.transport.json<SandboxView>("GET", this.route(query));
    return this.last;
  }

  /** Waits for it to end; its exit code (124: a timeout ended it; 137: terminated). A sandbox that never started throws SandboxCreateError. */
  async wait(): Promise<number> {
    for (;;) {
      const view = await this.info(`?wait=${MAX_WAIT_S}`);
      if (view.state === "failed") throw new SandboxCreateError(`sandbox ${this.sandboxId} failed to start: ${view.error ?? "no reason given"}`, this.sandboxId);
      if (ENDED_STATES.has(view.state)) return view.returncode ?? -1;
    }
  }

  /** Its exit code if it has ended, else null (asks once). */
  async poll(): Promise<number | null> {
    await this.info();
    return this.returncode;
  }

  /** Ends it (its processes get 137); one already ended is left as it is. */
  async terminate(): Promise<void> {
    this.last = await this.transport.json<SandboxView>("POST", this.route("/terminate"));
  }

  /** Runs a command in it (refused with ConflictError unless it is running); read, write and wait on what comes back. */
  async exec(command: string[], params: SandboxExecParams = {}): Promise<ContainerProcess> {
    const body = sandboxExecBody(command, params);
    const view = await this.transport.json<ProcessView>("POST", this.route("/exec"), body);
    return new ContainerProcess(this.transport, this.sandboxId, view.id);
  }

  /** A process of this sandbox by ID ("main", or an exec's "ex-…"), e.g. to read an exec's output again. */
  process(execId: string): ContainerProcess {
    if (execId !== "main" && !EXEC_ID_PATTERN.test(execId)) throw new InvalidArgumentError(`${JSON.stringify(execId)?.slice(0, 80)} is not an exec ID (expected "main" or ex- and 18 lowercase letters or digits)`);
    return new ContainerProcess(this.transport, this.sandboxId, execId);
  }

  /** Replaces its tags. */
  async setTags(tags: Record<string, string>): Promise<void> {
    parsedOr400("setTags", sandboxTagsSchema, { tags });
    this.last = await this.transport.json<SandboxView>("PUT", this.route("/tags"), { tags });
  }

  async getTags(): Promise<Record<string, string>> {
    return (await this.info()).tags;
  }

  /** A file's bytes (NotFoundError when missing), read as the sandbox's user. */
  async readFile(path: string): Promise<Buffer> {
    const res = await this.transport.request("GET", this.route(`/files?${new URLSearchParams({ path: checkedPath("readFile", path) })}`));
    return readAll(res);
  }

  /** Writes a file (made or replaced; with `append`, added to), as the sandbox's user. */
  async writeFile(path: string, data: string | Uint8Array, opts: { append?: boolean } = {}): Promise<{ path: string; size: number }> {
    const body = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    if (!(body instanceof Uint8Array)) throw new InvalidArgumentError(`writeFile takes a string or bytes, got ${typeof data}`);
    const q = new URLSearchParams({ path: checkedPath("writeFile", path), append: opts.append ? "1" : "0" });
    const res = await this.transport.request("PUT", this.route(`/files?${q}`), { body });
    return JSON.parse((await readAll(res)).toString("utf8")) as { path: string; size: number };
  }

  /** A folder's entries, as `ls`. */
  async ls(path: string): Promise<SandboxEntry[]> {
    return (await this.transport.json<{ entries: SandboxEntry[] }>("GET", this.route(`/entries?${new URLSearchParams({ path: checkedPath("ls", path) })}`))).entries;
  }

  async mkdir(path: string, opts: { parents?: boolean } = {}): Promise<void> {
    await this.transport.json("POST", this.route("/mkdir"), { path: checkedPath("mkdir", path), ...(opts.parents ? { parents: true } : {}) });
  }

  /** Removes a file (a folder with `recursive`). */
  async rm(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const q = new URLSearchParams({ path: checkedPath("rm", path), recursive: opts.recursive ? "1" : "0" });
    await this.transport.json("DELETE", this.route(`/files?${q}`));
  }
}

/** `client.sandboxes`: create, fromId, fromName, list. */
export class Sandboxes {
  constructor(private readonly transport: Transport) {}

  /**
   * Starts a sandbox and resolves once it is running (or already ended: a quick command may be
   * done). One that fails to start throws SandboxCreateError with the daemon's reason; bad
   * options throw InvalidArgumentError before anything is sent.
   */
  async create(params: SandboxCreateParams): Promise<Sandbox> {
    const body = sandboxCreateBody(params);
    let view = await this.transport.json<SandboxView>("POST", "/v1/sandboxes", body);
    while (view.state === "pending") {
      view = await this.transport.json<SandboxView>("GET", `/v1/sandboxes/${view.id}?wait=${MAX_WAIT_S}&until=running`);
    }
    if (view.state === "failed") throw new SandboxCreateError(`sandbox ${view.id} failed to start: ${view.error ?? "no reason given"}`, view.id);
    return new Sandbox(this.transport, view.id, view);
  }

  /** A sandbox by ID, running or ended (NotFoundError for one the daemon does not know). */
  async fromId(sandboxId: string): Promise<Sandbox> {
    const view = await this.info(sandboxId);
    return new Sandbox(this.transport, view.id, view);
  }

  /** The running sandbox of that name in an app (NotFoundError if none). */
  async fromName(app: string, name: string): Promise<Sandbox> {
    const found = (await this.listInfo({ app })).find((v) => v.name === name);
    if (!found) throw new NotFoundError(`no running sandbox named ${JSON.stringify(name)} in app ${app}`);
    return new Sandbox(this.transport, found.id, found);
  }

  /** A sandbox's record by ID. */
  async info(sandboxId: string): Promise<SandboxView> {
    return this.transport.json<SandboxView>("GET", `/v1/sandboxes/${checkedSandboxId(sandboxId)}`);
  }

  /** The records of the sandboxes that match, newest first (one request). */
  async listInfo(params: SandboxListParams = {}): Promise<SandboxView[]> {
    const q = new URLSearchParams();
    const app = params.app ?? params.appId;
    if (app !== undefined) q.set("app", app);
    for (const [k, v] of Object.entries(params.tags ?? {})) q.append("tag", `${k}=${v}`);
    const state = params.state ?? "running";
    if (state !== "all") q.set("state", state);
    if (params.limit !== undefined) {
      if (!Number.isSafeInteger(params.limit) || params.limit < 1) throw new InvalidArgumentError(`limit must be a whole number ≥ 1, got ${params.limit}`);
      q.set("limit", String(params.limit));
    }
    const qs = q.toString();
    return (await this.transport.json<{ sandboxes: SandboxView[] }>("GET", `/v1/sandboxes${qs ? `?${qs}` : ""}`)).sandboxes;
  }

  /**
   * The sandboxes that match (running ones unless `state` says otherwise), newest first, as
   * Modal's: `for await (const sb of client.sandboxes.list({ app: "my-app", tags: { job: "7" } }))`.
   */
  async *list(params: SandboxListParams = {}): AsyncGenerator<Sandbox> {
    for (const view of await this.listInfo(params)) yield new Sandbox(this.transport, view.id, view);
  }
}
