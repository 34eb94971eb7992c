/**
 * A class's parameters and options (issue 18): `Model(size=2)` and `Model.with_options(gpu="A100")`
 * each name a pool of their own. A call carries its variant (the parameter set, defaults applied,
 * and the options it overrides); the daemon checks it against the class's declaration and keys
 * the pool by its canonical JSON. Shared by the daemon (authoritative) and the SDKs.
 */
import type { z } from "zod";
import { functionOptionsSchema, formatZodError, normalizeRetries, type FunctionSpec } from "./function-spec.js";
import { PARAM_LIMITS, paramTypeError, type ClsParam, type ParamValue } from "./cls-params.js";

export { PARAM_LIMITS, PARAM_TYPES, clsParamSchema, type ClsParam, type ParamType, type ParamValue } from "./cls-params.js";

/** What `with_options` / `withOptions` may change for its own pool: resources, limits and timing. */
export const variantOptionsSchema = functionOptionsSchema
  .pick({ gpu: true, cpu: true, memory: true, retries: true, timeout: true, maxContainers: true, minContainers: true, bufferContainers: true, scaledownWindow: true, maxInputs: true })
  .strict();
export type VariantOptions = z.infer<typeof variantOptionsSchema>;

/** A call's pool within its class: the parameter set (defaults applied) and the options it overrides. */
export interface Variant {
  params: Record<string, ParamValue>;
  options: VariantOptions;
}

/** Thrown for a parameter set or options a class does not take; `kind` tells a wrong type from the rest (Python raises TypeError for it). */
export class VariantError extends Error {
  constructor(
    message: string,
    readonly kind: "invalid" | "type" = "invalid",
  ) {
    super(message);
  }
}

/**
 * Checks a call's parameters and options against the class and returns its variant in canonical
 * form (keys sorted, defaults applied) with its key, or null for the class's own pool (every
 * parameter at its default, no options).
 */
export function resolveVariant(cls: string, declared: readonly ClsParam[], rawParams: unknown, rawOptions: unknown): { key: string; variant: Variant } | null {
  const given = rawParams ?? {};
  if (typeof given !== "object" || Array.isArray(given)) throw new VariantError(`${cls}: params must be an object of parameter values`);
  const unknown = Object.keys(given).filter((k) => !declared.some((p) => p.name === k));
  if (unknown.length) {
    const takes = declared.length ? `it takes ${declared.map((p) => p.name).join(", ")}` : "it declares no parameters";
    throw new VariantError(`${cls} has no parameter ${unknown.map((k) => JSON.stringify(k)).join(", ")}: ${takes}`);
  }
  const params: Record<string, ParamValue> = {};
  let allDefault = true;
  for (const p of [...declared].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const value = (given as Record<string, unknown>)[p.name];
    if (value === undefined) {
      if (p.default === undefined) throw new VariantError(`${cls}: missing parameter ${p.name} (${p.type}), which has no default`);
      params[p.name] = p.default;
      continue;
    }
    const wrong = paramTypeError(p.type, value);
    if (wrong) throw new VariantError(`${cls}: parameter ${p.name}: ${wrong}`, "type");
    params[p.name] = value as ParamValue;
    if (p.default === undefined || JSON.stringify(p.default) !== JSON.stringify(value)) allDefault = false;
  }
  const parsed = variantOptionsSchema.safeParse(rawOptions ?? {});
  if (!parsed.success) throw new VariantError(`${cls}.with_options: ${formatZodError(parsed.error)}`);
  const options = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))) as VariantOptions;
  if (allDefault && Object.keys(options).length === 0) return null;
  const variant = { params, options };
  return { key: JSON.stringify(variant), variant };
}

