import { spread } from './stats.mjs';

/**
 * What one system did in one round: its figures, or the error that ended the run.
 * @typedef {import('./measure-run.mjs').RunFigures | { error: { code: string, message: string } }} RunOutcome
 */

/**
 * @typedef {object} RoundRecord
 * @property {number} round 1-based
 * @property {string[]} order system ids in the order they ran in this round
 * @property {Record<string, RunOutcome>} runs by system id
 */

/**
 * @typedef {object} SystemSummary
 * @property {string} id
 * @property {string} label
 * @property {number} ok rounds that completed
 * @property {number} failed rounds that ended in an error
 * @property {number} timeBoxed completed rounds that ended at the time box (fewer than N messages)
 * @property {import('./stats.mjs').Spread | undefined} msgsPerSecond
 * @property {import('./stats.mjs').Spread | undefined} delivered messages the sink counted per run
 * @property {import('./stats.mjs').Spread | undefined} seconds
 * @property {import('./stats.mjs').Spread | undefined} handOverPerSecond messages handed over per second
 * @property {Record<string, import('./stats.mjs').Spread>} ratioTo this system's msgs/s divided by each other
 *   system's, taken round by round (both measured in the same round), by the other system's id
 * @property {import('./stats.mjs').Spread | undefined} cpuMsPerMessage CPU time per delivered message, in ms:
 *   the system's processes and the benchmark driver (the producer, for the queue-based systems), not the
 *   sink or the latency proxy
 * @property {Record<string, import('./stats.mjs').Spread>} cpuPercent per process, % of one core
 * @property {Record<string, { startMiB: import('./stats.mjs').Spread, endMiB: import('./stats.mjs').Spread }>} rss
 *   resident memory per process at the start and the end of the measured window
 * @property {Record<string, Record<string, import('./stats.mjs').Spread>>} cpuByCommand for process trees
 *   (Postfix): per target, % of one core per command name
 * @property {Record<string, import('./stats.mjs').Spread>} box busy, system, irq, steal, others (see BoxFigure)
 * @property {{ connections: number, peakOpen: number, peakInUse: number } | undefined} proxy with --rtt-ms:
 *   most connections the system made in one run, most it held open at once, and most it held open at
 *   once without having sent QUIT on them
 * @property {Record<string, import('./stats.mjs').Spread>} extra the system's own figures, by name
 * @property {string[]} versions the distinct code versions its runs reported (more than one: the figures
 *   mix versions)
 * @property {number} duplicates most messages the sink counted beyond N in one round
 */

/**
 * @param {RunOutcome | undefined} outcome
 * @returns {import('./measure-run.mjs').RunFigures | undefined}
 */
export function figuresOf(outcome) {
  return outcome && !('error' in outcome) ? outcome : undefined;
}

/**
 * Medians and spreads per system over the rounds; ratios are taken round by round (each system against
 * another measured in the same round), then summarized.
 * @param {readonly RoundRecord[]} rounds
 * @param {readonly { id: string, label: string }[]} systems
 * @returns {SystemSummary[]}
 */
