import { BenchArgsError } from './bench-errors.mjs';

/**
 * Splits a system's connection budget over its worker processes as evenly as possible (the first
 * processes get one more when it does not divide): 20 over 2 workers is 10 + 10, 5 over 2 is 3 + 2.
 * @param {number} total connections to the sink, all processes together
 * @param {number} processes
 * @param {string} system for the message when the budget is too small
 * @returns {number[]} connections per process
 */
export function splitConnections(total, processes, system) {
  if (total < processes) {
    throw new BenchArgsError(
      `--connections ${total}: ${system} runs ${processes} processes and needs at least one connection each`,
    );
  }
  const base = Math.floor(total / processes);
  return Array.from({ length: processes }, (_, i) => base + (i < total % processes ? 1 : 0));
}
