/**
 * Secrets: named sets of environment variables kept by the daemon (`gantry secret create`) and
 * given to the containers of the functions that name them. What a secret may hold is checked
 * here once, for the CLI (early, friendly) and the daemon (authoritative). Messages name keys,
 * never values.
 */
import { z } from "zod";
import { formatZodError, nameSchema } from "./function-spec.js";

export const SECRET_LIMITS = {
  keys: 100,
  keyLength: 256,
  /** Bytes of one value (UTF-8). */
  valueBytes: 32 * 1024,
  /** Bytes of all keys and values of one secret together. */
  totalBytes: 64 * 1024,
} as const;

/** Keys gantry sets itself in every container: a secret may not name them. */
export const RESERVED_KEY_PREFIX = "GANTRY_";

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const secretNameSchema = nameSchema("secret name");

/** Why `key` cannot be a secret's key, or null when it can. */
export function secretKeyProblem(key: string): string | null {
  if (!KEY.test(key)) return `${JSON.stringify(key.slice(0, 80))} is not a valid key: use letters, digits and _, not starting with a digit`;
  if (key.length > SECRET_LIMITS.keyLength) return `key ${key.slice(0, 40)}… is longer than ${SECRET_LIMITS.keyLength} characters`;
  if (key.startsWith(RESERVED_KEY_PREFIX)) return `key ${key} starts with ${RESERVED_KEY_PREFIX}, which is reserved for gantry's own settings`;
  return null;
}

/** Why these values cannot be a secret, or null when they can. Names keys only. */
export function secretValuesProblem(values: Record<string, string>): string | null {
  const keys = Object.keys(values);
  if (keys.length === 0) return "a secret needs at least one KEY=VALUE";
  if (keys.length > SECRET_LIMITS.keys) return `a secret holds at most ${SECRET_LIMITS.keys} keys; this one has ${keys.length}`;
  let total = 0;
  for (const key of keys) {
    const problem = secretKeyProblem(key);
    if (problem) return problem;
    const value = values[key]!;
    if (typeof value !== "string") return `the value of ${key} must be a string`;
    if (value.includes("\0")) return `the value of ${key} contains a NUL character, which an environment variable cannot hold`;
    const bytes = Buffer.byteLength(value, "utf8");
    if (bytes > SECRET_LIMITS.valueBytes) return `the value of ${key} is ${bytes} bytes; a value may have at most ${SECRET_LIMITS.valueBytes}`;
    total += bytes + key.length;
  }
  if (total > SECRET_LIMITS.totalBytes) return `the secret's keys and values come to ${total} bytes; at most ${SECRET_LIMITS.totalBytes} are allowed`;
  return null;
}

/** POST /v1/secrets: create a secret, or replace one with `force`. */
export const createSecretRequestSchema = z
  .object({
    name: secretNameSchema,
    values: z.record(z.string(), z.string({ error: "each value must be a string" })),
    force: z.boolean().optional(),
  })
  .strict();
export type CreateSecretRequest = z.infer<typeof createSecretRequestSchema>;

/** The request checked, or a message naming what is wrong (never a value). */
export function parseCreateSecretRequest(raw: unknown): { ok: true; request: CreateSecretRequest } | { ok: false; message: string } {
  const parsed = createSecretRequestSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, message: formatZodError(parsed.error) };
  const problem = secretValuesProblem(parsed.data.values);
  return problem ? { ok: false, message: `secret ${parsed.data.name}: ${problem}` } : { ok: true, request: parsed.data };
}
