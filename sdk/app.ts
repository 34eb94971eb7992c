import type { ParamType } from "../protocol/cls-params.js";
import type { FunctionOptions } from "../protocol/function-spec.js";
import { appRegistry, type RegisteredApp, type RegisteredFunction } from "../protocol/registry.js";
import { Image } from "./image.js";
import { volumeMounts, type Volume } from "./volume.js";

export type FunctionDefinitionOptions = Omit<FunctionOptions, "image" | "web" | "public" | "volumes"> & {
  image?: Image;
  /** Volumes mounted into its containers, by mount point: `{ "/data": Volume.fromName("data") }`. */
  volumes?: Record<string, Volume>;
};

/** A class parameter (`params: { size: { type: "int", default: 1 } }`): bytes come to the constructor as a Buffer. */
export interface ClsParamOption {
  type: ParamType;
  default?: number | string | boolean | Uint8Array;
}

/** A class's options: a function's, plus its parameters (each distinct set is a pool of its own). */
export type ClsOptions = FunctionDefinitionOptions & { params?: Record<string, ClsParamOption> };

/** A web endpoint's options: a function's, plus `public` and a `name` (for handlers like Hono's `app.fetch`). */
export type WebEndpointOptions = FunctionDefinitionOptions & {
  /** Anyone may call it, even where the daemon asks for its token. */
  public?: boolean;
  /** The endpoint's name (its path is /web/APP/NAME/); default: the handler's name. */
  name?: string;
};

/** A fetch handler, as Hono, Deno and Workers use: a standard Request in, a Response out. */
export type FetchHandler = (req: Request) => Response | Promise<Response>;

/** What `app.function(...)` returns: the handler, still callable locally, plus its definition. */
export type FunctionHandle<A extends unknown[], R> = ((...args: A) => R) & {
  readonly gantryFunction: { app: string; name: string };
};

/** A local entrypoint option's type: what `gantry run` converts the command line's text to (a number for int and float). */
export type EntrypointParamType = "int" | "float" | "str" | "bool";

/** A local entrypoint option: its type and, for an optional one, its default (without one it is required). */
export interface EntrypointParam {
  type: EntrypointParamType;
  default?: number | string | boolean;
}

/** A local entrypoint's options: `{ params: { n: { type: "int", default: 1 }, label: "str" } }` (a bare type is a required option). */
export interface LocalEntrypointOptions<P extends Record<string, EntrypointParamType | EntrypointParam> = Record<string, never>> {
  /** Its name, for `gantry run FILE::NAME`; default: the handler's name, else "main". */
  name?: string;
  params?: P;
  /** What `gantry run FILE --help` says it does. */
  description?: string;
}

type EntrypointValue<T> = T extends "int" | "float" ? number : T extends "str" ? string : T extends "bool" ? boolean : never;

/** The object a local entrypoint gets: each declared option, converted, its default filled in. */
export type EntrypointArgs<P> = {
  -readonly [K in keyof P]: P[K] extends EntrypointParamType ? EntrypointValue<P[K]> : P[K] extends { type: infer T } ? EntrypointValue<T> : never;
};

/** A registered local entrypoint, as `gantry run` reads it. */
export interface LocalEntrypointDefinition {
  name: string;
  params: Array<{ name: string; type: EntrypointParamType; default?: number | string | boolean }>;
  description?: string;
  handler: (opts: Record<string, unknown>) => unknown;
}

/**
 * An app groups functions deployed together: `const app = new App("my-job-queue")`.
 * Defining a function registers it; nothing runs until the daemon calls it in a container.
 */
export class App implements RegisteredApp {
  readonly functions = new Map<string, RegisteredFunction>();
  readonly definitions: RegisteredFunction[] = [];

  constructor(readonly name: string) {
    if (typeof name !== "string" || !/^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/.test(name)) {
      throw new Error(`App name ${JSON.stringify(name)} is invalid: use letters, digits, _ and -, at most 64 characters`);
    }
    const registry = appRegistry();
    if (registry.has(name)) throw new Error(`an App named ${JSON.stringify(name)} is already defined in this module`);
    registry.set(name, this);
  }

