/**
 * Call IDs: `fc-` + 10 chars of millisecond time + 16 random chars, all in Crockford base32, so
 * IDs sort in creation order and stay unguessable. Randomness is injected for tests.
 */
import { CALL_ID_PATTERN } from "../../protocol/api.js";

export { CALL_ID_PATTERN };

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export type RandomSource = (bytes: number) => Uint8Array;

export function makeId(prefix: string, nowMs: number, random: RandomSource, randomChars = 16): string {
  let time = "";
  let t = Math.floor(nowMs);
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
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
