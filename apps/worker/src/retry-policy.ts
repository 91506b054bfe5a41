export interface RetryPolicyOptions {
  /** First delay, ms. */
  baseMs: number;
  /** Cap, ms. */
  maxMs: number;
}

/** Below this remaining lifetime a retry is not scheduled; the message ends as expired instead. */
export const MIN_RETRY_WINDOW_MS = 1000;

/**
 * Capped exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of many
 * messages that failed together spread out instead of coming back as one burst.
 * attempt 1 -> base, 2 -> 2 x base, ... capped at maxMs.
 */
export function retryDelayMs(
  attemptsMade: number,
  options: RetryPolicyOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, attemptsMade - 1);
  const full = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(exponent, 40));
  return Math.round(full / 2 + (random() * full) / 2);
}

/**
 * The delay before the next attempt, shortened so the last attempt still happens before the message's
 * deadline. Returns null when there is no time left for another attempt.
 */
export function nextAttemptDelayMs(
  attemptsMade: number,
  expiresAt: number,
  now: number,
  options: RetryPolicyOptions,
  random: () => number = Math.random,
): number | null {
  const remaining = expiresAt - now - MIN_RETRY_WINDOW_MS;
  if (remaining <= 0) return null;
  return Math.min(retryDelayMs(attemptsMade, options, random), remaining);
}
