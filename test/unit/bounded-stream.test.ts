import { Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BoundedStream, MAX_UNSENT_BYTES } from "../../daemon/api/bounded-stream.js";

/** A response whose client takes nothing until `release()`: what is written stays unsent (writableLength grows). */
function slowSink() {
  const held: Array<() => void> = [];
  const written: string[] = [];
  const sink = new Writable({
    autoDestroy: false, // as a response: finished is not closed
    decodeStrings: false,
    write(chunk: string, _enc, done) {
      written.push(String(chunk));
      held.push(done);
    },
  });
  const release = () => {
    // Each write completes in turn; the next one is handed over only after the last completes.
    const step = () => {
      const done = held.shift();
      if (done) {
        done();
        setImmediate(step);
      }
    };
    step();
  };
  return { sink, written, release };
}

/** A response whose client reads everything at once. */
function fastSink() {
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done();
    },
  });
  return { sink, bytes: () => bytes };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("BoundedStream", () => {
  it("keeps 8 MiB as the bound, one place for every streamed answer", () => {
    expect(MAX_UNSENT_BYTES).toBe(8 * 1024 * 1024);
  });

  it("cuts off a client that takes nothing once it holds more than the bound: a last line, then the end", () => {
    const { sink, written } = slowSink();
    const onCutOff = vi.fn();
    const out = new BoundedStream(sink, { maxUnsentBytes: 1000, farewell: () => "too slow\n", onCutOff });
    const line = "x".repeat(99) + "\n";
    let accepted = 0;
    while (out.write(line)) accepted++;
    // Lines go out while 1000 bytes or fewer wait unsent; the one after that finds no room.
    expect(accepted).toBe(11);
    expect(out.cutOff).toBe(true);
    expect(out.open).toBe(false);
    expect(sink.writableEnded).toBe(true);
    expect(onCutOff).toHaveBeenCalledTimes(1);
    expect(out.write(line)).toBe(false); // nothing more after the end, and no second cut-off
    expect(onCutOff).toHaveBeenCalledTimes(1);
    expect(sink.writableLength).toBeLessThanOrEqual(1000 + line.length + "too slow\n".length);
    out.cutOffNow();
    expect(onCutOff).toHaveBeenCalledTimes(1);
    expect(written[0]).toBe(line); // the first is being written; the rest wait, the farewell last
  });

  it("sends every line to a client that reads, however much passes through", () => {
    const { sink, bytes } = fastSink();
    const out = new BoundedStream(sink, { maxUnsentBytes: 1000, farewell: () => "too slow\n" });
    const line = "y".repeat(499) + "\n";
    for (let i = 0; i < 200; i++) expect(out.write(line)).toBe(true);
    expect(out.cutOff).toBe(false);
    out.end();
    expect(bytes()).toBe(200 * line.length);
  });

  it("offer() skips progress while the client has no room, and never cuts it off", () => {
    const { sink } = slowSink();
    const out = new BoundedStream(sink, { maxUnsentBytes: 100 });
    expect(out.offer("a".repeat(150))).toBe(true);
    expect(out.hasRoom()).toBe(false);
    expect(out.offer("b")).toBe(false);
    expect(out.cutOff).toBe(false);
    expect(out.open).toBe(true);
  });

  it("disconnects a cut-off client that still takes nothing after closeAfterMs", () => {
    vi.useFakeTimers();
    const { sink } = slowSink();
    const out = new BoundedStream(sink, { maxUnsentBytes: 10, closeAfterMs: 5_000 });
    out.write("0123456789ab");
    out.write("more");
    expect(out.cutOff).toBe(true);
    vi.advanceTimersByTime(4_999);
    expect(sink.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(sink.destroyed).toBe(true);
  });

  it("leaves connected a cut-off client that takes what was sent", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { sink, written, release } = slowSink();
    const out = new BoundedStream(sink, { maxUnsentBytes: 10, closeAfterMs: 5_000, farewell: () => "bye\n" });
    out.write("0123456789ab");
    out.write("more");
    const finished = new Promise<void>((resolve) => sink.once("finish", resolve));
    release();
    await finished;
    expect(written).toEqual(["0123456789ab", "bye\n"]);
    vi.advanceTimersByTime(10_000);
    expect(sink.destroyed).toBe(false);
  });
});
