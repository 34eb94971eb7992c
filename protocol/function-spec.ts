/**
 * The function options users write (DESIGN 1.1) and their normalised form.
 * Shared by the SDK (early, friendly validation at deploy time) and the daemon (authoritative).
 */
import { z } from "zod";
import { imageSpecSchema, type ImageSpec } from "./image-spec.js";
import { clsParamSchema, PARAM_LIMITS, type ClsParam } from "./cls-params.js";
import { volumeMountsSchema, type VolumeMount } from "./volumes.js";
import { bundlePathProblem } from "./bundle-paths.js";

export const LIMITS = {
  maxRetries: 10,
  timeoutSeconds: { min: 1, max: 24 * 3600 },
  scaledownWindowSeconds: { min: 2, max: 20 * 60 },
  maxInputs: { min: 1, max: 1000 },
  maxContainers: { min: 1, max: 100 },
  resultTtlSeconds: { min: 1, max: 30 * 24 * 3600 },
  secretsPerFunction: 20,
} as const;

export const DEFAULTS = {
  timeout: 300,
  maxContainers: 10,
  minContainers: 0,
  bufferContainers: 0,
  scaledownWindow: 60,
  maxInputs: 1,
  resultTtl: 3600,
  network: "bridge" as const,
  retryInitialDelay: 1,
  retryMaxDelay: 60,
  retryBackoffCoefficient: 2,
};

const NAME = /^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/;
export const nameSchema = (what: string) =>
  z.string().regex(NAME, `${what} must start with a letter or _, then letters, digits, _ or -, at most 64 characters`);

export { imageSpecSchema, imageStepSchema, type ImageSpec, type ImageStep } from "./image-spec.js";

const seconds = (what: string, min: number, max: number) =>
  z.number().refine((n) => Number.isFinite(n) && n >= min && n <= max, `${what} must be between ${min} and ${max} seconds`);
const count = (what: string, min: number, max: number) =>
  z.number().int(`${what} must be a whole number`).min(min, `${what} must be at least ${min}`).max(max, `${what} must be at most ${max}`);

export const retriesSchema = z.union([
  count("retries", 0, LIMITS.maxRetries),
  z.object({
    maxRetries: count("retries.maxRetries", 0, LIMITS.maxRetries),
    backoffCoefficient: z.number().min(1).max(10).optional(),
    initialDelay: seconds("retries.initialDelay", 0, 60).optional(),
    maxDelay: seconds("retries.maxDelay", 1, 60).optional(),
  }).strict(),
], { error: "retries must be a whole number from 0 to 10, or {maxRetries, backoffCoefficient, initialDelay, maxDelay}" });

const gpuName = z.string().regex(/^(any|[A-Za-z0-9-]+)(:[1-8])?$/, 'gpu must look like "any", "A100" or "H100:2"');

/** How a web endpoint's handler takes requests (DESIGN 1.8): set by app.webEndpoint() and the Python decorators. */
export const WEB_KINDS = { node: ["fetch"], python: ["asgi", "wsgi", "fastapi"] } as const;
export const webSchema = z
  .object({
    kind: z.enum(["fetch", "asgi", "wsgi", "fastapi"]),
    /** fastapi_endpoint's method. */
    method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]).optional(),
  })
  .strict();
export type WebSpec = z.infer<typeof webSchema>;

