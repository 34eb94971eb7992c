import { describe, it, expect } from "vitest";
import { CallStatus, MAX_CONTAINER_LOSSES, TERMINAL, transition, type CallState, type Transition } from "../../daemon/core/call-state.js";
import { normalizeRetries, type RetryPolicy } from "../../protocol/function-spec.js";
import { SystemErrorType, type RemoteError } from "../../protocol/remote-error.js";

const NO_RETRIES: RetryPolicy = normalizeRetries(undefined);
const userError: RemoteError = { type: "ValueError", message: "bad input", traceback: "at f()" };

const queued = (attempt = 1): CallState => ({ status: CallStatus.queued, attempt });
const running = (attempt = 1): CallState => ({ status: CallStatus.running, attempt });

function allowed(t: Transition) {
  if (!t.ok) throw new Error(`expected the transition to be allowed, got ${t.reason}: ${t.detail}`);
  return t;
}

function refused(t: Transition) {
  if (t.ok) throw new Error(`expected the transition to be refused, got ${t.from.status} -> ${t.to.status}`);
  return t;
}

describe("allowed transitions", () => {
  it("dispatch moves a queued call to running, same attempt", () => {
    const t = allowed(transition(queued(2), { type: "dispatch", attempt: 2 }, NO_RETRIES));
    expect(t.from).toEqual(queued(2));
    expect(t.to).toEqual(running(2));
    expect(t.retryInMs).toBeUndefined();
    expect(t.error).toBeUndefined();
  });

  it("succeed moves a running call to succeeded", () => {
    const t = allowed(transition(running(1), { type: "succeed", attempt: 1 }, NO_RETRIES));
    expect(t.to).toEqual({ status: CallStatus.succeeded, attempt: 1 });
    expect(t.retryInMs).toBeUndefined();
    expect(t.error).toBeUndefined();
  });

  it("fail with no retries left ends in failed and carries the user's error", () => {
    const t = allowed(transition(running(1), { type: "fail", attempt: 1, error: userError }, NO_RETRIES));
    expect(t.to).toEqual({ status: CallStatus.failed, attempt: 1 });
    expect(t.retryInMs).toBeUndefined();
    expect(t.error).toEqual(userError);
  });

  it("fail with retries left queues the next attempt after the retry delay", () => {
    const t = allowed(transition(running(1), { type: "fail", attempt: 1, error: userError }, normalizeRetries(2)));
    expect(t.to).toEqual(queued(2));
    expect(t.retryInMs).toBe(1000);
    expect(t.error).toEqual(userError);
  });

  it("timeout fails the attempt with a FunctionTimeoutError naming the timeout", () => {
    const t = allowed(transition(running(1), { type: "timeout", attempt: 1, timeoutMs: 30_000 }, NO_RETRIES));
    expect(t.to).toEqual({ status: CallStatus.failed, attempt: 1 });
    expect(t.error?.type).toBe(SystemErrorType.timeout);
    expect(t.error?.type).toBe("FunctionTimeoutError");
    expect(t.error?.message).toContain("30 s");
  });

  it("timeout with retries left is retried", () => {
    const t = allowed(transition(running(1), { type: "timeout", attempt: 1, timeoutMs: 5000 }, normalizeRetries(1)));
    expect(t.to).toEqual(queued(2));
    expect(t.retryInMs).toBe(1000);
    expect(t.error?.type).toBe("FunctionTimeoutError");
  });

  it("lose re-runs the call at once as a new attempt without using a retry, even with none", () => {
    const t = allowed(transition(running(1), { type: "lose", attempt: 1, reason: "container ct-1 was killed from outside gantry" }, NO_RETRIES));
    expect(t.to).toEqual({ status: CallStatus.queued, attempt: 2, lost: 1 });
    expect(t.retryInMs).toBe(0);
    expect(t.error).toEqual({ type: "ContainerLostError", message: "container ct-1 was killed from outside gantry", traceback: "" });
  });

  it(`lose fails the call with ContainerLostError once its containers were lost ${MAX_CONTAINER_LOSSES} times`, () => {
    const state = { ...running(4), lost: MAX_CONTAINER_LOSSES };
    const t = allowed(transition(state, { type: "lose", attempt: 4, reason: "the engine restarted" }, normalizeRetries(5)));
    expect(t.to).toEqual({ status: CallStatus.failed, attempt: 4, lost: MAX_CONTAINER_LOSSES + 1 });
    expect(t.error?.type).toBe(SystemErrorType.containerLost);
    expect(t.error?.message).toContain(`at most ${MAX_CONTAINER_LOSSES} re-runs`);
  });

  it("re-runs for lost containers leave the function's retries untouched", () => {
    // Attempts 1 and 2 were lost; attempt 3 fails: its first retry follows, with the first retry's delay.
    const state = { ...running(3), lost: 2 };
    const t = allowed(transition(state, { type: "fail", attempt: 3, error: userError }, normalizeRetries(1)));
    expect(t.to).toEqual({ status: CallStatus.queued, attempt: 4, lost: 2 });
    expect(t.retryInMs).toBe(1000);
    const last = allowed(transition({ ...running(4), lost: 2 }, { type: "fail", attempt: 4, error: userError }, normalizeRetries(1)));
    expect(last.to.status).toBe(CallStatus.failed); // its one retry is used
  });

  it("return gives a prefetched input back: queued again, same attempt, no retry or loss counted, no error", () => {
    const t = allowed(transition({ ...running(2), lost: 1 }, { type: "return", attempt: 2 }, NO_RETRIES));
    expect(t.to).toEqual({ status: CallStatus.queued, attempt: 2, lost: 1 });
    expect(t.retryInMs).toBeUndefined();
    expect(t.error).toBeUndefined();
  });

  it.each([queued(1), running(1), queued(3), running(2)])("cancel moves %o to cancelled, keeping its attempt", (state) => {
    const t = allowed(transition(state, { type: "cancel" }, normalizeRetries(5)));
    expect(t.to).toEqual({ status: CallStatus.cancelled, attempt: state.attempt });
    expect(t.retryInMs).toBeUndefined(); // never retried, even with retries left
    expect(t.error?.type).toBe("CancelledError");
  });
});

