/**
 * The daemon's rolling history of calls (issue 23): per function and for all functions together,
 * one bucket a minute for the last hour (protocol/metrics.ts MetricsPoint). Kept in memory only,
 * and bounded: each series is a ring of `buckets` slots, each slot's durations and queue waits a
 * reservoir of at most `reservoir` values (a uniform sample of the minute's, so p50/p95 are exact
 * up to that many calls a minute and estimates beyond), and at most `maxFunctions` functions are
 * followed: the least recently active is forgotten first.
 *
 * Pure: every time is passed in (ms since the epoch), and so is the randomness of the reservoirs.
 */
import type { MetricsPoint } from "../../protocol/metrics.js";

export interface MetricBucketsOptions {
  bucketMs: number;
  buckets: number;
  maxFunctions: number;
  /** Values kept per minute for percentiles, per function. */
  reservoir: number;
  /** Values kept per minute for percentiles, for all functions together. */
  reservoirAll: number;
  /** A number in [0, 1): which value a full reservoir replaces. */
  random: () => number;
}

export type Ending = "succeeded" | "failed" | "cancelled";

/** What a function (or all of them) is doing at one moment. */
export interface LiveSample {
  queued: number;
  running: number;
  containers: number;
}

export interface FunctionRef {
  app: string;
  function: string;
}

/** A uniform sample of at most `size` of the values offered (Vitter's algorithm R). */
class Reservoir {
  seen = 0;
  readonly values: number[] = [];

  offer(v: number, size: number, random: () => number): void {
    this.seen++;
    if (this.values.length < size) this.values.push(v);
    else {
      const i = Math.floor(random() * this.seen);
      if (i < size) this.values[i] = v;
    }
  }
}

interface Bucket {
  /** floor(ms / bucketMs): which minute this slot holds now. */
  minute: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  submitted: number;
  durations: Reservoir;
  waits: Reservoir;
  /** The last sample taken in this minute. */
  live: LiveSample;
}

/** One function's (or all functions') ring of minutes. */
class Series {
  readonly slots: Array<Bucket | undefined>;

  constructor(
    readonly ref: FunctionRef | null,
    size: number,
  ) {
    this.slots = new Array(size);
  }

  /** The minute's bucket, made (replacing an older minute's) when absent; null for a minute older than the slot holds. */
  at(minute: number): Bucket | null {
    const i = minute % this.slots.length;
    const b = this.slots[i];
    if (b?.minute === minute) return b;
    if (b && b.minute > minute) return null;
    const fresh: Bucket = { minute, succeeded: 0, failed: 0, cancelled: 0, submitted: 0, durations: new Reservoir(), waits: new Reservoir(), live: { queued: 0, running: 0, containers: 0 } };
    this.slots[i] = fresh;
    return fresh;
  }

  /** The minute's bucket if this series has it. */
  get(minute: number): Bucket | undefined {
    const b = this.slots[minute % this.slots.length];
    return b?.minute === minute ? b : undefined;
  }
}

/** A value and how many of the measured values it stands for (a reservoir's value, when it sampled). */
export interface Weighted {
  v: number;
  w: number;
}

/** The q-quantile (0..1) by nearest rank, each value counting its weight; null without values. */
export function quantile(values: readonly Weighted[], q: number): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a.v - b.v);
  const total = sorted.reduce((s, x) => s + x.w, 0);
  const rank = Math.max(q * total, Number.MIN_VALUE);
  let cum = 0;
  for (const x of sorted) {
    cum += x.w;
    if (cum >= rank - 1e-9) return x.v;
  }
  return sorted.at(-1)!.v;
}

/** A reservoir's values, each weighted by how many measured values it stands for. */
function weighted(r: Reservoir): Weighted[] {
  const w = r.values.length ? r.seen / r.values.length : 0;
  return r.values.map((v) => ({ v, w }));
}

const keyOf = (f: FunctionRef) => `${f.app}\u0000${f.function}`;

export class MetricBuckets {
  /** Followed functions, least recently active first (a Map keeps insertion order). */
  private readonly functions = new Map<string, Series>();
  private readonly all: Series;
  private lastTouched: string | null = null;

  constructor(readonly o: MetricBucketsOptions) {
    if (!(o.bucketMs > 0) || !(o.buckets >= 1) || !(o.maxFunctions >= 1) || !(o.reservoir >= 1) || !(o.reservoirAll >= 1)) {
      throw new Error(`metric buckets need bucketMs > 0 and buckets, maxFunctions, reservoir, reservoirAll >= 1; got ${JSON.stringify({ ...o, random: undefined })}`);
    }
    this.all = new Series(null, o.buckets);
  }

  private minute(ms: number): number {
    return Math.floor(ms / this.o.bucketMs);
  }

