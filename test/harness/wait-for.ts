/** How long and how often to poll a condition. */
export interface WaitOptions {
  /** Give up after this many milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Pause between two probes, in milliseconds. Default 25. */
  intervalMs?: number;
  /** What is awaited, in words; it ends the timeout message. Default `'condition'`. */
  what?: string;
}

/** A wait ran out of time. `cause` is the last error the probe threw, if any. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  readonly code = 'ERR_WAIT_TIMEOUT';
  constructor(
    readonly timeoutMs: number,
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(`timed out after ${timeoutMs}ms waiting for ${what}`, options);
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 25;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

const PROBE_TIMED_OUT = Symbol('probe timed out');

/**
 * Runs one probe, bounded by `ms` when it is asynchronous: a probe that never settles must not hold the
 * wait past its deadline. Synchronous probes get no timer, so that leak checks probing the active
 * handles do not see one of ours.
 */
async function probeWithin<T>(probe: () => T | Promise<T>, ms: number): Promise<T | typeof PROBE_TIMED_OUT> {
  const result = probe();
  if (!isThenable(result)) return result;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      result,
      new Promise<typeof PROBE_TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(PROBE_TIMED_OUT), Math.max(ms, 1));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `probe` until it returns something other than `undefined` and resolves with that value.
 * A probe that throws counts as "not yet"; the last error becomes the `cause` of the timeout error.
 * Always probes at least once, even with `timeoutMs: 0`.
 */
export async function waitForValue<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = Math.max(options.intervalMs ?? DEFAULT_INTERVAL_MS, 1);
  const what = options.what ?? 'condition';
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  let failed = false;
  // The bound on the count of probes is the deadline divided by the interval, plus one.
  for (;;) {
    try {
      const value = await probeWithin(probe, deadline - performance.now());
      if (value === PROBE_TIMED_OUT) {
        lastError = new Error(`the probe did not settle before the deadline`);
        failed = true;
      } else if (value !== undefined) {
        return value;
      }
    } catch (err) {
      lastError = err;
      failed = true;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      throw new WaitTimeoutError(timeoutMs, what, failed ? { cause: lastError } : undefined);
    }
    await sleep(Math.min(intervalMs, remaining));
  }
}

/** Polls `condition` until it returns (or resolves to) `true`; see {@link waitForValue}. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: WaitOptions = {},
): Promise<void> {
  await waitForValue(() => {
    const result = condition();
    return isThenable(result)
      ? Promise.resolve(result).then((ok) => (ok ? true : undefined))
      : result || undefined;
  }, options);
}
