/**
 * Many calls of one function: `fn.map(inputs)` yields results in input order, `fn.spawnMap(inputs)`
 * returns the calls. Inputs are submitted in chunks (POST …/calls/batch, one transaction each) and
 * results read as NDJSON streams (POST /v1/calls/results), one per chunk, while later chunks run:
 * at most `window` calls are in flight, so memory stays bounded for any number of inputs.
 */
import type { CallOutcome } from "../protocol/api.js";
import { GantryError } from "./errors.js";
import type { Transport } from "./transport.js";

/** Calls per batch request. */
export const MAP_CHUNK = 1000;
const RESULTS_WAIT_S = 50;

export interface MapOptions {
  /** Yield a failed call's error (a GantryError) in its place, instead of throwing the first one. */
  returnExceptions?: boolean;
  /** Calls in flight at most: submitted, their results not yet yielded (default 10,000). */
  window?: number;
}

type Line = ({ index: number } & CallOutcome) | { index: number; call_id: string; not_found: true };

interface Slot {
  promise: Promise<Line>;
  resolve: (l: Line) => void;
  reject: (e: unknown) => void;
}

function slot(): Slot {
  let resolve!: (l: Line) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<Line>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // read in order later; a failure here is not unhandled
  return { promise, resolve, reject };
}

/** Takes up to n items from an iterator. */
async function take(it: AsyncIterator<unknown> | Iterator<unknown>, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

function iteratorOf(inputs: Iterable<unknown> | AsyncIterable<unknown>): AsyncIterator<unknown> | Iterator<unknown> {
  const a = inputs as AsyncIterable<unknown>;
  return typeof a[Symbol.asyncIterator] === "function" ? a[Symbol.asyncIterator]() : (inputs as Iterable<unknown>)[Symbol.iterator]();
}

export class CallBatches {
  constructor(
    private readonly transport: Transport,
    /** The function's path: /v1/apps/{app}/functions/{fn}. */
    private readonly path: string,
    /** A class's method (and instance parameters and options): each call names it. */
    private readonly target?: object,
  ) {}

  /** Submits the next chunk of inputs (each the one argument of a call); their IDs, in order. */
  async submit(chunk: unknown[]): Promise<string[]> {
    const res = await this.transport.json<{ call_ids: string[] }>("POST", `${this.path}/calls/batch`, { calls: chunk.map((x) => ({ args: [x], ...this.target })) });
    return res.call_ids;
  }

  /** IDs of calls for every input, submitted chunk by chunk. */
  async spawnMap(inputs: Iterable<unknown> | AsyncIterable<unknown>): Promise<string[]> {
    const it = iteratorOf(inputs);
    const ids: string[] = [];
    for (let chunk = await take(it, MAP_CHUNK); chunk.length; chunk = await take(it, MAP_CHUNK)) ids.push(...(await this.submit(chunk)));
    return ids;
  }

  /** Each call's view (or not found), as results arrive: slots resolve out of order. */
  private collect(ids: string[], slots: Slot[]): void {
    const run = async () => {
      let open = ids.map((_, i) => i);
      while (open.length) {
        const settled = new Set<number>();
        await this.transport.stream("POST", "/v1/calls/results", { call_ids: open.map((i) => ids[i]), wait: RESULTS_WAIT_S }, (l) => {
          const line = l as Line;
          const at = open[line.index]!;
          settled.add(at);
          slots[at]!.resolve(line);
        });
        open = open.filter((i) => !settled.has(i));
      }
    };
    run().catch((err) => slots.forEach((s) => s.reject(err)));
  }

  /** Views of the calls for every input, in input order; `window` bounds the calls in flight. */
  async *views(inputs: Iterable<unknown> | AsyncIterable<unknown>, window = 10_000): AsyncGenerator<Line> {
    const it = iteratorOf(inputs);
    const chunks: Slot[][] = [];
    let inFlight = 0;
    let exhausted = false;
    for (;;) {
      while (!exhausted && inFlight < Math.max(window, 1)) {
        const chunk = await take(it, Math.min(MAP_CHUNK, Math.max(window, 1)));
        if (!chunk.length) {
          exhausted = true;
          break;
        }
        const ids = await this.submit(chunk);
        const slots = ids.map(() => slot());
        this.collect(ids, slots);
        chunks.push(slots);
        inFlight += slots.length;
      }
      const head = chunks.shift();
      if (!head) return;
      for (const s of head) {
        const line = await s.promise;
        inFlight--;
        yield line;
      }
    }
  }
}

/** A line's outcome: the result, or the error get() would raise. */
export function outcome<R>(line: Line, settle: (v: CallOutcome) => R): { ok: true; value: R } | { ok: false; error: unknown } {
  if ("not_found" in line) return { ok: false, error: new GantryError(`call ${line.call_id} is not known to the daemon`, "not_found") };
  try {
    return { ok: true, value: settle(line) };
  } catch (error) {
    return { ok: false, error };
  }
}
