import { resolveVariant, VariantError, variantOptionsSchema, type ParamValue, type VariantOptions } from "../protocol/cls-variant.js";
import { formatZodError } from "../protocol/function-spec.js";
import {
  CALL_ID_PATTERN,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  idempotencyKeyProblem,
  pickledResultMessage,
  type CallItemsView,
  type CallOutcome,
  type CallView,
  type FunctionView,
} from "../protocol/api.js";
import {
  CancelledError,
  FunctionTimeoutError,
  InvalidArgumentError,
  NotFoundError,
  OutputExpiredError,
  RemoteError,
  ResultNotJsonError,
  TimeoutError,
} from "./errors.js";
import { CallBatches, outcome, type MapOptions } from "./map.js";
import { Transport, type TransportOptions } from "./transport.js";
import { Dicts } from "./dict.js";
import { Queues } from "./queue.js";
import { Volumes } from "./volume.js";
import { Sandboxes } from "./sandbox.js";

/** Longest single wait the daemon grants; longer waits are made of several requests. */
const MAX_WAIT_PER_REQUEST_S = 50;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** A spawned call, by ID: `await call.get({ timeoutMs })`. */
export class FunctionCall<R = unknown> {
  constructor(
    private readonly transport: Transport,
    readonly callId: string,
    /** True when a spawn with an idempotency key got back the call an earlier spawn with that key made. */
    readonly replayed = false,
  ) {}

  /** The call's current record (status, attempt, times), without waiting. */
  status(): Promise<CallView> {
    return this.transport.json<CallView>("GET", `/v1/calls/${encodeURIComponent(this.callId)}`);
  }

  /**
   * Waits for the result. `timeoutMs: 0` polls once; no timeout waits as long as it takes.
   * Throws TimeoutError while pending, OutputExpiredError after expiry, RemoteError (or
   * FunctionTimeoutError) when the function failed, CancelledError when cancelled.
   */
  async get(opts: { timeoutMs?: number } = {}): Promise<R> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + Math.max(0, opts.timeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      const wait = Math.max(0, Math.min(MAX_WAIT_PER_REQUEST_S, left / 1000));
      const view = await this.transport.json<CallView>(
        "GET",
        `/v1/calls/${encodeURIComponent(this.callId)}?wait=${wait.toFixed(3)}`,
      );
      if (TERMINAL.has(view.status)) return settle<R>(view);
      if (Date.now() >= deadline) {
        const waited = opts.timeoutMs ?? 0;
        throw new TimeoutError(`call ${this.callId} is still ${view.status} after waiting ${waited} ms`);
      }
    }
  }

  async cancel(): Promise<void> {
    await this.transport.json("POST", `/v1/calls/${encodeURIComponent(this.callId)}/cancel`);
  }
}

/** A finished call's result, or the error it ended with. */
export function settle<R>(view: CallOutcome): R {
  if (view.status === "succeeded") {
    if (view.expired) throw new OutputExpiredError(`the result of call ${view.call_id} expired at ${view.expires_at}`);
    if (view.result_pickle !== undefined) throw new ResultNotJsonError(pickledResultMessage(view.call_id));
    return view.result as R;
  }
  if (view.status === "cancelled") throw new CancelledError(`call ${view.call_id} was cancelled`);
  const e = view.error ?? { type: "Error", message: "the call failed", traceback: "" };
  if (e.type === "FunctionTimeoutError") throw new FunctionTimeoutError(e.message, e.traceback);
  throw new RemoteError(e.type, e.message, e.traceback);
}

/** Options of the calls a Function makes (`fn.withOptions({...})`): every argument of spawn goes to the function. */
export interface CallOptions {
  /**
   * Makes spawn (and remote) idempotent: the first spawn with this key makes the call; any other
   * within 24 h, for the same function, returns that call (its `replayed` is true) and queues
   * nothing. 1–255 printable ASCII characters.
   */
  idempotencyKey?: string;
  /** A class's method (set by `cls.instance().method(name)`): each call names it, with the instance's parameters and options. */
  target?: ClassTarget;
}

