/** Sums the samples of one metric in Prometheus text format, optionally only those with a label value. */
export function sumMetric(text: string, name: string, label?: { name: string; value: string }): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (label && !rest.includes(`${label.name}="${label.value}"`)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}
