#!/usr/bin/env node
// Profiles Mailroom's workers during a benchmark run: the same run as `npm run bench` measures for
// Mailroom (private Redis, smtp-sink, the 2 KB newsletter handed over with MailroomClient.sendMany), with
// every worker process started under `node --cpu-prof`. Prints the run's rate and the time per module and
// function, the workers' profiles added up; the .cpuprofile files stay for Chrome DevTools or speedscope.
//   npm run build && node bench/profile-worker.mjs [options]
//     --n <count>               messages (default 20000)
//     --connections <count>     SMTP connections, split over the workers (default 20)
//     --rtt-ms <ms>             latency proxy between the workers and the sink (default 0: none)
//     --mailroom-env KEY=VALUE  extra worker setting (repeatable)
//     --mailroom-handover <how> messages (default) or campaign, as in bench/run.mjs
//     --out-dir <dir>           where the profiles go (default bench/results/profile-<time>/)
//     --summarize <dir>         no run: only summarize the .cpuprofile files already in <dir>
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BenchArgsError, BenchProcessError } from './lib/bench-errors.mjs';
import { installSignalCleanup, runCleanups } from './lib/cleanup.mjs';
import { profileMarkdown, summarizeCpuProfiles } from './lib/cpu-profile-summary.mjs';
import { machineFacts } from './lib/machine-facts.mjs';
import { measureRun } from './lib/measure-run.mjs';
import { smtpSinkBinary } from './lib/smtp-sink.mjs';
import { mailroomSystem } from './systems/mailroom.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
/**
 * The parts of a worker's hot path, recognized by their frames. They overlap (a socket write under the
 * SMTP client is also Node streams), and work run from a callback has no Mailroom frame above it, so
 * these are found by library, not by Mailroom function.
 * @type {import('./lib/cpu-profile-summary.mjs').WorkCategory[]}
 */
const HOT_PATH = [
  { label: 'composing MIME: @mailroom/mime', frame: /\/packages\/mime\/dist\// },
  {
    label: 'composing MIME: nodemailer (MailComposer, MimeNode, encoders)',
    frame: /nodemailer\/.*\/(mime-node|mail-composer|qp|base64|mime-funcs|addressparser)\//,
  },
  { label: 'SMTP client: @mailroom/smtp', frame: /\/packages\/smtp\/dist\// },
  { label: 'SMTP client: nodemailer SMTPConnection', frame: /nodemailer\/.*\/smtp-connection\// },
  { label: 'Redis client (ioredis)', frame: /\/ioredis\// },
  { label: 'queue (BullMQ)', frame: /\/bullmq\// },
  { label: 'ledger scripts (LuaScript.run)', frame: /^run@.*\/lua-script\.js$/ },
  { label: 'metrics (prom-client)', frame: /\/prom-client\// },
  {
    label: 'socket writes (native writeBuffer, writev, writeUtf8String)',
    frame: /^(writeBuffer|writev|writeUtf8String)@$/,
  },
  { label: 'garbage collector', frame: /^\(garbage collector\)@/ },
  { label: 'loading modules (start-up)', frame: /@node:internal\/(modules|deps\/cjs-module-lexer)\// },
];

/** @param {string} line */
const say = (line) => process.stderr.write(`${line}\n`);

/**
 * @param {string | undefined} value
 * @param {number} fallback
 * @param {string} flag
 * @param {number} min
 */
function integer(value, fallback, flag, min) {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min) {
    throw new BenchArgsError(`${flag} must be an integer of at least ${min}`);
  }
  return number;
}

/**
 * @param {string} dir
 * @returns {string[]} the .cpuprofile files in `dir`; throws when there is none
 */
function profilesIn(dir) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f));
  if (files.length === 0) {
    throw new BenchProcessError(`no .cpuprofile in ${dir}: did the workers exit on SIGTERM?`);
  }
  return files;
}

/** @returns {Promise<number>} the exit code */
async function main() {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      connections: { type: 'string' },
      'rtt-ms': { type: 'string' },
      'mailroom-env': { type: 'string', multiple: true },
      'out-dir': { type: 'string' },
      'mailroom-handover': { type: 'string' },
      summarize: { type: 'string' },
    },
  });
  if (values.summarize !== undefined) {
    process.stdout.write(profileMarkdown(summarizeCpuProfiles(profilesIn(values.summarize), HOT_PATH)));
    return 0;
  }
  const n = integer(values.n, 20_000, '--n', 1);
  const connections = integer(values.connections, 20, '--connections', 1);
  const rttMs = integer(values['rtt-ms'], 0, '--rtt-ms', 0);
  /** @type {Record<string, string>} */
  const env = {};
  for (const entry of values['mailroom-env'] ?? []) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new BenchArgsError(`--mailroom-env: ${JSON.stringify(entry)} is not KEY=VALUE`);
    env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  const handOver = values['mailroom-handover'] ?? 'messages';
  if (handOver !== 'messages' && handOver !== 'campaign') {
    throw new BenchArgsError('--mailroom-handover must be messages or campaign');
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15);
  const dir = values['out-dir'] ?? join(RESULTS_DIR, `profile-${stamp}`);
  mkdirSync(dir, { recursive: true });

  const system = mailroomSystem({
    id: 'mailroom',
    label: 'Mailroom (profiled)',
    env,
    handOver,
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
  });
  const settings = system.settings({ connections, rttMs });
  const unavailable = system.unavailableReason();
  if (unavailable) {
    say(unavailable);
    return 2;
  }
  installSignalCleanup();
  const machine = machineFacts();
  say(
    `profiling Mailroom's workers: N=${n}, ${connections} connections, ` +
      `${rttMs > 0 ? `${rttMs} ms added round trip` : 'no added latency'}; load average ${machine.loadAverage.join(' ')}`,
  );
  const figures = await measureRun(system, {
    n,
    sinkKind: smtpSinkBinary() ? 'smtp-sink' : 'node',
    timeoutMs: (60 + n / 20) * 1000,
    steadyMaxS: Infinity,
    connections,
    rttMs,
  });
  // measureRun has stopped the workers: each wrote its profile as it exited.
  const files = profilesIn(dir);
  const workerCpu = figures.cpu.processes
    .filter((p) => p.name.includes('worker'))
    .map((p) => `${p.name} ${Math.round(p.percent)} %`)
    .join(', ');
  process.stdout.write(
    `### Mailroom worker profile: ${n.toLocaleString('en-US')} messages, ` +
      `${Math.round(figures.msgsPerSecond)} msgs/s under the profiler\n\n` +
      `Build ${figures.version ?? '-'}. Hand-over: ${String(settings.enqueue)}. ` +
      `Settings: ${JSON.stringify(settings.workerEnv)}. ` +
      `CPU of one core: ${workerCpu}; ` +
      `load average at start ${machine.loadAverage.join(' / ')}. Profiles: ${dir}\n\n` +
      profileMarkdown(summarizeCpuProfiles(files, HOT_PATH)),
  );
  return 0;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (/** @type {unknown} */ err) => {
    // node:util's parseArgs throws ERR_PARSE_ARGS_* for unknown or malformed options.
    const code = /** @type {{ code?: unknown }} */ (err)?.code;
    const usage =
      err instanceof BenchArgsError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
    const message = err instanceof Error ? err.message : String(err);
    say(usage ? message : `profile failed: ${err instanceof Error ? (err.stack ?? message) : message}`);
    await runCleanups();
    process.exit(usage ? 2 : 1);
  });