/** What a class's call names beside its arguments: the method, the instance's parameter set, the class's options. */
export interface ClassTarget {
  method: string;
  params?: Record<string, ParamValue>;
  options?: VariantOptions;
}

/** A deployed function, found by app and name. */
export class Function_<A extends unknown[] = unknown[], R = unknown> {
  constructor(
    private readonly transport: Transport,
    readonly appName: string,
    readonly functionName: string,
    readonly info: FunctionView,
    readonly options: Readonly<CallOptions> = {},
  ) {}

  /**
   * The same function whose calls take these options (over this one's), e.g.
   * `fn.withOptions({ idempotencyKey: "order-42" }).spawn(order)`.
   */
  withOptions(options: CallOptions): Function_<A, R> {
    const key = options.idempotencyKey;
    if (key !== undefined) {
      const problem = typeof key === "string" ? idempotencyKeyProblem(key) : `idempotencyKey must be a string, got ${typeof key}`;
      if (problem) throw new InvalidArgumentError(problem);
    }
    return new Function_<A, R>(this.transport, this.appName, this.functionName, this.info, { ...this.options, ...options });
  }

  /** Queues a call; resolves once the call is durable, with its ID. */
  async spawn(...args: A): Promise<FunctionCall<R>> {
    if (this.isGenerator()) throw new InvalidArgumentError(`${this.appName}.${this.functionName} is a generator function: call it with remoteGen`);
    const key = this.options.idempotencyKey;
    const res = await this.transport.exchange<{ call_id: string }>(
      "POST",
      `/v1/apps/${encodeURIComponent(this.appName)}/functions/${encodeURIComponent(this.functionName)}/calls`,
      this.body(args),
      key === undefined ? {} : { [IDEMPOTENCY_KEY_HEADER]: key },
    );
    const replayed = res.headers[IDEMPOTENT_REPLAYED_HEADER.toLowerCase()] === "true";
    return new FunctionCall<R>(this.transport, res.body.call_id, replayed);
  }

  /** A web endpoint's URL (on the daemon's web port, another origin than its API), or undefined for a plain function. */
  async getWebUrl(): Promise<string | undefined> {
    return this.info.web_url ?? undefined;
  }

  /** Spawns and waits for the result. */
  async remote(...args: A): Promise<R> {
    return (await this.spawn(...args)).get();
  }

  /**
   * Runs a generator function (`async function*` or a Python generator) and yields its items as
   * they are yielded remotely: `for await (const item of fn.remoteGen(args))`. A failure mid-stream
   * throws after the items before it.
   */
  async *remoteGen(...args: A): AsyncGenerator<R> {
    if (!this.isGenerator()) throw new InvalidArgumentError(`${this.appName}.${this.functionName} is not a generator function: call it with remote, spawn or map`);
    if (this.options.idempotencyKey !== undefined) throw new InvalidArgumentError(`an idempotency key names one call: use spawn or remote, not remoteGen`);
    const { call_id: id } = await this.transport.json<{ call_id: string }>("POST", `${this.path()}/calls`, this.body(args));
    for (let from = 0; ; ) {
      const page = await this.transport.json<CallItemsView>("GET", `/v1/calls/${encodeURIComponent(id)}/items?from=${from}&wait=${MAX_WAIT_PER_REQUEST_S}`);
      for (const item of page.items) {
        if (item.pickled !== undefined) throw new ResultNotJsonError(pickledResultMessage(id));
        yield item.value as R;
      }
      from = page.next;
      if (!page.done) continue;
      if (page.expired) throw new OutputExpiredError(`the items of call ${id} expired`);
      if (page.status !== "succeeded") settle({ call_id: id, status: page.status, attempt: 0, expired: false, ...(page.error ? { error: page.error } : {}) });
      return;
    }
  }

  private isGenerator(): boolean {
    const m = this.options.target?.method;
    return m === undefined ? this.info.generator : (this.info.generator_methods ?? []).includes(m);
  }