/** The class's spec with a variant's options applied; throws when the combination breaks a rule. */
export function variantSpec(base: FunctionSpec, options: VariantOptions): FunctionSpec {
  const s: FunctionSpec = { ...base };
  if (options.gpu !== undefined) s.gpu = Array.isArray(options.gpu) ? options.gpu : [options.gpu];
  if (options.cpu !== undefined) s.cpu = options.cpu;
  if (options.memory !== undefined) s.memoryMiB = options.memory;
  if (options.retries !== undefined) s.retries = normalizeRetries(options.retries);
  if (options.timeout !== undefined) s.timeoutMs = options.timeout * 1000;
  if (options.maxContainers !== undefined) s.maxContainers = options.maxContainers;
  if (options.minContainers !== undefined) s.minContainers = options.minContainers;
  if (options.bufferContainers !== undefined) s.bufferContainers = options.bufferContainers;
  if (options.scaledownWindow !== undefined) s.scaledownWindowMs = options.scaledownWindow * 1000;
  if (options.maxInputs !== undefined) s.maxInputs = Math.max(options.maxInputs, base.batched?.maxBatchSize ?? 0);
  if (s.minContainers > s.maxContainers) throw new VariantError(`${base.name}.with_options: minContainers (${s.minContainers}) must not exceed maxContainers (${s.maxContainers})`);
  if (s.retries.maxRetries > 0 && streamsItems(base)) {
    throw new VariantError(`${base.name}.with_options: retries on a class with generator methods: the items a call already yielded cannot be taken back`);
  }
  return s;
}

/** Whether some call of this function streams items (a generator, or a class with a generator method). */
export function streamsItems(spec: Pick<FunctionSpec, "generator" | "cls">): boolean {
  return !!spec.generator || (spec.cls?.methods.some((m) => m.generator) ?? false);
}

/** A class whose parameters all have defaults can warm containers before any call names a parameter set. */
export function hasRequiredParams(spec: Pick<FunctionSpec, "cls">): boolean {
  return spec.cls?.params?.some((p) => p.default === undefined) ?? false;
}

/** The parameters a container of this pool gets: its variant's, or the declared defaults. */
export function defaultParams(declared: readonly ClsParam[]): Record<string, ParamValue> {
  return Object.fromEntries(declared.filter((p) => p.default !== undefined).map((p) => [p.name, p.default!]));
}

/**
 * A web endpoint method's parameter set from its request's query (`?size=2&flag=true`): each
 * declared parameter the query names, read as its type (bytes as the value's UTF-8); other query
 * parameters are the app's and stay as they are.
 */
export function paramsFromQuery(cls: string, declared: readonly ClsParam[], query: string): Record<string, ParamValue> {
  const q = new URLSearchParams(query);
  const out: Record<string, ParamValue> = {};
  for (const p of declared) {
    const raw = q.get(p.name);
    if (raw === null) continue;
    if (p.type === "int") {
      if (!/^-?\d{1,16}$/.test(raw)) throw new VariantError(`${cls}: query parameter ${p.name} must be a whole number, got ${JSON.stringify(raw.slice(0, 40))}`, "type");
      out[p.name] = Number(raw);
    } else if (p.type === "bool") {
      const b = { true: true, "1": true, false: false, "0": false }[raw.toLowerCase()];
      if (b === undefined) throw new VariantError(`${cls}: query parameter ${p.name} must be true or false, got ${JSON.stringify(raw.slice(0, 40))}`, "type");
      out[p.name] = b;
    } else out[p.name] = p.type === "bytes" ? { bytes: Buffer.from(raw, "utf8").toString("base64") } : raw;
  }
  return out;
}

/** How a variant reads in lists: `size=2, gpu=A100`. */
export function describeVariant(v: Variant): string {
  const show = (x: unknown) => (typeof x === "object" && x !== null && "bytes" in x ? `b64:${(x as { bytes: string }).bytes.slice(0, 12)}` : JSON.stringify(x));
  return [...Object.entries(v.params).map(([k, x]) => `${k}=${show(x)}`), ...Object.entries(v.options).map(([k, x]) => `${k}=${show(x)}`)].join(", ");
}