describe("refused transitions", () => {
  it.each([
    { type: "succeed", attempt: 2 },
    { type: "fail", attempt: 2, error: userError },
    { type: "timeout", attempt: 2, timeoutMs: 1000 },
    { type: "lose", attempt: 2, reason: "gone" },
    { type: "return", attempt: 2 },
  ] as const)("a late $type for attempt 2 once attempt 3 runs is a stale attempt", (event) => {
    const t = refused(transition(running(3), event, normalizeRetries(5)));
    expect(t.reason).toBe("stale_attempt");
    expect(t.detail).toContain("2");
  });

  it("a late result for attempt 2 while attempt 3 waits in the queue is a stale attempt", () => {
    const t = refused(transition(queued(3), { type: "succeed", attempt: 2 }, NO_RETRIES));
    expect(t.reason).toBe("stale_attempt");
  });

  it("succeed on a queued call is not allowed", () => {
    const t = refused(transition(queued(1), { type: "succeed", attempt: 1 }, NO_RETRIES));
    expect(t.reason).toBe("not_allowed");
    expect(t.detail).toContain("queued");
  });

  it.each([CallStatus.succeeded, CallStatus.failed, CallStatus.cancelled])("a %s call takes no further result", (status) => {
    const t = refused(transition({ status, attempt: 1 }, { type: "fail", attempt: 1, error: userError }, normalizeRetries(3)));
    expect(t.reason).toBe("not_allowed");
  });

  it.each([CallStatus.succeeded, CallStatus.failed, CallStatus.cancelled])("cancel of a %s call is not allowed", (status) => {
    expect(TERMINAL.has(status)).toBe(true);
    const t = refused(transition({ status, attempt: 2 }, { type: "cancel" }, NO_RETRIES));
    expect(t.reason).toBe("not_allowed");
    expect(t.detail).toContain(status);
  });

  it("dispatch of a running call is not allowed", () => {
    const t = refused(transition(running(1), { type: "dispatch", attempt: 1 }, NO_RETRIES));
    expect(t.reason).toBe("not_allowed");
  });

  it("dispatch of another attempt than the queued one is a stale attempt", () => {
    const t = refused(transition(queued(2), { type: "dispatch", attempt: 1 }, NO_RETRIES));
    expect(t.reason).toBe("stale_attempt");
  });
});

describe("retries", () => {
  /** Runs a call whose every attempt fails; returns the delays before each retry and the end state. */
  function failEveryAttempt(policy: RetryPolicy) {
    let state = queued(1);
    const delays: number[] = [];
    for (let guard = 0; guard < 50; guard++) {
      state = allowed(transition(state, { type: "dispatch", attempt: state.attempt }, policy)).to;
      const t = allowed(transition(state, { type: "fail", attempt: state.attempt, error: userError }, policy));
      state = t.to;
      if (t.retryInMs !== undefined) delays.push(t.retryInMs);
      if (state.status !== CallStatus.queued) return { delays, state };
    }
    throw new Error("the call never stopped retrying");
  }

  it("integer retries wait a fixed 1 s between attempts", () => {
    expect(failEveryAttempt(normalizeRetries(3)).delays).toEqual([1000, 1000, 1000]);
  });

  it("backoff multiplies the delay by the coefficient from initialDelay, capped at maxDelay", () => {
    const policy = normalizeRetries({ maxRetries: 6, backoffCoefficient: 2, initialDelay: 0.5, maxDelay: 5 });
    expect(failEveryAttempt(policy).delays).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
  });

  it("the last retry ends in failed, on attempt maxRetries + 1", () => {
    const { delays, state } = failEveryAttempt(normalizeRetries(2));
    expect(delays).toHaveLength(2);
    expect(state).toEqual({ status: CallStatus.failed, attempt: 3 });
  });

  it("no retries: the first failure is final", () => {
    const { delays, state } = failEveryAttempt(NO_RETRIES);
    expect(delays).toEqual([]);
    expect(state).toEqual({ status: CallStatus.failed, attempt: 1 });
  });
});