/** Options as written by users (camelCase); the SDK also maps Python's snake_case here. */
export const functionOptionsSchema = z.object({
  image: imageSpecSchema.optional(),
  retries: retriesSchema.optional(),
  timeout: seconds("timeout", LIMITS.timeoutSeconds.min, LIMITS.timeoutSeconds.max).optional(),
  startupTimeout: seconds("startupTimeout", LIMITS.timeoutSeconds.min, LIMITS.timeoutSeconds.max).optional(),
  maxContainers: count("maxContainers", LIMITS.maxContainers.min, LIMITS.maxContainers.max).optional(),
  minContainers: count("minContainers", 0, LIMITS.maxContainers.max).optional(),
  bufferContainers: count("bufferContainers", 0, LIMITS.maxContainers.max).optional(),
  scaledownWindow: seconds("scaledownWindow", LIMITS.scaledownWindowSeconds.min, LIMITS.scaledownWindowSeconds.max).optional(),
  maxInputs: count("maxInputs", LIMITS.maxInputs.min, LIMITS.maxInputs.max).optional(),
  gpu: z.union([gpuName, z.array(gpuName).min(1)]).optional(),
  cpu: z.number().positive().max(1024).optional(),
  memory: count("memory (MiB)", 6, 16 * 1024 * 1024).optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _"), z.string()).optional(),
  resultTtl: seconds("resultTtl", LIMITS.resultTtlSeconds.min, LIMITS.resultTtlSeconds.max).optional(),
  network: z.enum(["bridge", "none"]).optional(),
  web: webSchema.optional(),
  /** A generator function (Python def/async def with yield, TS function*): called with remote_gen/remoteGen, its items stream as yielded. */
  generator: z.boolean().optional(),
  /** Python's @batched(max_batch_size=, wait_ms=): the agent groups inputs into one call of a list. */
  batched: z
    .object({
      maxBatchSize: count("max_batch_size", 1, LIMITS.maxInputs.max),
      waitMs: count("wait_ms", 0, 10 * 60_000),
    })
    .strict()
    .optional(),
  /** A class (Python @app.cls): one pool for all its methods; each call names the method it runs. */
  cls: z
    .object({
      methods: z
        .array(
          z
            .object({
              name: nameSchema("method name"),
              generator: z.boolean().optional(),
              /** A web endpoint method (@fastapi_endpoint, @asgi_app, @wsgi_app): served at /web/APP/CLASS.METHOD/, not called. */
              web: webSchema.optional(),
              public: z.boolean().optional(),
            })
            .strict(),
        )
        .min(1, "a class needs at least one @method() or web endpoint")
        .max(100),
      /** Its parameters (Python modal.parameter(), TS options.params): each distinct set is a pool of its own. */
      params: z
        .array(clsParamSchema)
        .max(PARAM_LIMITS.perClass, `a class declares at most ${PARAM_LIMITS.perClass} parameters`)
        .refine((ps) => new Set(ps.map((p) => p.name)).size === ps.length, "a class declares the same parameter twice")
        .optional(),
    })
    .strict()
    .optional(),
  /** A web endpoint anyone may call, even where the daemon asks for its token. */
  public: z.boolean().optional(),
  /** Runs it on a schedule (Python `schedule=gantry.Period(...)` / `gantry.Cron(...)`): every `period` seconds, or at a cron expression's times in `timezone`. */
  schedule: z
    .union([
      z.object({ period: seconds("schedule period", 1, 366 * 24 * 3600) }).strict(),
      z.object({ cron: z.string().min(9).max(200), timezone: z.string().min(1).max(64).optional() }).strict(),
    ], { error: 'schedule must be {"period": seconds} or {"cron": "expression", "timezone": "UTC"}' })
    .optional(),
  /** Volumes mounted into its containers (Python `volumes={"/data": vol}`), by mount point. */
  volumes: volumeMountsSchema.optional(),
  /** Secrets by name (`Secret.fromName("NAME")`): their keys become environment variables. */
  secrets: z
    .array(z.object({ name: nameSchema("secret name") }, { error: 'secrets takes Secret.fromName("NAME") items' }).strict())
    .max(LIMITS.secretsPerFunction, `a function may use at most ${LIMITS.secretsPerFunction} secrets`)
    .refine((list) => new Set(list.map((s) => s.name)).size === list.length, "secrets names the same secret twice")
    .optional(),
}).strict();
export type FunctionOptions = z.input<typeof functionOptionsSchema>;

export interface RetryPolicy {
  maxRetries: number;
  backoffCoefficient: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/** A function as the daemon keeps it: every option resolved to a value. */
export interface FunctionSpec {
  name: string;
  image: ImageSpec;
  retries: RetryPolicy;
  timeoutMs: number;
  startupTimeoutMs: number;
  maxContainers: number;
  minContainers: number;
  bufferContainers: number;
  scaledownWindowMs: number;
  maxInputs: number;
  gpu: string[] | null;
  cpu: number | null;
  memoryMiB: number | null;
  env: Record<string, string>;
  resultTtlMs: number;
  network: "bridge" | "none";
  /** A web endpoint's handler kind; null for functions called with spawn/remote. */
  web: WebSpec | null;
  public: boolean;
  /** Its calls stream items (remote_gen); absent in specs stored before generators existed. */
  generator?: boolean;
  /** A class: its methods (each call names one). */
  cls?: { methods: ClsMethod[]; params?: ClsParam[] };
  /** Inputs grouped into one call of a list (Python's @batched); maxInputs is at least maxBatchSize. */
  batched?: { maxBatchSize: number; waitMs: number };
  /**
   * The secrets whose keys the container gets as environment variables, in order: a later one
   * wins over an earlier one, and all win over `env`. Absent when none (and in specs stored
   * before secrets existed).
   */
  secrets?: string[];
  /** Volumes mounted into its containers; absent when none (and in specs stored before volumes existed). */
  volumes?: VolumeMount[];
  /** Its schedule; absent when it has none. */
  schedule?: ScheduleSpec;
}

/** A schedule: every `period` seconds, or a cron expression in a time zone (default UTC). */
export type ScheduleSpec = { period: number } | { cron: string; timezone?: string };

/** A class's method: called (a generator or not), or served as a web endpoint. */
export interface ClsMethod {
  name: string;
  generator?: boolean;
  web?: WebSpec;
  public?: boolean;
}

export const RUNTIMES = ["node", "python"] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** A relative path inside a bundle or a folder: no absolute path, no "..", no odd characters. */
const relativePath = z
  .string()
  .min(1)
  .max(512)
  .regex(/^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._+@=,~ \/-]+$/, "paths must be relative, without . or .. parts");