  private body(args: unknown[]): { args: unknown[] } & Partial<ClassTarget> {
    return { args, ...this.options.target };
  }

  private path(): string {
    return `/v1/apps/${encodeURIComponent(this.appName)}/functions/${encodeURIComponent(this.functionName)}`;
  }

  private batches(): CallBatches {
    if (this.isGenerator()) throw new InvalidArgumentError(`${this.appName}.${this.functionName} is a generator function: call it with remoteGen`);
    if (this.options.idempotencyKey !== undefined) {
      throw new InvalidArgumentError(`an idempotency key names one call: use spawn or remote, not map or spawnMap, on ${this.appName}.${this.functionName}`);
    }
    return new CallBatches(this.transport, this.path(), this.options.target);
  }

  /**
   * Calls the function once per input (the input is its one argument) and yields the results in
   * input order: `for await (const r of fn.map(inputs))`. Throws the first failure, or yields it
   * in its place with `returnExceptions`. Memory stays bounded for any number of inputs.
   */
  async *map(inputs: Iterable<A[0]> | AsyncIterable<A[0]>, opts: MapOptions = {}): AsyncGenerator<R> {
    for await (const line of this.batches().views(inputs, opts.window)) {
      const o = outcome<R>(line, settle);
      if (o.ok) yield o.value;
      else if (opts.returnExceptions) yield o.error as R;
      else throw o.error;
    }
  }

  /** Queues a call per input (its one argument); resolves once they are all durable, with the calls in input order. */
  async spawnMap(inputs: Iterable<A[0]> | AsyncIterable<A[0]>): Promise<FunctionCall<R>[]> {
    return (await this.batches().spawnMap(inputs)).map((id) => new FunctionCall<R>(this.transport, id));
  }
}

/** A deployed class, found by app and name (Modal JS SDK's `Cls`). */
export class Cls {
  constructor(
    private readonly transport: Transport,
    readonly appName: string,
    readonly className: string,
    readonly info: FunctionView,
    private readonly options: VariantOptions = {},
  ) {}

  /** The class's methods. */
  get methods(): string[] {
    return this.info.methods ?? [];
  }

  /**
   * An instance for a parameter set (`instance({ size: 2 })`, bytes as a Uint8Array): its methods
   * share one pool of containers, the parameter set's own. Missing, unknown or mistyped parameters throw.
   */
  async instance(params: Record<string, unknown> = {}): Promise<ClsInstance> {
    const encoded = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v instanceof Uint8Array ? { bytes: Buffer.from(v).toString("base64") } : v]));
    try {
      resolveVariant(`${this.appName}.${this.className}`, this.info.params ?? [], encoded, this.options);
    } catch (err) {
      if (err instanceof VariantError) throw new InvalidArgumentError(err.message);
      throw err;
    }
    return new ClsInstance(this, encoded as Record<string, ParamValue>);
  }

  /** The same class in a pool of its own with these options (Modal JS SDK's `withOptions`): gpu, cpu, memory, timeout, retries, maxContainers, … */
  withOptions(options: VariantOptions): Cls {
    const parsed = variantOptionsSchema.safeParse(options);
    if (!parsed.success) throw new InvalidArgumentError(`${this.className}.withOptions: ${formatZodError(parsed.error)}`);
    return new Cls(this.transport, this.appName, this.className, this.info, { ...this.options, ...parsed.data });
  }

  /** The same class in a pool whose containers take up to `maxInputs` calls at once. */
  withConcurrency({ maxInputs }: { maxInputs: number }): Cls {
    return this.withOptions({ maxInputs });
  }

  /** @internal */
  functionFor<A extends unknown[], R>(method: string, params: Record<string, ParamValue>): Function_<A, R> {
    if (!this.methods.includes(method)) {
      throw new InvalidArgumentError(`class ${this.appName}.${this.className} has no method ${JSON.stringify(method)} (its methods: ${this.methods.join(", ")})`);
    }
    const variant = Object.keys(params).length || Object.keys(this.options).length ? { params, options: this.options } : {};
    return new Function_<A, R>(this.transport, this.appName, this.className, this.info, { target: { method, ...variant } });
  }
}