  function<A extends unknown[], R>(
    options: FunctionDefinitionOptions,
    handler: (...args: A) => R,
  ): FunctionHandle<A, R>;
  function<A extends unknown[], R>(handler: (...args: A) => R): FunctionHandle<A, R>;
  function<A extends unknown[], R>(
    a: FunctionDefinitionOptions | ((...args: A) => R),
    b?: (...args: A) => R,
  ): FunctionHandle<A, R> {
    const options = typeof a === "function" ? {} : a;
    const handler = typeof a === "function" ? a : b;
    if (typeof handler !== "function") throw new Error(`app.function(options, handler): handler must be a function`);
    if ((options as { schedule?: unknown }).schedule !== undefined && handler.length > 0) {
      throw new Error(`function ${handler.name || "(anonymous)"} has a schedule, so it is called with no arguments, but it takes ${handler.length}: give them defaults or drop the schedule`);
    }
    const handle = ((...args: A) => handler(...args)) as FunctionHandle<A, R>;
    // An anonymous handler is named by its export once the module has loaded (nameFunctionsByExport).
    // A generator function (function* or async function*) streams its items: call it with remoteGen.
    const kind = Object.getPrototypeOf(handler)?.constructor?.name;
    const extra = kind === "AsyncGeneratorFunction" || kind === "GeneratorFunction" ? { generator: true } : {};
    const def = this.register(handler.name, options, handler as (...args: unknown[]) => unknown, extra, handle, definitionSite(this.function));
    const app = this.name;
    Object.defineProperty(handle, "gantryFunction", { get: () => ({ app, name: def.name }) });
    Object.defineProperty(handle, "name", { get: () => def.name, configurable: true });
    return handle;
  }

  /**
   * A class with a lifecycle (Modal's `@app.cls`): `app.cls({ gpu: "any" }, class Model { async enter() {…}
   * async exit() {…} async predict(x) {…} })`. `enter()` runs once per container before it takes calls,
   * `exit()` when it stops; every other method is callable (`client.cls.fromName(app, "Model")`).
   * It is named by its class name. Parameters are declared in `options.params` and come to the
   * constructor as one object: `instance({ size: 2 })` on the caller's side is a pool of its own.
   */
  cls<C extends new (...args: never[]) => object>(options: ClsOptions, klass: C): C {
    if (typeof klass !== "function" || !/^class[\s{]/.test(Function.prototype.toString.call(klass))) {
      throw new Error(`app.cls(options, class Name { … }): the second argument must be a class`);
    }
    const proto = klass.prototype as Record<string, unknown>;
    const names = Object.getOwnPropertyNames(proto).filter((n) => !["constructor", "enter", "exit"].includes(n) && typeof proto[n] === "function");
    if (!names.length) throw new Error(`class ${klass.name} has no methods to call (enter and exit are its lifecycle)`);
    const methods = names.map((n) => {
      const kind = Object.getPrototypeOf(proto[n])?.constructor?.name;
      return { name: n, ...(kind === "AsyncGeneratorFunction" || kind === "GeneratorFunction" ? { generator: true } : {}) };
    });
    const { params, ...rest } = options;
    const declared = Object.entries(params ?? {}).map(([name, p]) => ({
      name,
      type: p.type,
      ...(p.default === undefined ? {} : { default: p.default instanceof Uint8Array ? { bytes: Buffer.from(p.default).toString("base64") } : p.default }),
    }));
    const cls = { methods, ...(declared.length ? { params: declared } : {}) };
    this.register(klass.name, rest, klass as unknown as (...args: unknown[]) => unknown, { cls }, klass, definitionSite(this.cls));
    return klass;
  }

  /**
   * A function that serves HTTP at /web/APP/NAME/: `app.webEndpoint({ maxInputs: 50 }, (req) => new Response("hi"))`.
   * The handler gets the path below that prefix; a Hono app's `fetch` works as it is.
   */
  webEndpoint(options: WebEndpointOptions, handler: FetchHandler): FetchHandler {
    if (typeof handler !== "function") throw new Error(`app.webEndpoint(options, handler): handler must be a function (req: Request) => Response`);
    const { name: given, public: isPublic, ...rest } = options;
    // A handler like honoApp.fetch has no name of its own: { name } or its export names it.
    const name = given ?? (/^(bound )?fetch$/.test(handler.name) ? "" : handler.name);
    const extra = { web: { kind: "fetch" }, ...(isPublic ? { public: true } : {}) };
    const def = this.register(name, rest, handler as (...args: unknown[]) => unknown, extra, handler, definitionSite(this.webEndpoint));
    if (given !== undefined) def.explicitName = true;
    return handler;
  }

  /** The local entrypoints, by name (`app.localEntrypoint`). */
  readonly localEntrypoints = new Map<string, LocalEntrypointDefinition>();

  /**
   * A local entrypoint (Modal's `@app.local_entrypoint()`): a function `gantry run FILE` runs on
   * this machine, after deploying the app. It is not deployed; it calls the app's functions through
   * a client: `new GantryClient()` reaches the daemon `gantry run` deployed to.
   *
   * Types are erased at run time, so its options are declared, each a type or `{ type, default }`:
   * `app.localEntrypoint({ params: { n: { type: "int", default: 1 }, label: "str" } }, async function main({ n, label }) {…})`
   * then `gantry run app.ts --n 4 --label x`. The handler gets one object, every option converted
   * (int and float as numbers, str, bool) and its default filled in; an option without a default is
   * required, a bool one is a flag (`--verbose` / `--no-verbose`). Without options, the handler
   * takes no argument. Several entrypoints: `gantry run app.ts::NAME`. Returns the handler.
   */
  localEntrypoint<R>(handler: () => R): () => R;
  localEntrypoint<const P extends Record<string, EntrypointParamType | EntrypointParam> = Record<string, never>, R = unknown>(
    options: LocalEntrypointOptions<P>,
    handler: (opts: EntrypointArgs<P>) => R,
  ): (opts: EntrypointArgs<P>) => R;
  localEntrypoint(
    a: LocalEntrypointOptions<Record<string, EntrypointParamType | EntrypointParam>> | (() => unknown),
    b?: (opts: never) => unknown,
  ): (opts: never) => unknown {
    const options = typeof a === "function" ? {} : a;
    const handler = (typeof a === "function" ? a : b) as ((opts: Record<string, unknown>) => unknown) | undefined;
    if (typeof handler !== "function") throw new Error(`app.localEntrypoint(options, handler): handler must be a function`);
    const name = options.name ?? (handler.name || "main");
    if (typeof name !== "string" || !/^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/.test(name)) {
      throw new Error(`local entrypoint name ${JSON.stringify(name)} is invalid: use letters, digits, _ and -, at most 64 characters`);
    }
    if (this.localEntrypoints.has(name)) throw new Error(`app ${this.name} already has a local entrypoint named ${name}: give one { name: "…" }`);
    const types = ["int", "float", "str", "bool"];
    const params = Object.entries(options.params ?? {}).map(([param, spec]) => {
      const { type, default: fallback } = typeof spec === "string" ? { type: spec, default: undefined } : (spec ?? ({} as EntrypointParam));
      const where = `local entrypoint ${name}, option ${param}`;
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(param)) throw new Error(`${where}: an option's name is letters, digits and _`);
      if (!types.includes(type)) throw new Error(`${where}: type must be one of ${types.join(", ")}, got ${JSON.stringify(type)}`);
      const ok =
        fallback === undefined ||
        (type === "int" ? Number.isSafeInteger(fallback) : type === "float" ? Number.isFinite(fallback) : type === "str" ? typeof fallback === "string" : typeof fallback === "boolean");
      if (!ok) throw new Error(`${where}: the default ${JSON.stringify(fallback)} is not ${type === "int" ? "an" : "a"} ${type}`);
      return { name: param, type, ...(fallback === undefined ? {} : { default: fallback }) };
    });
    this.localEntrypoints.set(name, { name, params, handler, ...(options.description ? { description: options.description } : {}) });
    return handler as (opts: never) => unknown;
  }

