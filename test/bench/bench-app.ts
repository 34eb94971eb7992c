// The app the benchmarks deploy (npm run bench): no-op functions, so what is measured is gantry.
import { App } from "gantry";

const app = new App("gantry-bench");

/** Warm-call latency and throughput: many inputs at once in one container, kept warm. */
export const noop = app.function({ maxInputs: 50, maxContainers: 2, scaledownWindow: 600, retries: 0 }, async function noop(x: unknown) {
  return x;
});

/** The container shapes of the shapes bench (issue 25): containers × inputs each, kept warm. */
export const noop1x1 = app.function({ maxInputs: 1, maxContainers: 1, scaledownWindow: 600, retries: 0 }, async function noop1x1(x: unknown) {
  return x;
});
export const noop4x8 = app.function({ maxInputs: 8, maxContainers: 4, scaledownWindow: 600, retries: 0 }, async function noop4x8(x: unknown) {
  return x;
});

/** Cold calls: scales to zero 2 s after its last call. */
export const cold = app.function({ maxInputs: 1, maxContainers: 1, scaledownWindow: 2, retries: 0 }, async function cold(x: unknown) {
  return x;
});

/** Scale: one call holds its only slot until its container goes, so the rest stay queued. */
export const held = app.function({ maxInputs: 1, maxContainers: 1, scaledownWindow: 600, retries: 0 }, async function held() {
  await new Promise(() => {});
});

export default app;
