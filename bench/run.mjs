#!/usr/bin/env node
// Mailroom's benchmark: Mailroom against Postfix as a queueing relay, a plain BullMQ + nodemailer
// pipeline and a naive sender, each delivering the same personalized 2 KB newsletter to one sink on
// 127.0.0.1, interleaved round by round. Prints a Markdown table and writes the figures as JSON.
//   npm run bench                           N=20000, 3 rounds, every available system
//   npm run bench -- --smoke                N=300, 1 round
//   npm run bench -- --rtt-ms 30            the same through a proxy adding a 30 ms round trip
//   node bench/run.mjs --help
// See docs/benchmarks.md for what is measured and how to read it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { USAGE, parseBenchArgs } from './lib/bench-args.mjs';
import { BenchArgsError } from './lib/bench-errors.mjs';
import { installSignalCleanup, runCleanups } from './lib/cleanup.mjs';
import { machineFacts } from './lib/machine-facts.mjs';
import { markdownReport } from './lib/markdown-report.mjs';
import { measureRun } from './lib/measure-run.mjs';
import { smtpSinkBinary } from './lib/smtp-sink.mjs';
import { summarizeRounds } from './lib/summarize-rounds.mjs';
import { NEWSLETTER_BODY_BYTES, NEWSLETTER_HTML_BYTES, NEWSLETTER_TEXT_BYTES } from './lib/newsletter.mjs';
import { MAILROOM_ID, benchSystems } from './systems/index.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

/** @param {string} line */
const say = (line) => process.stderr.write(`${line}\n`);

/** @returns {Promise<number>} the exit code */
async function main() {
  /** @type {import('./lib/bench-args.mjs').BenchArgs} */
  let args;
  try {
    args = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    return usageError(err);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const known = benchSystems(args);
  const ids = known.map((s) => s.id);
  const unknown = (args.systems ?? []).filter((id) => !ids.includes(id));
  if (unknown.length > 0) {
    say(`unknown system(s): ${unknown.join(', ')} (known: ${ids.join(', ')})`);
    return 2;
  }
  const wanted = args.systems ? known.filter((s) => args.systems?.includes(s.id)) : known;
  /** @type {Record<string, Record<string, unknown>>} */
  let settingsById;
  try {
    // Worked out before anything starts, so that options a system cannot take fail at once.
    const run = { connections: args.connections, rttMs: args.rttMs };
    settingsById = Object.fromEntries(wanted.map((s) => [s.id, { label: s.label, ...s.settings(run) }]));
  } catch (err) {
    return usageError(err);
  }
  /** @type {{ id: string, reason: string }[]} */
  const skipped = [];
  const systems = wanted.filter((s) => {
    const reason = s.unavailableReason();
    if (reason) skipped.push({ id: s.id, reason });
    return !reason;
  });
  if (args.systems && skipped.length > 0) {
    for (const { id, reason } of skipped) say(`${id} cannot run here: ${reason}`);
    return 2;
  }
  for (const { id, reason } of skipped) say(`skipping ${id}: ${reason}`);
  if (systems.length === 0) {
    say('no system to run');
    return 2;
  }
  installSignalCleanup();
  const sinkKind = args.sink === 'auto' ? (smtpSinkBinary() ? 'smtp-sink' : 'node') : args.sink;
  if (sinkKind === 'node') {
    say(
      'sink: the Node fallback (smtp-sink is not installed or --sink node was given; ' +
        'Debian: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)',
    );
  }

  const machine = machineFacts();
  const startedAt = new Date();
  say(
    `benchmark: N=${args.n}, ${args.rounds} round(s), systems ${systems.map((s) => s.id).join(', ')}, ` +
      `sink ${sinkKind}, ${args.connections} connections, ` +
      `${args.rttMs > 0 ? `${args.rttMs} ms added round trip` : 'no added latency'}, ` +
      `${args.timeoutS} s per run at most; load average ${machine.loadAverage.join(' ')}`,
  );
  /** @type {import('./lib/summarize-rounds.mjs').RoundRecord[]} */
  const rounds = [];
  for (let round = 1; round <= args.rounds; round++) {
    // Rotating the order spreads warm-up effects and slow drifts of the machine over every system.
    const shift = (round - 1) % systems.length;
    const order = [...systems.slice(shift), ...systems.slice(0, shift)];
    /** @type {import('./lib/summarize-rounds.mjs').RoundRecord} */
    const record = { round, order: order.map((s) => s.id), runs: {} };
    rounds.push(record);
    for (const system of order) {
      try {
        const figures = await measureRun(system, {
          n: args.n,
          sinkKind,
          timeoutMs: args.timeoutS * 1000,
          steadyMaxS: args.steadyMaxS,
          connections: args.connections,
          rttMs: args.rttMs,
        });
        record.runs[system.id] = figures;
        say(
          `round ${round}/${args.rounds} ${system.id}: ${Math.round(figures.msgsPerSecond)} msgs/s ` +
            `(${figures.delivered} in ${figures.seconds.toFixed(1)} s${figures.timeBoxed ? ', time box' : ''}, ` +
            `machine ${Math.round(figures.cpu.box.busyPercent)} % busy)`,
        );
      } catch (err) {
        const code = /** @type {{ code?: unknown }} */ (err)?.code;
        const message = err instanceof Error ? err.message : String(err);
        record.runs[system.id] = {
          error: { code: typeof code === 'string' ? code : 'ERR_BENCH_RUN', message },
        };
        say(`round ${round}/${args.rounds} ${system.id}: FAILED: ${message}`);
      }
    }
  }

  const summaries = summarizeRounds(rounds, systems);
  const mailroomIds = systems.map((s) => s.id).filter((id) => id.startsWith(MAILROOM_ID));
  process.stdout.write(
    markdownReport({
      n: args.n,
      rounds: args.rounds,
      sink: sinkKind,
      connections: args.connections,
      rttMs: args.rttMs,
      steadyMaxS: args.steadyMaxS,
      machine,
      summaries,
      mailroomIds,
      skipped,
    }),
  );
  const out =
    args.out ?? join(RESULTS_DIR, `bench-${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const results = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    machine,
    loadAverageAtEnd: machineFacts().loadAverage,
    settings: {
      n: args.n,
      rounds: args.rounds,
      sink: sinkKind,
      connections: args.connections,
      rttMs: args.rttMs,
      steadyMaxS: args.steadyMaxS,
      timeoutS: args.timeoutS,
      message: {
        bodyBytes: NEWSLETTER_BODY_BYTES,
        textBytes: NEWSLETTER_TEXT_BYTES,
        htmlBytes: NEWSLETTER_HTML_BYTES,
        structure: 'multipart/alternative, one recipient, personalized by name',
      },
      systems: Object.fromEntries(systems.map((s) => [s.id, settingsById[s.id]])),
    },
    skipped,
    rounds,
    summary: summaries,
  };
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  say(`results: ${out}`);
  return rounds.some((r) => Object.values(r.runs).some((run) => 'error' in run)) ? 1 : 0;
}

/**
 * Prints a command-line error and the usage; anything else is rethrown.
 * @param {unknown} err
 * @returns {number} the exit code, 2
 */
function usageError(err) {
  if (!(err instanceof BenchArgsError)) throw err;
  say(`${err.message}\n${USAGE}`);
  return 2;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (/** @type {unknown} */ err) => {
    say(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await runCleanups();
    process.exit(1);
  });
