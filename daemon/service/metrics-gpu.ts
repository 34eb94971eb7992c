/**
 * Samples each GPU's utilization and memory in use every few seconds (issue 23) from nvidia-smi,
 * into a bounded ring (daemon/core/gpu-samples.ts): the GPUs page's charts and `gantry top`.
 * Nothing runs on a machine without GPUs; a tick is skipped while the last one still runs; a
 * reading nvidia-smi does not give (or a failing nvidia-smi) is a null sample, said once in the log.
 */
import type { GpuHistoryView } from "../../protocol/metrics.js";
import { GpuSamples, type GpuReading } from "../core/gpu-samples.js";
import type { Logger } from "../logger.js";

export interface GpuSamplerDeps {
  /** The GPUs this machine has now. */
  inventory: () => ReadonlyArray<{ index: number; uuid: string; name: string; memoryMiB: number }>;
  /** Each GPU's utilization and memory now (nvidia-smi); null: no way to read them here (a cluster's GPUs are on other nodes). */
  usage: (() => Promise<GpuReading[]>) | null;
  log: Logger;
  clock: () => number;
  sampleMs: number;
  samples: number;
}

export class GpuSampler {
  private readonly ring: GpuSamples;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private failing = false;

  constructor(private readonly d: GpuSamplerDeps) {
    this.ring = new GpuSamples(d.samples);
  }

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.d.sampleMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one sample of every GPU now (skipped while the last one runs); resolves once stored. */
  tick(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    const gpus = this.d.inventory();
    if (!gpus.length) return Promise.resolve();
    this.inFlight = this.read()
      .then((readings) => this.ring.add(this.d.clock(), gpus.map((g) => g.index), readings))
      .catch((err: Error) => this.d.log.warn("a GPU sample was not stored", { err: err.message }))
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async read(): Promise<GpuReading[]> {
    if (!this.d.usage) return [];
    try {
      const readings = await this.d.usage();
      if (this.failing) this.d.log.info("nvidia-smi reports GPU use again");
      this.failing = false;
      return readings;
    } catch (err) {
      if (!this.failing) this.d.log.warn("nvidia-smi did not report GPU use; samples are empty until it does", { err: (err as Error).message.split("\n")[0] });
      this.failing = true;
      return [];
    }
  }

  /** Each GPU's last reading (null values where none was had). */
  latest(): GpuReading[] {
    return this.d.inventory().map((g) => this.ring.latest(g.index) ?? { index: g.index, utilization_pct: null, memory_used_mib: null });
  }

  /** Each GPU's samples of the last `samples × sampleMs`, oldest first. */
  view(): GpuHistoryView {
    const since = this.d.clock() - this.d.samples * this.d.sampleMs;
    return {
      sample_s: this.d.sampleMs / 1000,
      gpus: this.d.inventory().map((g) => ({ index: g.index, uuid: g.uuid, name: g.name, memory_mib: g.memoryMiB, samples: this.ring.samples(g.index, since) })),
    };
  }
}