  /** The function's series, made when new (forgetting the least recently active beyond the cap), now the most recently active. */
  private series(f: FunctionRef): Series {
    const key = keyOf(f);
    let s = this.functions.get(key);
    if (s && this.lastTouched === key) return s;
    if (s) this.functions.delete(key);
    else s = new Series({ app: f.app, function: f.function }, this.o.buckets);
    this.functions.set(key, s);
    this.lastTouched = key;
    while (this.functions.size > this.o.maxFunctions) this.functions.delete(this.functions.keys().next().value!);
    return s;
  }

  /** Both buckets an event at `atMs` counts in: the function's and all functions'. */
  private bucketsAt(f: FunctionRef, atMs: number): Bucket[] {
    const m = this.minute(atMs);
    return [this.series(f).at(m), this.all.at(m)].filter((b): b is Bucket => b !== null);
  }

  /** A call was submitted. */
  submitted(f: FunctionRef, atMs: number): void {
    for (const b of this.bucketsAt(f, atMs)) b.submitted++;
  }

  /** A call ended; `durationS` (running to end) when it ran. */
  ended(f: FunctionRef, how: Ending, durationS: number | null, atMs: number): void {
    const [own, all] = this.bucketsAt(f, atMs);
    for (const b of [own, all]) if (b) b[how]++;
    if (durationS === null || !(durationS >= 0)) return;
    own?.durations.offer(durationS, this.o.reservoir, this.o.random);
    all?.durations.offer(durationS, this.o.reservoirAll, this.o.random);
  }

  /** A call started running for the first time, `waitS` after it was submitted. */
  started(f: FunctionRef, waitS: number, atMs: number): void {
    if (!(waitS >= 0)) return;
    const [own, all] = this.bucketsAt(f, atMs);
    own?.waits.offer(waitS, this.o.reservoir, this.o.random);
    all?.waits.offer(waitS, this.o.reservoirAll, this.o.random);
  }

  /**
   * What a function (`f`), or all of them (null), is doing at `atMs`: the minute keeps the last
   * sample. An idle function that is not followed is not followed for it.
   */
  sample(f: FunctionRef | null, live: LiveSample, atMs: number): void {
    const idle = live.queued === 0 && live.running === 0 && live.containers === 0;
    if (f !== null && idle && !this.functions.has(keyOf(f))) return;
    const b = (f === null ? this.all : this.series(f)).at(this.minute(atMs));
    if (b) b.live = { queued: live.queued, running: live.running, containers: live.containers };
  }

  /** Whether the function is followed (it had calls or containers in the last `maxFunctions` active). */
  has(f: FunctionRef): boolean {
    return this.functions.has(keyOf(f));
  }

  /** The functions followed, least recently active first. */
  followed(): FunctionRef[] {
    return [...this.functions.values()].map((s) => s.ref!);
  }

  /**
   * The last `buckets` minutes of a function (null: all of them), oldest first, the current one
   * last; minutes with nothing are zeroed. `live`: what the current minute shows as queued,
   * running and containers (now), instead of its last sample.
   */
  points(f: FunctionRef | null, nowMs: number, live?: LiveSample): MetricsPoint[] {
    const s = f === null ? this.all : this.functions.get(keyOf(f));
    const now = this.minute(nowMs);
    const out: MetricsPoint[] = [];
    for (let m = now - this.o.buckets + 1; m <= now; m++) {
      const b = s?.get(m);
      const durations = b ? weighted(b.durations) : [];
      const sampled = m === now && live ? live : (b?.live ?? { queued: 0, running: 0, containers: 0 });
      out.push({
        at: new Date(m * this.o.bucketMs).toISOString(),
        succeeded: b?.succeeded ?? 0,
        failed: b?.failed ?? 0,
        cancelled: b?.cancelled ?? 0,
        submitted: b?.submitted ?? 0,
        duration_p50_s: quantile(durations, 0.5),
        duration_p95_s: quantile(durations, 0.95),
        wait_p50_s: b ? quantile(weighted(b.waits), 0.5) : null,
        queued: sampled.queued,
        running: sampled.running,
        containers: sampled.containers,
      });
    }
    return out;
  }

  /**
   * The last `minutes` minutes (the current one included) of a function, or of all (null): calls
   * ended, failed among them, and the duration p50 (null when none ended with a duration).
   */
  recent(f: FunctionRef | null, nowMs: number, minutes: number): { ended: number; failed: number; p50_s: number | null } {
    const s = f === null ? this.all : this.functions.get(keyOf(f));
    const now = this.minute(nowMs);
    let ended = 0;
    let failed = 0;
    const durations: Weighted[] = [];
    for (let m = now - Math.min(minutes, this.o.buckets) + 1; m <= now; m++) {
      const b = s?.get(m);
      if (!b) continue;
      ended += b.succeeded + b.failed + b.cancelled;
      failed += b.failed;
      durations.push(...weighted(b.durations));
    }
    return { ended, failed, p50_s: quantile(durations, 0.5) };
  }
}
