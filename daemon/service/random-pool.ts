import { randomBytes, randomFillSync } from "node:crypto";
import type { RandomSource } from "../core/ids.js";

/**
 * Random bytes served from a pool refilled in one system call per `poolSize` bytes: a call ID
 * needs 16, and asking the kernel for each showed in profiles. The bytes handed out are read at
 * once (makeId) and never again, so reusing the pool after a refill is safe.
 */
export function pooledRandom(poolSize = 4096): RandomSource {
  const pool = Buffer.alloc(poolSize);
  let offset = poolSize;
  return (n) => {
    if (n > poolSize) return randomBytes(n);
    if (offset + n > poolSize) {
      randomFillSync(pool);
      offset = 0;
    }
    const out = pool.subarray(offset, offset + n);
    offset += n;
    return out;
  };
}
