#!/usr/bin/env node
// Prints the Markdown report of a finished benchmark again, from its JSON results (bench/run.mjs --out),
// with the summaries worked out anew from the recorded rounds.
//   node bench/report.mjs bench/results/bench-<time>.json
import { readFileSync } from 'node:fs';
import { markdownReport } from './lib/markdown-report.mjs';
import { summarizeRounds } from './lib/summarize-rounds.mjs';
import { MAILROOM_ID } from './systems/index.mjs';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bench/report.mjs <results.json>\n');
  process.exit(2);
}
/**
 * @typedef {object} SavedResults
 * @property {import('./lib/machine-facts.mjs').MachineFacts} machine
 * @property {{ n: number, rounds: number, sink: string, connections?: number, rttMs?: number, steadyMaxS?: number, systems: Record<string, { label: string }> }} settings
 * @property {{ id: string, reason: string }[]} skipped
 * @property {import('./lib/summarize-rounds.mjs').RoundRecord[]} rounds
 */
const results = /** @type {SavedResults} */ (JSON.parse(readFileSync(file, 'utf8')));
const systems = Object.entries(results.settings.systems).map(([id, { label }]) => ({ id, label }));
process.stdout.write(
  markdownReport({
    n: results.settings.n,
    rounds: results.settings.rounds,
    sink: results.settings.sink,
    connections: results.settings.connections ?? 20,
    rttMs: results.settings.rttMs ?? 0,
    steadyMaxS: results.settings.steadyMaxS ?? 60,
    machine: results.machine,
    summaries: summarizeRounds(results.rounds, systems),
    mailroomIds: systems.map((s) => s.id).filter((id) => id.startsWith(MAILROOM_ID)),
    skipped: results.skipped,
  }),
);
