import { describe, expect, it } from "vitest";
import { newCallId, isCallId } from "../../daemon/core/ids.js";
import { pooledRandom } from "../../daemon/service/random-pool.js";

describe("pooledRandom", () => {
  it("hands out the asked number of bytes, different each time, across refills", () => {
    const random = pooledRandom(64);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const b = random(16);
      expect(b.length).toBe(16);
      seen.add(Buffer.from(b).toString("hex"));
    }
    expect(seen.size).toBe(100);
    expect(random(100).length).toBe(100); // larger than the pool: asked for directly
  });

  it("makes valid, distinct call IDs", () => {
    const random = pooledRandom();
    const ids = Array.from({ length: 1000 }, () => newCallId(1_700_000_000_000, random));
    expect(ids.every(isCallId)).toBe(true);
    expect(new Set(ids).size).toBe(1000);
  });
});
