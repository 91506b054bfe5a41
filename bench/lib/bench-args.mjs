import { BenchArgsError } from './bench-errors.mjs';

/**
 * A Mailroom configuration measured beside the default one (`--mailroom-variant`).
 * @typedef {object} MailroomVariant
 * @property {string} name lower-case letters, digits and dashes; the system's id is `mailroom-<name>`
 * @property {Record<string, string>} env worker settings of this variant, on top of `--mailroom-env`
 */

/**
 * @typedef {object} BenchArgs
 * @property {boolean} smoke quick check: N = 300, 1 round, every available system
 * @property {number} n messages per system and round (default 20,000; 300 with --smoke)
 * @property {number} rounds rounds, each running every system once (default 3; 1 with --smoke)
 * @property {string[] | undefined} systems ids asked for with --systems; undefined = all available
 * @property {import('./smtp-sink.mjs').SinkKind} sink default `auto`
 * @property {number} rttMs round trip the latency proxy adds, in ms (default 0: no proxy)
 * @property {number} connections SMTP connections each system may open to the sink, in total (default 20)
 * @property {number} steadyMaxS time box of a system without a queue (the naive sender), in seconds
 *   (default 60; 20 with --smoke)
 * @property {Record<string, string>} mailroomEnv extra Mailroom worker settings (`--mailroom-env`)
 * @property {MailroomVariant[]} mailroomVariants further Mailroom configurations to measure
 * @property {'messages' | 'campaign'} mailroomHandOver how Mailroom's producer hands the newsletter over
 *   (default `messages`)
 * @property {number} timeoutS limit of one measured run, in seconds (default: 60 + N / 50)
 * @property {string | undefined} out where to write the JSON results (default bench/results/bench-<time>.json)
 * @property {boolean} help
 */

export const USAGE = `usage: node bench/run.mjs [options]      (or: npm run bench -- [options])
  --smoke                      N=300, 1 round, every available system (well under a minute)
  --n <count>                  messages per system and round (default 20000)
  --rounds <count>             rounds; systems are interleaved round by round (default 3)
  --systems <list>             comma-separated ids: postfix,naive,bullmq,mailroom and mailroom-<variant>
                               (default: all available)
  --connections <count>        SMTP connections each system may open to the sink, in total over its
                               processes (default 20; Mailroom and BullMQ split them over 2 workers)
  --rtt-ms <ms>                put a latency proxy adding this round trip between every system and the
                               sink (default 0: none)
  --mailroom-env KEY=VALUE     extra Mailroom worker setting, e.g. MAILROOM_WORKER_CONCURRENCY=200
                               (repeatable)
  --mailroom-variant NAME:KEY=VALUE[,KEY=VALUE...]
                               also measure Mailroom with these settings, as system mailroom-NAME
                               (repeatable), e.g. pipelining:MAILROOM_SMTP_SENDER=pipelining
  --mailroom-handover <how>    messages: N messages with MailroomClient.sendMany (default);
                               campaign: one campaign of N recipients (MailroomClient.createCampaign)
  --steady-max-s <s>           time box of the naive sender, which has no queue: its rate is what it
                               delivered in this time (default 60)
  --sink <kind>                auto | smtp-sink | node (default auto: smtp-sink when installed)
  --timeout-s <s>              limit of one measured run (default 60 + N/50)
  --out <file>                 JSON results file (default bench/results/bench-<time>.json)
  --help`;

/** Options that take a value; the repeatable ones collect every value. */
const SINGLE = [
  '--n',
  '--rounds',
  '--systems',
  '--sink',
  '--timeout-s',
  '--out',
  '--rtt-ms',
  '--connections',
  '--steady-max-s',
  '--mailroom-handover',
];
const REPEATABLE = ['--mailroom-env', '--mailroom-variant'];
const ENV_ENTRY = /^([A-Z][A-Z0-9_]*)=(.*)$/s;
const VARIANT_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * @param {readonly string[]} argv the arguments after the script name
 * @returns {BenchArgs}
 */
