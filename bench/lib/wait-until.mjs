import { setTimeout as sleep } from 'node:timers/promises';
import { BenchTimeoutError } from './bench-errors.mjs';

/**
 * @template T
 * Polls `probe` until it returns a truthy value, and returns that value. Errors thrown by the probe end the
 * wait at once (a crashed process should not be waited on until the deadline).
 * @param {() => T | Promise<T>} probe
 * @param {object} options
 * @param {number} options.timeoutMs give up after this many milliseconds
 * @param {number} [options.intervalMs] pause between probes in milliseconds (default 20)
 * @param {string} options.what what is awaited, in words, for the timeout message
 * @returns {Promise<NonNullable<T>>}
 */
export async function waitUntil(probe, { timeoutMs, intervalMs = 20, what }) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return /** @type {NonNullable<T>} */ (value);
    if (performance.now() >= deadline) throw new BenchTimeoutError(what, timeoutMs);
    await sleep(intervalMs);
  }
}