/** An instance of a deployed class: `instance.method("predict").remote(x)`. */
export class ClsInstance {
  constructor(
    private readonly cls: Cls,
    private readonly params: Record<string, ParamValue>,
  ) {}

  method<A extends unknown[] = unknown[], R = unknown>(name: string): Function_<A, R> {
    return this.cls.functionFor<A, R>(name, this.params);
  }
}

export interface GantryClientOptions extends TransportOptions {}

/**
 * Client for a gantry daemon, shaped like Modal's JS SDK:
 * `client.functions.fromName(app, fn)`, `fn.spawn(x)`, `client.functionCalls.fromId(id).get()`.
 */
export class GantryClient {
  readonly transport: Transport;

  readonly functions = {
    fromName: async <A extends unknown[] = unknown[], R = unknown>(app: string, name: string): Promise<Function_<A, R>> => {
      const info = await this.transport.json<FunctionView>(
        "GET",
        `/v1/apps/${encodeURIComponent(app)}/functions/${encodeURIComponent(name)}`,
      );
      return new Function_<A, R>(this.transport, app, name, info);
    },
  };

  /** Classes (Python's @app.cls): `(await client.cls.fromName(app, "Model")).instance()` then `.method("predict").remote(x)`. */
  readonly cls = {
    fromName: async (app: string, name: string): Promise<Cls> => {
      const info = await this.transport.json<FunctionView>("GET", `/v1/apps/${encodeURIComponent(app)}/functions/${encodeURIComponent(name)}`);
      if (!info.methods) throw new NotFoundError(`${app}.${name} is a function, not a class: use client.functions.fromName`);
      return new Cls(this.transport, app, name, info);
    },
  };

  readonly functionCalls = {
    fromId: async <R = unknown>(callId: string): Promise<FunctionCall<R>> => {
      if (!CALL_ID_PATTERN.test(callId)) {
        throw new InvalidArgumentError(`${JSON.stringify(callId)} is not a call ID (expected fc- and 26 letters or digits)`);
      }
      return new FunctionCall<R>(this.transport, callId);
    },
  };

  /**
   * Volumes: `await client.volumes.fromName("data", { createIfMissing: true })` then
   * `vol.putFile(path, bytes)`, `vol.readFile(path)`, `vol.listdir("/")`; `client.volumes.ephemeral()`.
   */
  readonly volumes: Volumes;

  /**
   * Dicts: `const d = await client.dicts.fromName("cache", { createIfMissing: true })` then
   * `d.put(key, value)`, `d.get(key)`, `d.items()`; `client.dicts.ephemeral()`, `list()`, `delete(name)`.
   */
  readonly dicts: Dicts;

  /**
   * Queues: `const q = await client.queues.fromName("jobs", { createIfMissing: true })` then
   * `q.put(x)`, `q.get({ timeoutMs })`, `q.getMany(n)`, `q.iterate()`; `client.queues.ephemeral()`, `list()`, `delete(name)`.
   */
  readonly queues: Queues;

  /**
   * Sandboxes: `const sb = await client.sandboxes.create({ app: "my-app", command: ["sleep", "60"] })` then
   * `sb.exec(["ls"])`, `sb.stdout.readText()`, `sb.wait()`, `sb.terminate()`; `fromId(id)`, `list({ app, tags })`.
   */
  readonly sandboxes: Sandboxes;

  constructor(opts: GantryClientOptions = {}) {
    this.transport = new Transport(opts);
    this.volumes = new Volumes(this.transport);
    this.dicts = new Dicts(this.transport);
    this.queues = new Queues(this.transport);
    this.sandboxes = new Sandboxes(this.transport);
  }

  /** Closes its connections; ephemeral volumes, dicts and queues stop heartbeating (the daemon removes them after their EPHEMERAL_TTL_S). */
  close(): void {
    this.volumes.stopHeartbeats();
    this.dicts.stopHeartbeats();
    this.queues.stopHeartbeats();
    this.transport.close();
  }
}
