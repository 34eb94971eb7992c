/**
 * How many wrong credentials one client address may present (DESIGN 1.12: guessing is limited per
 * address): at most `max` failures within any `windowMs`, then every further attempt from that
 * address is refused until the oldest failure leaves the window. Other addresses are unaffected.
 *
 * Pure: `now` is passed in. Memory is bounded: each address keeps at most `max` timestamps, and at
 * most `maxKeys` addresses are followed; addresses are kept in order of their last failure, so the
 * stalest are dropped first (those whose failures have all left the window before any other).
 */

export interface AttemptLimitOptions {
  /** Failures allowed within the window. */
  max: number;
  windowMs: number;
  /** Addresses followed at once; beyond it, the one that failed least recently is forgotten. */
  maxKeys: number;
}

export const DEFAULT_ATTEMPT_LIMIT: AttemptLimitOptions = { max: 10, windowMs: 60_000, maxKeys: 10_000 };

export class AttemptLimiter {
  /** Per key, its failures' times, oldest first; the Map's order is that of each key's last failure. */
  private readonly failures = new Map<string, number[]>();

  constructor(readonly options: AttemptLimitOptions = DEFAULT_ATTEMPT_LIMIT) {
    if (!(options.max >= 1) || !(options.windowMs > 0) || !(options.maxKeys >= 1)) {
      throw new Error(`attempt limit needs max >= 1, windowMs > 0 and maxKeys >= 1, got ${JSON.stringify(options)}`);
    }
  }

  /** Milliseconds until `key` may try again; 0: it may now. */
  blockedForMs(key: string, now: number): number {
    const times = this.live(key, now);
    if (times === undefined || times.length < this.options.max) return 0;
    return times[times.length - this.options.max]! + this.options.windowMs - now;
  }

  /** Records one failure of `key`; returns how long it is now blocked (0: it may still try). */
  fail(key: string, now: number): number {
    this.forgetStale(now);
    const times = this.live(key, now) ?? [];
    times.push(now);
    if (times.length > this.options.max) times.splice(0, times.length - this.options.max);
    this.failures.delete(key); // re-inserted last: the most recent failure
    this.failures.set(key, times);
    while (this.failures.size > this.options.maxKeys) this.failures.delete(this.failures.keys().next().value!);
    return this.blockedForMs(key, now);
  }

  /** How many addresses are followed now. */
  get size(): number {
    return this.failures.size;
  }

  /** `key`'s failures still within the window (dropping it when none are). */
  private live(key: string, now: number): number[] | undefined {
    const times = this.failures.get(key);
    if (times === undefined) return undefined;
    const cutoff = now - this.options.windowMs;
    let stale = 0;
    while (stale < times.length && times[stale]! <= cutoff) stale++;
    if (stale === times.length) {
      this.failures.delete(key);
      return undefined;
    }
    if (stale > 0) times.splice(0, stale);
    return times;
  }

  /** Drops, from the front (least recent last failure), every key whose failures all left the window. */
  private forgetStale(now: number): void {
    const cutoff = now - this.options.windowMs;
    for (const [key, times] of this.failures) {
      if (times[times.length - 1]! > cutoff) break;
      this.failures.delete(key);
    }
  }
}

/**
 * The key a client address is limited under: an IPv4 address as it is (an IPv4-mapped IPv6 one
 * too), an IPv6 address by its /64 (one host usually holds a whole /64), anything else as given.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return "unknown";
  const bare = address.replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(":")) return bare;
  const groups = expandIpv6(bare);
  return groups === null ? bare : `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address (no leading zeros), or null when it is not one. */
function expandIpv6(addr: string): string[] | null {
  const halves = addr.split("::");
  if (halves.length > 2) return null;
  const part = (s: string) => (s === "" ? [] : s.split(":"));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 was handled above; others) counts as two groups.
  const last = tail.length ? tail : head;
  if (last.length && last[last.length - 1]!.includes(".")) {
    const v4 = last.pop()!.split(".").map(Number);
    if (v4.length !== 4 || v4.some((n) => !(n >= 0 && n <= 255))) return null;
    last.push(((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
