/**
 * What a JSON text may be before anyone parses it: nested at most MAX_JSON_DEPTH levels, and (as
 * bytes) valid UTF-8. JSON.parse itself takes any depth, but whatever walks the value afterwards
 * (validation, JSON.stringify, a store) recurses and runs out of stack: a body nested 100,000
 * levels deep would be a 500. Both scans here are pure, O(n) and without recursion.
 */

/** The deepest nesting of arrays and objects a request body or an agent message may have. */
export const MAX_JSON_DEPTH = 512;

/**
 * The deepest an agent's message may nest: a value a request brought in at MAX_JSON_DEPTH goes
 * back out inside a message's envelope (`{"type":"outputs","outputs":[{"value": …}]}`).
 */
export const MAX_AGENT_MESSAGE_DEPTH = MAX_JSON_DEPTH + 8;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** How deep a JSON text nests, and where it first went deeper than `limit` (-1: it never did). */
export interface JsonNesting {
  depth: number;
  overflowAt: number;
}

/**
 * Scans a JSON text (UTF-8 bytes or a string) for its nesting depth, skipping string contents
 * and their escapes; stops at the first bracket that goes deeper than `limit`. Does not check
 * that the text is JSON: JSON.parse does that afterwards, on a text known to be shallow enough.
 */
export function jsonNesting(json: Uint8Array | string, limit = Infinity): JsonNesting {
  // In UTF-8, bytes below 0x80 never occur inside a multi-byte character, so scanning bytes is safe.
  const code = typeof json === "string" ? (i: number) => json.charCodeAt(i) : (i: number) => json[i]!;
  // Strings are most of a body: their ends are found with indexOf, which runs natively.
  const nextQuote = typeof json === "string" ? (from: number) => json.indexOf('"', from) : (from: number) => json.indexOf(QUOTE, from);
  const length = json.length;
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < length; i++) {
    const c = code(i);
    if (c === QUOTE) {
      i = stringEnd(i, code, nextQuote);
      if (i < 0) break; // unterminated: the rest is one string
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return { depth, overflowAt: i };
      if (depth > deepest) deepest = depth;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return { depth: deepest, overflowAt: -1 };
}

/** The offset of the quote that closes the string opened at `open` (a quote after an odd run of backslashes is escaped), or -1. */
function stringEnd(open: number, code: (i: number) => number, nextQuote: (from: number) => number): number {
  for (let q = nextQuote(open + 1); q >= 0; q = nextQuote(q + 1)) {
    let backslashes = 0;
    for (let k = q - 1; k > open && code(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return -1;
}

/**
 * Whether a text opens at most `limit` arrays and objects, brackets inside strings counted too (so
 * never fewer than it nests): found with indexOf, natively, many times faster than a scan.
 */
function opensAtMost(json: Uint8Array | string, limit: number): boolean {
  let opened = 0;
  if (typeof json === "string") {
    for (const b of ["{", "["]) for (let i = json.indexOf(b); i >= 0; i = json.indexOf(b, i + 1)) if (++opened > limit) return false;
  } else {
    for (const b of [OPEN_OBJECT, OPEN_ARRAY]) for (let i = json.indexOf(b); i >= 0; i = json.indexOf(b, i + 1)) if (++opened > limit) return false;
  }
  return true;
}

/** Why a JSON text nests too deep ("… at byte N"), or null when it is within `limit`. */
export function jsonDepthProblem(json: Uint8Array | string, limit = MAX_JSON_DEPTH): string | null {
  if (opensAtMost(json, limit)) return null; // too few brackets to nest deeper: no scan needed
  const { overflowAt } = jsonNesting(json, limit);
  if (overflowAt < 0) return null;
  const unit = typeof json === "string" ? "character" : "byte";
  return `JSON nested deeper than the limit of ${limit} levels of arrays and objects (at ${unit} ${overflowAt})`;
}

/**
 * The offset of the first byte that does not begin a valid UTF-8 sequence (a stray continuation
 * byte, an overlong form, a surrogate, a code point above U+10FFFF, a sequence cut short), or -1.
 * The same rules as TextDecoder's fatal mode, which says only that something is wrong.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lower = 0xa0; // overlong
      if (b === 0xed) upper = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lower = 0x90; // overlong
      if (b === 0xf4) upper = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < lower || c > upper) return i;
      lower = 0x80;
      upper = 0xbf;
    }
    i += need + 1;
  }
  return -1;
}
