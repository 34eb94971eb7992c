/** A class's declared parameters and their values (issue 18); the variants they make are cls-variant.ts's. */
import { z } from "zod";

export const PARAM_TYPES = ["int", "str", "bytes", "bool"] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/** A parameter's value as JSON: bytes travel as {"bytes": base64}. */
export type ParamValue = number | string | boolean | { bytes: string };

export const PARAM_LIMITS = {
  /** Parameters a class may declare. */
  perClass: 32,
  /** Characters of a str parameter, bytes of a bytes one. */
  valueLength: 4096,
  /** Pools a class may have at once beside its own (parameter sets and options in use). */
  variantsPerClass: 64,
} as const;

const paramValueSchema = z.union([
  z.number(),
  z.string(),
  z.boolean(),
  z.object({ bytes: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "bytes must be base64") }).strict(),
]);

/** One declared parameter (Python `size: int = modal.parameter(default=1)`). */
export const clsParamSchema = z
  .object({ name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "a parameter name is letters, digits and _, at most 64 characters"), type: z.enum(PARAM_TYPES), default: paramValueSchema.optional() })
  .strict()
  .superRefine((p, ctx) => {
    if (p.default === undefined) return;
    const wrong = paramTypeError(p.type, p.default);
    if (wrong) ctx.addIssue({ code: "custom", message: `parameter ${p.name}'s default: ${wrong}` });
  });
export type ClsParam = z.infer<typeof clsParamSchema>;

/** Why `value` is not a `type` parameter's value, or null when it is. */
export function paramTypeError(type: ParamType, value: unknown): string | null {
  const got = value === null ? "null" : Array.isArray(value) ? "a list" : typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value).slice(0, 40)}`;
  switch (type) {
    case "int":
      return typeof value === "number" && Number.isSafeInteger(value) ? null : `expected an int (a whole number within ±2^53), got ${got}`;
    case "bool":
      return typeof value === "boolean" ? null : `expected a bool, got ${got}`;
    case "str":
      if (typeof value !== "string") return `expected a str, got ${got}`;
      return value.length <= PARAM_LIMITS.valueLength ? null : `a str parameter holds at most ${PARAM_LIMITS.valueLength} characters, got ${value.length}`;
    case "bytes": {
      const b64 = (value as { bytes?: unknown } | null)?.bytes;
      if (typeof value !== "object" || value === null || typeof b64 !== "string") return `expected bytes ({"bytes": base64}), got ${got}`;
      const n = Math.floor((b64.length * 3) / 4);
      return n <= PARAM_LIMITS.valueLength + 2 ? null : `a bytes parameter holds at most ${PARAM_LIMITS.valueLength} bytes, got about ${n}`;
    }
  }
}