export function summarizeRounds(rounds, systems) {
  return systems.map(({ id, label }) => {
    const done = rounds.flatMap((r) => {
      const figures = figuresOf(r.runs[id]);
      return figures ? [figures] : [];
    });
    /** @type {Record<string, import('./stats.mjs').Spread>} */
    const ratioTo = {};
    for (const other of systems) {
      if (other.id === id) continue;
      const s = spread(
        rounds.flatMap((r) => {
          const a = figuresOf(r.runs[id]);
          const b = figuresOf(r.runs[other.id]);
          return a && b ? [a.msgsPerSecond / b.msgsPerSecond] : [];
        }),
      );
      if (s) ratioTo[other.id] = s;
    }
    /** @type {Map<string, number[]>} */
    const cpu = new Map();
    /** @type {Map<string, number[]>} */
    const rssStart = new Map();
    /** @type {Map<string, number[]>} */
    const rssEnd = new Map();
    /** @type {Map<string, Map<string, number[]>>} */
    const byCommand = new Map();
    for (const run of done) {
      for (const p of run.cpu.processes) {
        push(cpu, p.name, p.percent);
        if (p.rss) {
          push(rssStart, p.name, p.rss.startMiB);
          push(rssEnd, p.name, p.rss.endMiB);
        }
        if (!p.byCommand) continue;
        const commands = byCommand.get(p.name) ?? new Map();
        byCommand.set(p.name, commands);
        for (const [comm, percent] of Object.entries(p.byCommand)) push(commands, comm, percent);
      }
    }
    const starts = spreads(rssStart);
    const ends = spreads(rssEnd);
    /** @type {SystemSummary['rss']} */
    const rss = {};
    for (const [name, startMiB] of Object.entries(starts)) {
      const endMiB = ends[name];
      if (endMiB) rss[name] = { startMiB, endMiB };
    }
    /** @type {Record<string, import('./stats.mjs').Spread>} */
    const box = {};
    for (const key of /** @type {const} */ ([
      'busyPercent',
      'systemPercent',
      'irqPercent',
      'stealPercent',
      'othersPercent',
    ])) {
      const s = spread(done.map((r) => r.cpu.box[key]));
      if (s) box[key] = s;
    }
    const proxied = done.flatMap((r) => (r.proxy ? [r.proxy] : []));
    /** @type {Map<string, number[]>} */
    const extra = new Map();
    for (const run of done)
      for (const [name, value] of Object.entries(run.extra ?? {})) push(extra, name, value);
    return {
      id,
      label,
      ok: done.length,
      failed: rounds.filter((r) => r.runs[id] && 'error' in /** @type {object} */ (r.runs[id])).length,
      timeBoxed: done.filter((r) => r.timeBoxed).length,
      msgsPerSecond: spread(done.map((r) => r.msgsPerSecond)),
      delivered: spread(done.map((r) => r.delivered)),
      seconds: spread(done.map((r) => r.seconds)),
      handOverPerSecond: spread(
        done.flatMap((r) => (r.handOverSeconds === null ? [] : [r.n / r.handOverSeconds])),
      ),
      ratioTo,
      cpuMsPerMessage: spread(done.map(cpuMsPerMessage)),
      cpuPercent: spreads(cpu),
      rss,
      cpuByCommand: Object.fromEntries([...byCommand].map(([name, commands]) => [name, spreads(commands)])),
      box,
      proxy:
        proxied.length > 0
          ? {
              connections: Math.max(...proxied.map((p) => p.connections)),
              peakOpen: Math.max(...proxied.map((p) => p.peakOpen)),
              peakInUse: Math.max(...proxied.map((p) => p.peakInUse ?? p.peakOpen)),
            }
          : undefined,
      extra: spreads(extra),
      versions: [...new Set(done.flatMap((r) => (r.version ? [r.version] : [])))],
      duplicates: Math.max(0, ...done.map((r) => r.delivered - r.n)),
    };
  });
}

/** Processes that serve every system alike: not charged to the system's CPU per message. */
const NOT_THE_SYSTEM = new Set(['smtp sink', 'latency proxy']);

/**
 * @param {import('./measure-run.mjs').RunFigures} run
 * @returns {number} CPU ms per delivered message of the system's processes and the driver
 */
function cpuMsPerMessage(run) {
  const percent = run.cpu.processes
    .filter((p) => !NOT_THE_SYSTEM.has(p.name) && Number.isFinite(p.percent))
    .reduce((sum, p) => sum + p.percent, 0);
  return ((percent / 100) * run.cpu.seconds * 1000) / Math.max(1, Math.min(run.delivered, run.n));
}

/**
 * @param {Map<string, number[]>} map
 * @param {string} key
 * @param {number} value
 */
function push(map, key, value) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** @param {Map<string, number[]>} map */
function spreads(map) {
  /** @type {Record<string, import('./stats.mjs').Spread>} */
  const out = {};
  for (const [key, values] of map) {
    const s = spread(values);
    if (s) out[key] = s;
  }
  return out;
}