/** A folder's files, by relative path: content (base64) and mode (0o644, or 0o755 for executables). */
export const assetSchema = z.record(relativePath, z.object({ data: z.string(), mode: z.union([z.literal(0o644), z.literal(0o755)]) }));
export type Asset = z.infer<typeof assetSchema>;

export const manifestFunctionSchema = z.object({ name: nameSchema("function name"), options: functionOptionsSchema });
export const deployRequestSchema = z
  .object({
    app: nameSchema("app name"),
    functions: z.array(manifestFunctionSchema).min(1, "the app defines no functions").max(200),
    runtime: z.enum(RUNTIMES).default("node"),
    /** node: the bundled app module (ESM), as text. */
    bundle: z.string().min(1).optional(),
    /** python: the app's source files by relative path, and the module to import. */
    files: z.record(relativePath, z.string()).optional(),
    module: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "the app module is a Python module name").optional(),
    /** Folders that image steps copy (Image.add_local_dir), by their hash. */
    assets: z.record(z.string().regex(/^[0-9a-f]{64}$/), assetSchema).optional(),
    source: z.string().optional(),
    /** gantry serve and app.run(): stopped unless the client heartbeats (POST /v1/apps/:app/heartbeat). */
    ephemeral: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    if (r.runtime === "node" && r.bundle === undefined) ctx.addIssue({ code: "custom", message: "a node app needs its bundle" });
    if (r.runtime === "python" && (!r.files || !r.module)) ctx.addIssue({ code: "custom", message: "a python app needs its files and module" });
    if (r.runtime === "python" && r.files && r.module && !(`${r.module}.py` in r.files)) {
      ctx.addIssue({ code: "custom", message: `the files hold no ${r.module}.py, the app module` });
    }
    // The paths as a set: each can be written out as a file (protocol/bundle-paths.ts).
    const files = r.files && bundlePathProblem(Object.keys(r.files));
    if (files) ctx.addIssue({ code: "custom", path: ["files"], message: files });
    for (const [hash, asset] of Object.entries(r.assets ?? {})) {
      const problem = bundlePathProblem(Object.keys(asset), { maxFiles: Infinity });
      if (problem) ctx.addIssue({ code: "custom", path: ["assets", hash], message: problem });
    }
  });
export type DeployRequest = z.infer<typeof deployRequestSchema>;

export function normalizeRetries(r: z.infer<typeof retriesSchema> | undefined): RetryPolicy {
  if (r === undefined) return { maxRetries: 0, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 };
  if (typeof r === "number") return { maxRetries: r, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 };
  return {
    maxRetries: r.maxRetries,
    backoffCoefficient: r.backoffCoefficient ?? DEFAULTS.retryBackoffCoefficient,
    initialDelayMs: (r.initialDelay ?? DEFAULTS.retryInitialDelay) * 1000,
    maxDelayMs: (r.maxDelay ?? DEFAULTS.retryMaxDelay) * 1000,
  };
}

