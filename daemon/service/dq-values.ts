/**
 * Keys and values of Dicts and Queues as they travel ({"value"} or {"pickled"}) and as they are
 * stored (JSON text, or "pickle:" and base64, as calls keep theirs). A key's identity is its
 * canonical text. A pickled value a function wrote is given to no other app's container (unpickling
 * runs code); the host and the writer's own app read it.
 */
import { BASE64 } from "../../protocol/agent-messages.js";
import { canonicalJson, DQ_LIMITS, type WireValue } from "../../protocol/dicts-queues.js";
import { PICKLED_PREFIX, pickledValue } from "../store/call-store.js";
import type { StoredValue } from "../store/dq-store.js";
import { invalid, ServiceError, ServiceErrorCode } from "./errors.js";

const SHAPE = `{"value": <JSON>} or {"pickled": "<base64>"}`;

/** The wire value checked: one of the two shapes, within the size limit. Returns its stored text. */
export function storedOf(wire: unknown, what: string): string {
  if (wire === null || typeof wire !== "object" || Array.isArray(wire)) throw invalid(`${what} must be ${SHAPE}`);
  const keys = Object.keys(wire);
  if (keys.length !== 1 || (keys[0] !== "value" && keys[0] !== "pickled")) throw invalid(`${what} must be ${SHAPE}, got the fields ${keys.join(", ") || "none"}`);
  // Measured as it travels: the base64's characters, or the JSON text's UTF-8 bytes.
  let text: string;
  let bytes: number;
  if (keys[0] === "pickled") {
    const b64 = (wire as { pickled: unknown }).pickled;
    if (typeof b64 !== "string" || !BASE64.test(b64)) throw invalid(`${what}: "pickled" must be base64`);
    text = PICKLED_PREFIX + b64;
    bytes = b64.length;
  } else {
    const value = (wire as { value: unknown }).value;
    if (value === undefined) throw invalid(`${what}: "value" is missing`);
    text = JSON.stringify(value);
    bytes = Buffer.byteLength(text, "utf8");
  }
  if (bytes > DQ_LIMITS.valueBytes) throw invalid(`${what} is ${bytes} bytes as it travels; at most ${DQ_LIMITS.valueBytes} (1 MiB) are allowed`);
  return text;
}

/** A key's identity: canonical JSON (object keys sorted), or "pickle:" and the base64. */
export function keyOf(wire: unknown): string {
  const text = storedOf(wire, "the key");
  return text.startsWith(PICKLED_PREFIX) ? text : canonicalJson((wire as { value: unknown }).value);
}

/** A stored key or value as it travels. */
export function wireOf(text: string): WireValue {
  const pickled = pickledValue(text);
  return pickled !== null ? { pickled } : { value: JSON.parse(text) };
}

/** A stored value for `caller` (an app's container; null: the host): refused when another app's function pickled it. */
export function readableBy(v: StoredValue, caller: string | null, where: string): WireValue {
  if (caller !== null && v.origin !== null && v.origin !== caller && v.data.startsWith(PICKLED_PREFIX)) {
    throw new ServiceError(
      ServiceErrorCode.forbidden,
      `${where} holds a value pickled by a function of app ${v.origin}: a function of app ${caller} may not unpickle it (unpickling runs code); store JSON values to share them between apps`,
    );
  }
  return wireOf(v.data);
}
