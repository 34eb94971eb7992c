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

/**
 * Call IDs in one process strictly increase, even within a millisecond (or when the clock steps
 * back): an ID not above the last one takes the last one's first 22 characters plus one, and fresh
 * randomness after them, so `list` order is creation order and IDs stay unguessable.
 */
export class CallIds {
  private last = "";
  /** The millisecond of the last ID drawn afresh: within it (or before it) the next is its successor at once. */
  private lastMs = -1;
  constructor(private readonly random: RandomSource) {}

  next(nowMs: number): string {
    const ms = Math.floor(nowMs);
    let id = ms > this.lastMs ? newCallId(ms, this.random) : "";
    if (id <= this.last) id = successor(this.last.slice(0, KEPT), this.random);
    else this.lastMs = ms;
    this.last = id;
    return id;
  }
}

/** `fc-` + 10 time characters + 9 random ones are kept; the last 7 are drawn again. */
const KEPT = 3 + 10 + 9;

function successor(prefix: string, random: RandomSource): string {
  const chars = prefix.split("");
  for (let i = chars.length - 1; i >= 3; i--) {
    const next = ALPHABET.indexOf(chars[i]!) + 1;
    if (next < 32) {
      chars[i] = ALPHABET[next]!;
      break;
    }
    chars[i] = ALPHABET[0]!;
  }
  const bytes = random(26 - (KEPT - 3));
  let rand = "";
  for (const b of bytes) rand += ALPHABET[b % 32];
  return chars.join("") + rand;
}

export function isCallId(s: string): boolean {
  return CALL_ID_PATTERN.test(s);
}
