/** The per-address limit on wrong tokens (daemon/core/attempt-limit.ts), on a fake clock. */
import { describe, expect, it } from "vitest";
import { addressKey, AttemptLimiter } from "../../daemon/core/attempt-limit.js";

const T0 = 1_700_000_000_000;
const limiter = (maxKeys = 1000) => new AttemptLimiter({ max: 10, windowMs: 60_000, maxKeys });

describe("AttemptLimiter", () => {
  it("lets an address fail 10 times, then holds it back until the oldest failure is a minute old", () => {
    const l = limiter();
    for (let i = 0; i < 9; i++) expect(l.fail("1.2.3.4", T0 + i * 1000)).toBe(0);
    expect(l.blockedForMs("1.2.3.4", T0 + 9000)).toBe(0);
    // The tenth failure: held back until the first leaves the window (at T0 + 60 s).
    expect(l.fail("1.2.3.4", T0 + 9000)).toBe(51_000);
    expect(l.blockedForMs("1.2.3.4", T0 + 30_000)).toBe(30_000);
    expect(l.blockedForMs("1.2.3.4", T0 + 59_999)).toBe(1);
    // Then one more try (a sliding window: the others are still in it).
    expect(l.blockedForMs("1.2.3.4", T0 + 60_000)).toBe(0);
    expect(l.fail("1.2.3.4", T0 + 60_000)).toBe(1000); // held back again until the second leaves
    // Once every failure left the window the address is forgotten.
    expect(l.blockedForMs("1.2.3.4", T0 + 200_000)).toBe(0);
    expect(l.size).toBe(0);
  });

  it("holds back only the address that failed", () => {
    const l = limiter();
    for (let i = 0; i < 10; i++) l.fail("10.0.0.1", T0);
    expect(l.blockedForMs("10.0.0.1", T0)).toBe(60_000);
    expect(l.blockedForMs("10.0.0.2", T0)).toBe(0);
    expect(l.blockedForMs("127.0.0.2", T0)).toBe(0);
    expect(l.fail("10.0.0.2", T0)).toBe(0);
  });

  it("keeps bounded memory under a flood of addresses, forgetting the stalest first", () => {
    const l = limiter(100);
    for (let i = 0; i < 10; i++) l.fail("victim-blocked", T0); // an address held back now
    let most = 0;
    for (let i = 0; i < 100_000; i++) {
      l.fail(`flood-${i}`, T0 + 1 + i);
      most = Math.max(most, l.size);
    }
    expect(most).toBe(100);
    expect(l.size).toBe(100);
    // The flood's newest addresses are the ones kept (and it cannot hold more than max timestamps each).
    expect(l.blockedForMs("flood-99999", T0 + 100_001)).toBe(0);
    for (let i = 0; i < 50; i++) l.fail("flood-99999", T0 + 100_001);
    expect(l.blockedForMs("flood-99999", T0 + 100_001)).toBe(60_000);
  });

  it("drops addresses whose failures are all older than the window when new ones fail", () => {
    const l = limiter();
    for (let i = 0; i < 500; i++) l.fail(`old-${i}`, T0);
    expect(l.size).toBe(500);
    l.fail("new", T0 + 60_001);
    expect(l.size).toBe(1);
  });

  it("refuses nonsense options", () => {
    expect(() => new AttemptLimiter({ max: 0, windowMs: 1, maxKeys: 1 })).toThrow(/max >= 1/);
  });
});

describe("addressKey", () => {
  it("keys IPv4 by address, IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
    expect(addressKey("127.0.0.1")).toBe("127.0.0.1");
    expect(addressKey("::ffff:127.0.0.2")).toBe("127.0.0.2");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:DB8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:0001:0002::")).toBe("2001:db8:1:2::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("2001:db8::1.2.3.4")).toBe("2001:db8:0:0::/64");
    expect(addressKey(undefined)).toBe("unknown");
  });
});
