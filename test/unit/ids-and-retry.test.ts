import { describe, it, expect } from "vitest";
import { CALL_ID_PATTERN, CallIds, isCallId, makeId, newCallId, type RandomSource } from "../../daemon/core/ids.js";
import { retriesLeft, retryDelayMs } from "../../daemon/core/retry.js";
import type { RetryPolicy } from "../../protocol/function-spec.js";

/** A deterministic random source: each call returns the next bytes of a simple counter. */
function counterRandom(seed = 0): RandomSource {
  let n = seed;
  return (bytes) => Uint8Array.from({ length: bytes }, () => n++ & 0xff);
}
const fill = (byte: number): RandomSource => (bytes) => new Uint8Array(bytes).fill(byte);

describe("call ids", () => {
  it("are fc- and 26 base32 characters", () => {
    const random = counterRandom();
    for (const t of [0, 1, 1_700_000_000_000, 2 ** 40]) {
      const id = newCallId(t, random);
      expect(id).toMatch(/^fc-[0-9a-z]{26}$/);
      expect(id).toMatch(CALL_ID_PATTERN);
      expect(isCallId(id)).toBe(true);
    }
  });

  it("ask the random source for 16 bytes and use Crockford base32 (no i, l, o, u)", () => {
    const asked: number[] = [];
    const id = newCallId(Date.UTC(2025, 0, 1), (n) => {
      asked.push(n);
      return Uint8Array.from({ length: n }, (_, i) => i * 2);
    });
    expect(asked).toEqual([16]);
    expect(id.slice(3)).not.toMatch(/[ilou]/);
    expect(id.slice(-16)).toBe("02468acegjmprtwy");
  });

  it("sort in creation order across milliseconds, whatever the random part", () => {
    const times = [0, 1, 31, 32, 33, 1023, 1024, 999_999, 1_700_000_000_000, 1_700_000_000_001, 2 ** 45];
    // earlier ids get the "largest" random part, later ones the smallest
    const ids = times.map((t, i) => newCallId(t, fill(i % 2 === 0 ? 31 : 0)));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("two ids in the same millisecond differ by their random part", () => {
    const random = counterRandom(7);
    const a = newCallId(5000, random);
    const b = newCallId(5000, random);
    expect(a).not.toBe(b);
    expect(a.slice(0, 13)).toBe(b.slice(0, 13)); // fc- + the same 10 time characters
  });

  it("from one CallIds, increase strictly within a millisecond and when the clock steps back", () => {
    // A random source that makes each later id's own random part smaller: order must still hold.
    let byte = 20;
    const ids = new CallIds((n) => new Uint8Array(n).fill(Math.max(0, byte--)));
    const made = [5000, 5000, 5000, 4999, 5000, 5001].map((t) => ids.next(t));
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(made.length);
    for (const id of made) expect(isCallId(id)).toBe(true);
    expect(made[1]!.slice(0, 13)).toBe(made[0]!.slice(0, 13)); // the time part is kept
    expect(made[5]!.slice(0, 13)).not.toBe(made[0]!.slice(0, 13)); // a later millisecond starts afresh
  });

  it("from CallIds, the successor carries past the alphabet's end and keeps 7 fresh random characters", () => {
    const ids = new CallIds(fill(31));
    const a = ids.next(0); // fc-0000000000zzzzzzzzzzzzzzzz
    const b = ids.next(0);
    expect(b > a).toBe(true);
    expect(b).toMatch(CALL_ID_PATTERN);
    expect(b.slice(0, 13)).toBe("fc-0000000001"); // nine z's carried into the time part: still above a
  });

  it("makeId takes any prefix and random length", () => {
    const id = makeId("ct", 0, fill(1), 4);
    expect(id).toBe("ct-00000000001111");
  });

  it.each([
    ["empty", ""],
    ["prefix only", "fc-"],
    ["wrong prefix", "fx-" + "0".repeat(26)],
    ["no dash", "fc" + "0".repeat(26)],
    ["too short", "fc-" + "0".repeat(25)],
    ["too long", "fc-" + "0".repeat(27)],
    ["upper case", "fc-" + "A".repeat(26)],
    ["a letter outside Crockford base32 (u)", "fc-" + "0".repeat(25) + "u"],
    ["a letter outside Crockford base32 (i)", "fc-i" + "0".repeat(25)],
    ["a path traversal", "fc-../../../../etc/passwd0000"],
    ["trailing newline", "fc-" + "0".repeat(26) + "\n"],
  ])("isCallId rejects %s", (_what, s) => {
    expect(isCallId(s)).toBe(false);
  });
});

describe("retryDelayMs", () => {
  const fixed: RetryPolicy = { maxRetries: 3, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 };
  const backoff: RetryPolicy = { maxRetries: 10, backoffCoefficient: 2, initialDelayMs: 1000, maxDelayMs: 60_000 };

  it("is fixed with coefficient 1", () => {
    expect([1, 2, 3].map((r) => retryDelayMs(fixed, r))).toEqual([1000, 1000, 1000]);
  });

  it("grows by the coefficient from initialDelay and is capped at maxDelay", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((r) => retryDelayMs(backoff, r))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000,
    ]);
  });

  it("caps even the first retry when initialDelay exceeds maxDelay", () => {
    expect(retryDelayMs({ ...backoff, initialDelayMs: 30_000, maxDelayMs: 5000 }, 1)).toBe(5000);
  });

  it("treats retry 0 like the first retry", () => {
    expect(retryDelayMs(backoff, 0)).toBe(1000);
  });

  it("allows a zero initial delay", () => {
    expect(retryDelayMs({ ...backoff, initialDelayMs: 0 }, 4)).toBe(0);
  });
});

describe("retriesLeft", () => {
  const policy: RetryPolicy = { maxRetries: 3, backoffCoefficient: 1, initialDelayMs: 1000, maxDelayMs: 1000 };

  it("counts down from maxRetries as attempts are used, never below zero", () => {
    expect([1, 2, 3, 4, 5, 9].map((a) => retriesLeft(policy, a))).toEqual([3, 2, 1, 0, 0, 0]);
    expect(retriesLeft(policy, 4, 2)).toBe(2); // two of the three earlier attempts were lost containers
  });

  it("is zero from the first attempt with no retries", () => {
    expect(retriesLeft({ ...policy, maxRetries: 0 }, 1)).toBe(0);
  });
});