  private register(
    name: string,
    options: FunctionDefinitionOptions,
    handler: (...args: unknown[]) => unknown,
    extra: Record<string, unknown>,
    exported: unknown,
    definedAt: () => string | undefined,
  ): RegisteredFunction {
    if (name && this.functions.has(name)) throw new Error(`app ${this.name} already has a function named ${name}`);
    const { image, volumes, ...rest } = options;
    let mounts: ReturnType<typeof volumeMounts> | undefined;
    try {
      mounts = volumes === undefined ? undefined : volumeMounts(volumes);
    } catch (err) {
      const what = extra.cls ? `class ${name}` : name ? `function ${name}` : `a function of app ${this.name}`;
      throw new Error(`${what}: ${(err as Error).message}`);
    }
    const def: RegisteredFunction = {
      name,
      options: { ...rest, ...extra, ...(image ? { image: image.toSpec() } : {}), ...(mounts?.length ? { volumes: mounts } : {}) },
      handler,
      exported,
    };
    Object.defineProperty(def, "definedAt", { get: definedAt, enumerable: true });
    if (name) this.functions.set(name, def);
    this.definitions.push(def);
    return def;
  }
}

/**
 * "file:line:column" of the app file's call to `api` (source-mapped when source maps are on).
 * The stack is captured now and read only when asked for: formatting it (and reading the source
 * map) is left to the errors that need it, not paid at every container start.
 */
function definitionSite(api: (...args: never[]) => unknown): () => string | undefined {
  if (typeof Error.captureStackTrace !== "function") return () => undefined;
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, api);
  let site: string | undefined | null = null;
  return () => {
    if (site !== null) return site;
    const frame = holder.stack?.split("\n").find((l) => l.trimStart().startsWith("at "));
    site = frame ? /\(?((?:file:\/\/)?\/[^()]*?:\d+:\d+)\)?$/.exec(frame.trim())?.[1] : undefined;
    return site;
  };
}
