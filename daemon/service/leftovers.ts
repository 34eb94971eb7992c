/**
 * Containers (Swarm services, on a cluster) labelled with this daemon's id that it no longer
 * knows: left behind when a removal failed (the engine away at that moment), or made by hand with
 * its labels. The start removes those of an earlier run (daemon.ts); this sweep removes later ones.
 * A container being created right now is already known (its id is taken before Docker makes it),
 * but to be safe only one seen unknown for a whole margin, in two sweeps or more, is removed: mark,
 * then reclaim if still unknown (bullmq's stalled-job check).
 */
import type { ContainerRuntime, OwnedContainer } from "../docker/types.js";
import type { Logger } from "../logger.js";

export interface LeftoverMarks {
  /** The listed containers to remove now. */
  remove: OwnedContainer[];
  /** Since when each listed container unknown to the daemon has been seen unknown (by engine id), for the next sweep. */
  unknownSince: Map<string, number>;
}

/**
 * Pure: of the containers listed with this daemon's label, those unknown to it (`known`: gantry
 * container ids) since `marginMs` or longer go; every unknown one keeps its mark (known ones and ones
 * no longer listed lose it).
 */
export function leftoverMarks(
  listed: readonly OwnedContainer[],
  known: ReadonlySet<string>,
  unknownSince: ReadonlyMap<string, number>,
  nowMs: number,
  marginMs: number,
): LeftoverMarks {
  const remove: OwnedContainer[] = [];
  const marks = new Map<string, number>();
  for (const c of listed) {
    if (c.containerId && known.has(c.containerId)) continue;
    const since = unknownSince.get(c.dockerId) ?? nowMs;
    marks.set(c.dockerId, since); // kept for one being removed too: if its removal fails, the next sweep tries again
    if (nowMs - since >= marginMs) remove.push(c);
  }
  return { remove, unknownSince: marks };
}

export interface LeftoverSweepDeps {
  runtime: Pick<ContainerRuntime, "listOwned" | "remove" | "engine">;
  daemonId: string;
  /** The gantry ids (`ct-…`) of the containers the daemon tracks, starting ones included. */
  known: () => Iterable<string>;
  intervalMs: number;
  marginMs: number;
  log: Logger;
  clock?: () => number;
}

/** Runs the sweep every `intervalMs` (a tick is skipped while the last one runs, or while the engine is away). */
export class LeftoverSweep {
  private unknownSince = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private readonly now: () => number;

  constructor(private readonly d: LeftoverSweepDeps) {
    this.now = d.clock ?? Date.now;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.d.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running || this.d.runtime.engine.down !== null) return;
    await this.sweepOnce().catch((err) => this.d.log.warn("the sweep for leftover containers failed", { err: (err as Error).message }));
  }

  /** One sweep; resolves with how many containers it removed. */
  sweepOnce(): Promise<number> {
    this.running ??= this.sweep().finally(() => (this.running = null));
    return this.running;
  }

  private async sweep(): Promise<number> {
    const listed = await this.d.runtime.listOwned(this.d.daemonId);
    // Read after the list: a container listed was registered before Docker made it, so it is known here.
    const known = new Set(this.d.known());
    const { remove, unknownSince } = leftoverMarks(listed, known, this.unknownSince, this.now(), this.d.marginMs);
    this.unknownSince = unknownSince;
    const results = await Promise.allSettled(remove.map((c) => this.d.runtime.remove(c.dockerId)));
    const removed = remove.filter((_, i) => results[i]!.status === "fulfilled");
    if (removed.length) {
      this.d.log.info("removed leftover containers this daemon no longer knew", { count: removed.length, containers: removed.map((c) => c.containerId || c.dockerId.slice(0, 12)) });
    }
    for (const [i, r] of results.entries()) {
      if (r.status === "rejected") this.d.log.warn("could not remove a leftover container", { docker_id: remove[i]!.dockerId, err: (r.reason as Error).message });
    }
    return removed.length;
  }

  /** Stops the timer and waits for a sweep under way. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }
}
