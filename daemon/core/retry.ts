import type { RetryPolicy } from "../../protocol/function-spec.js";

/** Delay before retry number `retry` (1 = first retry): initialDelay * coefficient^(retry-1), capped. */
export function retryDelayMs(policy: RetryPolicy, retry: number): number {
  const raw = policy.initialDelayMs * Math.pow(policy.backoffCoefficient, Math.max(0, retry - 1));
  return Math.min(raw, policy.maxDelayMs);
}

/**
 * Attempts are numbered from 1. Attempt n follows n-1 earlier attempts: `lost` of them ended with
 * their container lost (re-run without using a retry), the others used a retry each.
 */
export function retriesLeft(policy: RetryPolicy, attempt: number, lost = 0): number {
  return Math.max(0, policy.maxRetries - (attempt - 1 - lost));
}

/** The retries a call has used by attempt `attempt`, `lost` of its re-runs being for lost containers. */
export function retriesUsed(attempt: number, lost = 0): number {
  return Math.max(0, attempt - 1 - lost);
}