export function parseBenchArgs(argv) {
  /** @type {Map<string, string>} */
  const values = new Map();
  /** @type {Map<string, string[]>} */
  const lists = new Map(REPEATABLE.map((flag) => [flag, []]));
  let smoke = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = /** @type {string} */ (argv[i]);
    if (arg === '--smoke') smoke = true;
    else if (arg === '--help' || arg === '-h') help = true;
    else if (SINGLE.includes(arg) || REPEATABLE.includes(arg)) {
      const value = argv[++i];
      if (value === undefined) throw new BenchArgsError(`${arg} needs a value`);
      if (REPEATABLE.includes(arg)) lists.get(arg)?.push(value);
      else if (values.has(arg)) throw new BenchArgsError(`${arg} is given twice`);
      else values.set(arg, value);
    } else {
      throw new BenchArgsError(`unknown argument ${arg}`);
    }
  }
  const n = integer(values.get('--n'), smoke ? 300 : 20_000, '--n', 1);
  const sink = values.get('--sink') ?? 'auto';
  if (sink !== 'auto' && sink !== 'smtp-sink' && sink !== 'node') {
    throw new BenchArgsError('--sink must be auto, smtp-sink or node');
  }
  const handOver = values.get('--mailroom-handover') ?? 'messages';
  if (handOver !== 'messages' && handOver !== 'campaign') {
    throw new BenchArgsError('--mailroom-handover must be messages or campaign');
  }
  const variants = (lists.get('--mailroom-variant') ?? []).map(parseVariant);
  const names = variants.map((v) => v.name);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) throw new BenchArgsError(`--mailroom-variant ${twice} is given twice`);
  return {
    smoke,
    n,
    rounds: integer(values.get('--rounds'), smoke ? 1 : 3, '--rounds', 1),
    systems: values
      .get('--systems')
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    sink,
    rttMs: integer(values.get('--rtt-ms'), 0, '--rtt-ms', 0),
    connections: integer(values.get('--connections'), 20, '--connections', 1),
    steadyMaxS: integer(values.get('--steady-max-s'), smoke ? 20 : 60, '--steady-max-s', 1),
    mailroomEnv: parseEnv(lists.get('--mailroom-env') ?? [], '--mailroom-env'),
    mailroomVariants: variants,
    mailroomHandOver: handOver,
    timeoutS: integer(values.get('--timeout-s'), Math.ceil(60 + n / 50), '--timeout-s', 1),
    out: values.get('--out'),
    help,
  };
}

/**
 * @param {string} value `NAME:KEY=VALUE[,KEY=VALUE...]`
 * @returns {MailroomVariant}
 */
function parseVariant(value) {
  const colon = value.indexOf(':');
  const name = colon < 0 ? value : value.slice(0, colon);
  if (!VARIANT_NAME.test(name)) {
    throw new BenchArgsError(
      `--mailroom-variant ${value}: the name must be 1-32 of a-z 0-9 - (as in pipelining:KEY=VALUE)`,
    );
  }
  const entries = colon < 0 ? [] : value.slice(colon + 1).split(',');
  const env = parseEnv(entries, `--mailroom-variant ${name}`);
  if (Object.keys(env).length === 0) throw new BenchArgsError(`--mailroom-variant ${name}: no KEY=VALUE`);
  return { name, env };
}

/**
 * @param {readonly string[]} entries `KEY=VALUE` each
 * @param {string} flag for messages
 * @returns {Record<string, string>}
 */
function parseEnv(entries, flag) {
  /** @type {Record<string, string>} */
  const env = {};
  for (const entry of entries) {
    const match = ENV_ENTRY.exec(entry);
    if (!match) throw new BenchArgsError(`${flag}: ${JSON.stringify(entry)} is not KEY=VALUE`);
    const [, key = '', val = ''] = match;
    if (key in env) throw new BenchArgsError(`${flag}: ${key} is given twice`);
    env[key] = val;
  }
  return env;
}

/**
 * @param {string | undefined} value
 * @param {number} fallback
 * @param {string} flag
 * @param {number} min smallest accepted value
 */
function integer(value, fallback, flag, min) {
  if (value === undefined) return fallback;
  const number = value.trim() === '' ? NaN : Number(value);
  if (!Number.isInteger(number) || number < min)
    throw new BenchArgsError(`${flag} must be an integer of at least ${min}`);
  return number;
}
