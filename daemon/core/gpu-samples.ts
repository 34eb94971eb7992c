/**
 * Each GPU's utilization and memory in use over the last minutes (issue 23): a ring of at most
 * `capacity` samples per GPU, read oldest first. A reading nvidia-smi did not give is null.
 * Pure: times are passed in. At most `maxGpus` GPUs are followed (by index).
 */
import type { GpuSample } from "../../protocol/metrics.js";

export interface GpuReading {
  index: number;
  utilization_pct: number | null;
  memory_used_mib: number | null;
}

interface Ring {
  samples: Array<{ atMs: number; utilization_pct: number | null; memory_used_mib: number | null }>;
  next: number;
}

export class GpuSamples {
  private readonly rings = new Map<number, Ring>();

  constructor(
    readonly capacity: number,
    readonly maxGpus = 256,
  ) {
    if (!(capacity >= 1) || !(maxGpus >= 1)) throw new Error(`GPU samples need capacity >= 1 and maxGpus >= 1, got ${capacity} and ${maxGpus}`);
  }

  /** One sample of every GPU in `indexes`, taken at `atMs`; a GPU missing from `readings` gets nulls. */
  add(atMs: number, indexes: readonly number[], readings: readonly GpuReading[]): void {
    const byIndex = new Map(readings.map((r) => [r.index, r]));
    for (const index of indexes) {
      let ring = this.rings.get(index);
      if (!ring) {
        if (this.rings.size >= this.maxGpus) continue;
        ring = { samples: [], next: 0 };
        this.rings.set(index, ring);
      }
      const r = byIndex.get(index);
      const s = { atMs, utilization_pct: r?.utilization_pct ?? null, memory_used_mib: r?.memory_used_mib ?? null };
      if (ring.samples.length < this.capacity) ring.samples.push(s);
      else ring.samples[ring.next] = s;
      ring.next = (ring.next + 1) % this.capacity;
    }
  }

  /** A GPU's samples taken after `sinceMs`, oldest first. */
  samples(index: number, sinceMs: number): GpuSample[] {
    const ring = this.rings.get(index);
    if (!ring) return [];
    const ordered = ring.samples.length < this.capacity ? ring.samples : [...ring.samples.slice(ring.next), ...ring.samples.slice(0, ring.next)];
    return ordered.filter((s) => s.atMs > sinceMs).map((s) => ({ at: new Date(s.atMs).toISOString(), utilization_pct: s.utilization_pct, memory_used_mib: s.memory_used_mib }));
  }

  /** A GPU's last reading, if any. */
  latest(index: number): GpuReading | null {
    const ring = this.rings.get(index);
    if (!ring || !ring.samples.length) return null;
    const s = ring.samples[(ring.next - 1 + this.capacity) % this.capacity] ?? ring.samples.at(-1)!;
    return { index, utilization_pct: s.utilization_pct, memory_used_mib: s.memory_used_mib };
  }
}
