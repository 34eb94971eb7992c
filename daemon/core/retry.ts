import type { RetryPolicy } from "../../protocol/function-spec.js";

/** Delay before retry number `retry` (1 = first retry): initialDelay * coefficient^(retry-1), capped. */
export function retryDelayMs(policy: RetryPolicy, retry: number): number {
  const raw = policy.initialDelayMs * Math.pow(policy.backoffCoefficient, Math.max(0, retry - 1));
  return Math.min(raw, policy.maxDelayMs);
}

/** Attempts are numbered from 1; attempt n has used n-1 retries. */
export function retriesLeft(policy: RetryPolicy, attempt: number): number {
  return Math.max(0, policy.maxRetries - (attempt - 1));
}
