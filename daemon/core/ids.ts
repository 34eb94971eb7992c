/**
 * Call IDs: `fc-` + 10 chars of millisecond time + 16 random chars, all in Crockford base32, so
 * IDs sort in creation order and stay unguessable. Randomness is injected for tests.
 */
import { CALL_ID_PATTERN } from "../../protocol/api.js";

export { CALL_ID_PATTERN };

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export type RandomSource = (bytes: number) => Uint8Array;

function timePart(ms: number): string {
  let time = "";
  let t = Math.max(0, Math.floor(ms));
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time;
}

/** The lowest call ID of a millisecond: calls made at or after `ms` sort at or above it. */
export function callIdAt(ms: number): string {
  return `fc-${timePart(ms)}${"0".repeat(16)}`;
}

export function makeId(prefix: string, nowMs: number, random: RandomSource, randomChars = 16): string {
  const time = timePart(nowMs);
  const bytes = random(randomChars);
  let rand = "";
  for (let i = 0; i < randomChars; i++) rand += ALPHABET[bytes[i]! % 32];
  return `${prefix}-${time}${rand}`;
}

export function newCallId(nowMs: number, random: RandomSource): string {
  return makeId("fc", nowMs, random);
}

export function isCallId(s: string): boolean {
  return CALL_ID_PATTERN.test(s);
}