/** Resolves defaults and cross-field rules. Throws a readable message on a bad combination. */
export function resolveFunctionSpec(name: string, raw: unknown, runtime: Runtime = "node"): FunctionSpec {
  const parsed = functionOptionsSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new Error(`function ${name}: ${formatZodError(parsed.error)}`);
  const o = parsed.data;
  const wrongBase = runtime === "node" ? "python" : "node";
  if (o.image?.base.kind === wrongBase) {
    const made = wrongBase === "python" ? "Image.debian_slim() / Image.python()" : "Image.node()";
    throw new Error(`function ${name}: ${made} is an image for ${wrongBase} functions, and this is a ${runtime} app`);
  }
  for (const step of o.image?.steps ?? []) {
    if ((step.kind === "npm" && runtime === "python") || (step.kind === "pip" && runtime === "node")) {
      throw new Error(`function ${name}: ${step.kind} packages go into ${step.kind === "npm" ? "node" : "python"} images; this is a ${runtime} app`);
    }
  }
  const timeout = o.timeout ?? DEFAULTS.timeout;
  const maxContainers = o.maxContainers ?? DEFAULTS.maxContainers;
  const minContainers = o.minContainers ?? DEFAULTS.minContainers;
  if (minContainers > maxContainers) {
    throw new Error(`function ${name}: minContainers (${minContainers}) must not exceed maxContainers (${maxContainers})`);
  }
  if (o.web && !(WEB_KINDS[runtime] as readonly string[]).includes(o.web.kind)) {
    throw new Error(`function ${name}: a ${o.web.kind} web endpoint is not a ${runtime} one (${runtime} takes ${WEB_KINDS[runtime].join(", ")})`);
  }
  if (o.public !== undefined && !o.web) throw new Error(`function ${name}: public is for web endpoints only`);
  if (o.generator && o.web) throw new Error(`function ${name}: a web endpoint cannot be a generator`);
  if (o.cls && (o.web || o.generator)) throw new Error(`class ${name}: mark its methods, not the class, as generators or endpoints`);
  if (o.schedule && (o.web || o.cls)) throw new Error(`${o.cls ? "class" : "function"} ${name}: a schedule is for functions called without arguments, not ${o.cls ? "classes" : "web endpoints"}`);
  if (o.batched && (o.generator || o.web)) throw new Error(`function ${name}: a @batched function cannot be a generator or a web endpoint`);
  if (o.batched && o.cls && o.cls.methods.length !== 1) throw new Error(`class ${name}: @batched goes on a class's only method; it has ${o.cls.methods.length}`);
  if (o.generator && normalizeRetries(o.retries).maxRetries > 0) {
    throw new Error(`function ${name}: a generator function cannot have retries: the items it already yielded cannot be taken back`);
  }
  for (const m of o.cls?.methods ?? []) {
    if (m.web && m.generator) throw new Error(`class ${name}: method ${m.name} cannot be both a web endpoint and a generator`);
    if (m.web && !(WEB_KINDS[runtime] as readonly string[]).includes(m.web.kind)) throw new Error(`class ${name}: method ${m.name} is a ${m.web.kind} web endpoint, which ${runtime} classes do not serve`);
    if (m.public !== undefined && !m.web) throw new Error(`class ${name}: public is for web endpoint methods only (${m.name})`);
  }
  if (o.batched && o.cls?.methods.some((m) => m.web)) throw new Error(`class ${name}: a @batched class cannot serve web endpoints`);
  const generatorMethod = o.cls?.methods.find((m) => m.generator);
  if (generatorMethod && normalizeRetries(o.retries).maxRetries > 0) {
    throw new Error(`class ${name}: a class with a generator method (${generatorMethod.name}) cannot have retries: the items a call already yielded cannot be taken back`);
  }
  return {
    name,
    image: o.image ?? { base: { kind: runtime }, steps: [] },
    retries: normalizeRetries(o.retries),
    timeoutMs: timeout * 1000,
    startupTimeoutMs: (o.startupTimeout ?? timeout) * 1000,
    maxContainers,
    minContainers,
    bufferContainers: o.bufferContainers ?? DEFAULTS.bufferContainers,
    scaledownWindowMs: (o.scaledownWindow ?? DEFAULTS.scaledownWindow) * 1000,
    maxInputs: Math.max(o.maxInputs ?? DEFAULTS.maxInputs, o.batched?.maxBatchSize ?? 0),
    gpu: o.gpu === undefined ? null : Array.isArray(o.gpu) ? o.gpu : [o.gpu],
    cpu: o.cpu ?? null,
    memoryMiB: o.memory ?? null,
    env: o.env ?? {},
    resultTtlMs: (o.resultTtl ?? DEFAULTS.resultTtl) * 1000,
    network: o.network ?? DEFAULTS.network,
    web: o.web ?? null,
    public: o.public ?? false,
    ...(o.secrets?.length ? { secrets: o.secrets.map((s) => s.name) } : {}),
    ...(o.volumes?.length ? { volumes: o.volumes } : {}),
    ...(o.schedule ? { schedule: o.schedule } : {}),
    ...(o.generator ? { generator: true } : {}),
    ...(o.cls ? { cls: o.cls } : {}),
    ...(o.batched ? { batched: o.batched } : {}),
  };
}

const BASIC_TYPES = new Set(["object", "number", "string", "array", "boolean"]);

/** A union branch whose only complaint is the value's basic type is not the branch the user meant. */
function meantBranch(branches: z.core.$ZodIssue[][]): z.core.$ZodIssue[] | null {
  const meant = branches.filter(
    (issues) => !issues.every((i) => i.code === "invalid_type" && i.path.length === 0 && BASIC_TYPES.has(String(i.expected))),
  );
  return meant.length === 1 ? meant[0]! : null;
}

function flatten(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]): string[] {
  return issues.flatMap((i) => {
    const path = [...prefix, ...i.path];
    if (i.code === "invalid_union") {
      const branch = meantBranch(i.errors);
      if (branch) return flatten(branch, path);
    }
    const where = path.map(String).join(".");
    return [!where || i.message.startsWith(where) ? i.message : `${where}: ${i.message}`];
  });
}

export function formatZodError(err: z.ZodError): string {
  return flatten(err.issues, []).join("; ");
}
