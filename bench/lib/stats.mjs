/**
 * @typedef {object} Spread
 * @property {number} median
 * @property {number} min
 * @property {number} max
 * @property {number} n how many values
 */

/**
 * Median (mean of the two middle values for an even count), minimum and maximum.
 * @param {readonly number[]} values
 * @returns {Spread | undefined} undefined for no values
 */
export function spread(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return undefined;
  const at = (/** @type {number} */ i) => /** @type {number} */ (sorted[i]);
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
  return { median, min: at(0), max: at(n - 1), n };
}
