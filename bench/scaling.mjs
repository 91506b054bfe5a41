#!/usr/bin/env node
// How Mailroom's throughput grows with worker processes on one Redis, and where the limit is: N messages
// (MailroomClient.sendMany, or one campaign) delivered to Postfix's smtp-sink on loopback by 1, 2 and 4
// `mailroom worker` processes, each with the same settings, round by round. Beside msgs/s it measures what
// a message costs: Redis commands (INFO commandstats), Redis and worker CPU (/proc/<pid>/stat), and what
// the idle workers cost Redis per second. Prints a Markdown report and writes the figures as JSON.
//   npm run build && node bench/scaling.mjs                        workers 1,2,4, N = 20,000, 3 rounds
//   node bench/scaling.mjs --workers 1,2,4 --n 20000 --rounds 3
//   node bench/scaling.mjs --workers 1,2 --n 5000 --rounds 1 --handover campaign
//   node bench/scaling.mjs --help
// See docs/benchmarks.md ("Scaling with workers") and docs/scaling.md ("Throughput per prefix").
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { installSignalCleanup, runCleanups } from './lib/cleanup.mjs';
import { machineFacts } from './lib/machine-facts.mjs';
import { measureRun } from './lib/measure-run.mjs';
import { REDIS_SETTINGS } from './lib/redis-server.mjs';
import { smtpSinkBinary } from './lib/smtp-sink.mjs';
import { spread } from './lib/stats.mjs';
import { mailroomSystem } from './systems/mailroom.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const USAGE = `usage: node bench/scaling.mjs [options]
  --workers <list>             worker process counts to compare (default 1,2,4)
  --n <count>                  messages per run (default 20000)
  --rounds <count>             rounds; each runs every worker count once, in rotating order (default 3)
  --connections-per-worker <k> MAILROOM_SMTP_MAX_CONNECTIONS of each worker (default 10)
  --concurrency <k>            MAILROOM_WORKER_CONCURRENCY of each worker (default 100)
  --handover <how>             messages: N messages with MailroomClient.sendMany, 1,000 per call, while
                               the clock runs (default; end to end, the producer on the same machine);
                               preloaded: the same N enqueued into a paused queue before the clock starts,
                               which starts when the queue is resumed (the workers' drain rate alone);
                               campaign: one campaign of N recipients (MailroomClient.createCampaign)
  --idle-ms <ms>               before each run, how long the idle workers' cost is measured (default 3000)
  --sink <kind>                auto | smtp-sink | node (default auto: smtp-sink when installed)
  --timeout-s <s>              limit of one measured run (default 60 + N/50)
  --out <file>                 JSON results (default bench/results/scaling-<time>.json)
  --help`;

/** How each hand-over is described in the report. */
const HAND_OVER = {
  messages: 'sendMany, 1,000 messages per call, while the clock runs (end to end)',
  preloaded: 'sendMany into a paused queue before the clock starts; the clock starts at resume (drain rate)',
  campaign: 'one campaign (createCampaign) while the clock runs',
};

/** @param {string} line */
const say = (line) => process.stderr.write(`${line}\n`);

/**
 * @typedef {object} ScalingArgs
 * @property {number[]} workers
 * @property {number} n
 * @property {number} rounds
 * @property {number} connectionsPerWorker
 * @property {number} concurrency
 * @property {import('./systems/mailroom.mjs').MailroomHandOver} handOver
 * @property {number} idleMs
 * @property {import('./lib/smtp-sink.mjs').SinkKind} sink
 * @property {number} timeoutS
 * @property {string | undefined} out
 * @property {boolean} help
 */

/**
 * @param {string[]} argv
 * @returns {ScalingArgs}
 */
function parseScalingArgs(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '1,2,4' },
      n: { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '3' },
      'connections-per-worker': { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '100' },
      handover: { type: 'string', default: 'messages' },
      'idle-ms': { type: 'string', default: '3000' },
      sink: { type: 'string', default: 'auto' },
      'timeout-s': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const int = (/** @type {string} */ flag, /** @type {string} */ value, min = 1) => {
    const number = Number(value);
    if (value.trim() === '' || !Number.isInteger(number) || number < min) {
      throw new UsageError(`--${flag} must be an integer of at least ${min}`);
    }
    return number;
  };
  const workers = values.workers.split(',').map((w) => int('workers', w));
  if (new Set(workers).size !== workers.length) throw new UsageError('--workers lists a count twice');
  const { handover, sink } = values;
  if (handover !== 'messages' && handover !== 'campaign' && handover !== 'preloaded') {
    throw new UsageError('--handover must be messages, preloaded or campaign');
  }
  if (sink !== 'auto' && sink !== 'smtp-sink' && sink !== 'node') {
    throw new UsageError('--sink must be auto, smtp-sink or node');
  }
  const n = int('n', values.n);
  return {
    workers,
    n,
    rounds: int('rounds', values.rounds),
    connectionsPerWorker: int('connections-per-worker', values['connections-per-worker']),
    concurrency: int('concurrency', values.concurrency),
    handOver: handover,
    idleMs: int('idle-ms', values['idle-ms'], 0),
    sink,
    timeoutS:
      values['timeout-s'] === undefined ? Math.ceil(60 + n / 50) : int('timeout-s', values['timeout-s']),
    out: values.out,
    help: values.help,
  };
}

class UsageError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'UsageError';
    this.code = 'ERR_BENCH_ARGS';
  }
}

/**
 * @typedef {object} ScalingRun
 * @property {number} workers
 * @property {number} round
 * @property {import('./lib/measure-run.mjs').RunFigures} [figures]
 * @property {{ code: string, message: string }} [error]
 */

/** @returns {Promise<number>} the exit code */
async function main() {
  /** @type {ScalingArgs} */
  let args;
  try {
    args = parseScalingArgs(process.argv.slice(2));
  } catch (err) {
    say(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  installSignalCleanup();
  const sinkKind = args.sink === 'auto' ? (smtpSinkBinary() ? 'smtp-sink' : 'node') : args.sink;
  const workerEnv = { MAILROOM_WORKER_CONCURRENCY: String(args.concurrency) };
  const systems = new Map(
    args.workers.map((k) => [
      k,
      mailroomSystem({
        id: `mailroom-${k}w`,
        label: `Mailroom, ${k} worker${k === 1 ? '' : 's'}`,
        workers: k,
        env: workerEnv,
        handOver: args.handOver,
        costs: true,
        idleMs: args.idleMs,
      }),
    ]),
  );
  const first = /** @type {import('./lib/measure-run.mjs').BenchSystem} */ (systems.values().next().value);
  const unavailable = first.unavailableReason();
  if (unavailable) {
    say(unavailable);
    return 2;
  }
  const machine = machineFacts();
  const startedAt = new Date();
  say(
    `scaling: workers ${args.workers.join(', ')}, N=${args.n}, ${args.rounds} round(s), hand-over ` +
      `${args.handOver}, ${args.connectionsPerWorker} connections and concurrency ${args.concurrency} per ` +
      `worker, sink ${sinkKind}; load average ${machine.loadAverage.join(' ')}`,
  );
  /** @type {ScalingRun[]} */
  const runs = [];
  for (let round = 1; round <= args.rounds; round++) {
    const shift = (round - 1) % args.workers.length;
    const order = [...args.workers.slice(shift), ...args.workers.slice(0, shift)];
    for (const k of order) {
      const system = /** @type {import('./lib/measure-run.mjs').BenchSystem} */ (systems.get(k));
      try {
        const figures = await measureRun(system, {
          n: args.n,
          sinkKind,
          timeoutMs: args.timeoutS * 1000,
          steadyMaxS: args.timeoutS,
          connections: k * args.connectionsPerWorker,
          rttMs: 0,
        });
        runs.push({ workers: k, round, figures });
        const x = figures.extra;
        say(
          `round ${round}/${args.rounds}, ${k} worker(s): ${Math.round(figures.msgsPerSecond)} msgs/s ` +
            `(${figures.delivered} in ${figures.seconds.toFixed(1)} s; Redis ${fmt(x['cost.redisCpuPercent'], 0)} % ` +
            `of a core, ${fmt(x['cost.redisCpuMsPerMessage'], 3)} ms and ${fmt(x['cost.redisCommandsPerMessage'], 1)} ` +
            `commands per message; workers ${fmt(x['cost.workerCpuMsPerMessage'], 3)} ms per message; machine ` +
            `${Math.round(figures.cpu.box.busyPercent)} % busy, ${Math.round(figures.cpu.box.othersPercent)} % of a ` +
            `core unattributed; load ${machineFacts().loadAverage[0]})`,
        );
      } catch (err) {
        const code = /** @type {{ code?: unknown }} */ (err)?.code;
        const message = err instanceof Error ? err.message : String(err);
        runs.push({
          workers: k,
          round,
          error: { code: typeof code === 'string' ? code : 'ERR_BENCH_RUN', message },
        });
        say(`round ${round}/${args.rounds}, ${k} worker(s): FAILED: ${message}`);
      }
    }
  }
  const summary = summarize(args, runs);
  const loadAverageAtEnd = machineFacts().loadAverage;
  process.stdout.write(report({ args, sinkKind, machine, loadAverageAtEnd, summary }));
  const out =
    args.out ??
    join(RESULTS_DIR, `scaling-${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        argv: process.argv.slice(2),
        machine,
        loadAverageAtEnd,
        settings: {
          ...args,
          sink: sinkKind,
          workerEnv: {
            MAILROOM_WORKER_CONCURRENCY: args.concurrency,
            MAILROOM_SMTP_MAX_CONNECTIONS: args.connectionsPerWorker,
            MAILROOM_SMTP_TLS: 'none',
            MAILROOM_LOG_LEVEL: 'warn',
          },
          redis: REDIS_SETTINGS,
        },
        runs,
        summary,
      },
      null,
      2,
    )}\n`,
  );
  say(`results: ${out}`);
  return runs.some((r) => r.error) ? 1 : 0;
}

/**
 * @typedef {object} ScalingRow
 * @property {number} workers
 * @property {number} runs successful runs
 * @property {import('./lib/stats.mjs').Spread | undefined} msgsPerSecond
 * @property {import('./lib/stats.mjs').Spread | undefined} speedup msgs/s over the 1-worker (fewest
 *   workers) run of the same round
 * @property {Record<string, import('./lib/stats.mjs').Spread | undefined>} figures medians of the cost
 *   figures and CPU shares (see FIGURES)
 */

/**
 * Figures summarized per worker count: name → how to read it from one run.
 * @type {Record<string, (f: import('./lib/measure-run.mjs').RunFigures) => number>}
 */
const FIGURES = {
  // Over the clock's window (the sampler of measure-run.mjs); the cost figures below cover the window from
  // before the first message was enqueued until the last was terminal.
  redisCpuPercent: (f) => f.cpu.processes.find((p) => p.name === 'redis-server')?.percent ?? NaN,
  workerCpuPercent: (f) =>
    f.cpu.processes.filter((p) => / worker \d+$/.test(p.name)).reduce((sum, p) => sum + p.percent, 0),
  redisCpuMsPerMessage: (f) => f.extra['cost.redisCpuMsPerMessage'] ?? NaN,
  workerCpuMsPerMessage: (f) => f.extra['cost.workerCpuMsPerMessage'] ?? NaN,
  driverCpuMsPerMessage: (f) => f.extra['cost.driverCpuMsPerMessage'] ?? NaN,
  sinkCpuMsPerMessage: (f) => {
    const sink = f.cpu.processes.find((p) => p.name === 'smtp sink');
    return sink ? ((sink.percent / 100) * f.cpu.seconds * 1000) / f.n : NaN;
  },
  redisCommandsPerMessage: (f) => f.extra['cost.redisCommandsPerMessage'] ?? NaN,
  redisScriptCallsPerMessage: (f) => f.extra['cost.redisScriptCallsPerMessage'] ?? NaN,
  redisReadsPerMessage: (f) => f.extra['cost.redisReadsPerMessage'] ?? NaN,
  redisNetInBytesPerMessage: (f) => f.extra['cost.redisNetInBytesPerMessage'] ?? NaN,
  redisNetOutBytesPerMessage: (f) => f.extra['cost.redisNetOutBytesPerMessage'] ?? NaN,
  idleRedisCommandsPerSecond: (f) => f.extra['idle.redisCommandsPerSecond'] ?? NaN,
  idleRedisCpuPercent: (f) => f.extra['idle.redisCpuPercent'] ?? NaN,
  idleWorkerCpuPercent: (f) => f.extra['idle.workerCpuPercent'] ?? NaN,
  machineBusyPercent: (f) => f.cpu.box.busyPercent,
  unattributedPercent: (f) => f.cpu.box.othersPercent,
  handOverSeconds: (f) => f.handOverSeconds ?? NaN,
};

/**
 * @param {ScalingArgs} args
 * @param {ScalingRun[]} runs
 * @returns {{ rows: ScalingRow[], commands: Record<string, number>, model: Model | undefined }}
 */
function summarize(args, runs) {
  const ok = runs.filter((r) => r.figures);
  const base = Math.min(...args.workers);
  /** @type {ScalingRow[]} */
  const rows = args.workers.map((k) => {
    const mine = ok.filter((r) => r.workers === k);
    const ratios = mine.flatMap((r) => {
      const b = ok.find((o) => o.workers === base && o.round === r.round);
      return b?.figures && r.figures ? [r.figures.msgsPerSecond / b.figures.msgsPerSecond] : [];
    });
    return {
      workers: k,
      runs: mine.length,
      msgsPerSecond: spread(mine.map((r) => /** @type {any} */ (r.figures).msgsPerSecond)),
      speedup: spread(ratios),
      figures: Object.fromEntries(
        Object.entries(FIGURES).map(([name, read]) => [
          name,
          spread(
            mine.map((r) => read(/** @type {import('./lib/measure-run.mjs').RunFigures} */ (r.figures))),
          ),
        ]),
      ),
    };
  });
  // Commands per message by name: the median over every run (they hardly depend on the worker count).
  /** @type {Map<string, number[]>} */
  const byCommand = new Map();
  for (const r of ok) {
    for (const [key, value] of Object.entries(/** @type {any} */ (r.figures).extra)) {
      if (!key.startsWith('cost.calls.')) continue;
      const name = key.slice('cost.calls.'.length);
      byCommand.set(name, [...(byCommand.get(name) ?? []), /** @type {number} */ (value)]);
    }
  }
  const commands = Object.fromEntries(
    [...byCommand.entries()]
      .map(([name, values]) => /** @type {[string, number]} */ ([name, spread(values)?.median ?? NaN]))
      .sort((a, b) => b[1] - a[1]),
  );
  return { rows, commands, model: model(rows) };
}

/**
 * @typedef {object} Model
 * @property {number} workers the worker count the per-message costs are taken from (the fastest)
 * @property {number} redisMsPerMessage
 * @property {number} redisCeiling messages per second one Redis core can serve at that cost
 * @property {number} totalMsPerMessage Redis + workers + producer + sink, ms of CPU per message
 * @property {number} cores
 * @property {number} machineCeiling cores × 1000 / totalMsPerMessage
 */

/**
 * The simple model of docs/scaling.md, from the fastest worker count's medians.
 * @param {ScalingRow[]} rows
 * @returns {Model | undefined}
 */
function model(rows) {
  const best = [...rows]
    .filter((r) => r.msgsPerSecond)
    .sort((a, b) => (b.msgsPerSecond?.median ?? 0) - (a.msgsPerSecond?.median ?? 0))[0];
  if (!best) return undefined;
  const m = (/** @type {string} */ name) => best.figures[name]?.median ?? NaN;
  const redisMsPerMessage = m('redisCpuMsPerMessage');
  const totalMsPerMessage =
    redisMsPerMessage + m('workerCpuMsPerMessage') + m('driverCpuMsPerMessage') + m('sinkCpuMsPerMessage');
  const cores = machineFacts().nproc;
  return {
    workers: best.workers,
    redisMsPerMessage,
    redisCeiling: 1000 / redisMsPerMessage,
    totalMsPerMessage,
    cores,
    machineCeiling: (cores * 1000) / totalMsPerMessage,
  };
}

/**
 * @param {number | undefined} value
 * @param {number} digits
 */
function fmt(value, digits) {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * `median [min–max]`, or the median alone when all runs agree or there is one.
 * @param {import('./lib/stats.mjs').Spread | undefined} s
 * @param {number} digits
 */
function cell(s, digits) {
  if (!s) return 'n/a';
  const median = fmt(s.median, digits);
  if (s.n === 1 || fmt(s.min, digits) === fmt(s.max, digits)) return median;
  return `${median} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`;
}

/**
 * @param {{ args: ScalingArgs, sinkKind: string, machine: import('./lib/machine-facts.mjs').MachineFacts, loadAverageAtEnd: number[], summary: ReturnType<typeof summarize> }} input
 */
function report({ args, sinkKind, machine, loadAverageAtEnd, summary }) {
  const lines = [
    `# Mailroom: scaling with workers`,
    '',
    `N = ${args.n} per run, ${args.rounds} round(s), hand-over: ${HAND_OVER[args.handOver]}; ` +
      `per worker: MAILROOM_WORKER_CONCURRENCY=${args.concurrency}, MAILROOM_SMTP_MAX_CONNECTIONS=${args.connectionsPerWorker}; ` +
      `one redis-server (${Object.entries(REDIS_SETTINGS)
        .map(([k, v]) => `${k} ${v === '' ? '""' : v}`)
        .join(', ')}); sink ${sinkKind} on 127.0.0.1.`,
    `Machine: ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, Redis ${machine.redis ?? '?'}; ` +
      `load average ${machine.loadAverage.join(' ')} at the start, ${loadAverageAtEnd.join(' ')} at the end; commit ${machine.commit ?? '?'}.`,
    '',
    '| workers | msgs/s | × fewest | Redis CPU, % of a core | workers CPU, % of a core | machine busy % | unattributed, % of a core |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of summary.rows) {
    const f = r.figures;
    lines.push(
      `| ${r.workers} | ${cell(r.msgsPerSecond, 0)} | ${cell(r.speedup, 2)} | ${cell(f.redisCpuPercent, 0)} | ` +
        `${cell(f.workerCpuPercent, 0)} | ${cell(f.machineBusyPercent, 0)} | ${cell(f.unattributedPercent, 0)} |`,
    );
  }
  lines.push(
    '',
    'Cost per delivered message (medians [min–max]); "ms" is CPU time, so ms per message = CPU seconds per 1,000 messages:',
    '',
    '| workers | Redis CPU ms | worker CPU ms | producer CPU ms | sink CPU ms | Redis commands (in scripts too) | script calls | Redis read events | Redis bytes in / out |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of summary.rows) {
    const f = r.figures;
    lines.push(
      `| ${r.workers} | ${cell(f.redisCpuMsPerMessage, 3)} | ${cell(f.workerCpuMsPerMessage, 3)} | ` +
        `${cell(f.driverCpuMsPerMessage, 3)} | ${cell(f.sinkCpuMsPerMessage, 3)} | ${cell(f.redisCommandsPerMessage, 1)} | ` +
        `${cell(f.redisScriptCallsPerMessage, 2)} | ${cell(f.redisReadsPerMessage, 2)} | ` +
        `${fmt(f.redisNetInBytesPerMessage?.median, 0)} / ${fmt(f.redisNetOutBytesPerMessage?.median, 0)} |`,
    );
  }
  lines.push(
    '',
    'Idle workers, before each run (medians):',
    '',
    '| workers | Redis commands/s | Redis CPU % | workers CPU % |',
    '|---|---|---|---|',
  );
  for (const r of summary.rows) {
    const f = r.figures;
    lines.push(
      `| ${r.workers} | ${cell(f.idleRedisCommandsPerSecond, 0)} | ${cell(f.idleRedisCpuPercent, 1)} | ${cell(f.idleWorkerCpuPercent, 1)} |`,
    );
  }
  lines.push(
    '',
    `Redis commands per message by name (median over all runs): ${Object.entries(summary.commands)
      .map(([name, v]) => `${name} ${fmt(v, 2)}`)
      .join(', ')}.`,
  );
  const m = summary.model;
  if (m) {
    lines.push(
      '',
      `Model (costs of the fastest run, ${m.workers} worker${m.workers === 1 ? '' : 's'}): Redis ${fmt(m.redisMsPerMessage, 3)} ms per message ⇒ one ` +
        `Redis core serves at most ≈ ${fmt(m.redisCeiling, 0)} msgs/s per prefix; everything on this machine ` +
        `${fmt(m.totalMsPerMessage, 3)} ms per message ⇒ ${m.cores} cores serve at most ≈ ${fmt(m.machineCeiling, 0)} msgs/s.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (/** @type {unknown} */ err) => {
    say(`scaling benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await runCleanups();
    process.exit(1);
  });
