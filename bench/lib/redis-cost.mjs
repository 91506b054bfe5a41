// What a delivered message costs the Redis server and the worker processes: Redis commands (INFO
// commandstats), the server's read events and network bytes (INFO stats), and the CPU time of Redis and of
// the workers (utime + stime from /proc/<pid>/stat), taken before the first message is handed over and
// again once every message is terminal. Also what the same processes cost per second while idle, so that
// the fixed cost of a worker (blocking fetches, stalled-job checks, leases) can be told from the cost per
// message. Used by bench/scaling.mjs through bench/systems/mailroom.mjs (`costs: true`).
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { readProcStat } from './process-sampler.mjs';

/** Commands that run a Lua script: the commands a script calls are counted in commandstats as well. */
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);
/** INFO is what the meter reads with; Mailroom sends none on its send path, so it is left out entirely. */
const METER_COMMAND = 'info';
const TICKS_PER_SECOND = clockTicks();

/**
 * @typedef {object} RedisCounters
 * @property {Map<string, { calls: number, usec: number }>} commands INFO commandstats, by command
 * @property {number} readsProcessed INFO stats total_reads_processed: read events on client sockets
 *   (one read may carry many pipelined commands)
 * @property {number} netInputBytes
 * @property {number} netOutputBytes
 */

/**
 * @typedef {object} CostSnapshot
 * @property {number} at performance.now()
 * @property {RedisCounters} redis
 * @property {number} redisTicks CPU ticks of the Redis server (all its threads)
 * @property {number[]} workerTicks CPU ticks of each worker process
 * @property {NodeJS.CpuUsage} driver this process's CPU (the producer, when it runs here)
 * @property {number} ownHmget HMGET calls the meter had sent (see terminalCount), taken out of the counts
 */

/**
 * @typedef {object} CostFigures
 * @property {number} messages what the figures are divided by
 * @property {number} seconds length of the window
 * @property {number} redisCommandsPerMessage every command Redis ran, those called inside scripts included
 * @property {number} redisScriptCallsPerMessage EVAL/EVALSHA/FCALL calls (each a round trip of its own or
 *   a part of a pipeline)
 * @property {number} redisReadsPerMessage read events on client sockets per message (pipelining folds many
 *   commands into one read)
 * @property {number} redisNetInBytesPerMessage
 * @property {number} redisNetOutBytesPerMessage
 * @property {number} redisCpuMsPerMessage Redis server CPU per message, in ms (= CPU seconds per 1,000 messages)
 * @property {number} workerCpuMsPerMessage all worker processes together, in ms per message
 * @property {number} driverCpuMsPerMessage this process (the producer and the benchmark's own polling)
 * @property {number} redisCpuPercent Redis CPU over the window, in % of one core
 * @property {number} workerCpuPercent workers together over the window, in % of one core
 * @property {Record<string, number>} callsPerMessage calls per message by command (the largest ones)
 * @property {Record<string, number>} usecPerMessage Redis' own microseconds per message by command (a
 *   script's figure includes the commands it called)
 */

/**
 * @typedef {object} IdleFigures
 * @property {number} seconds
 * @property {number} redisCommandsPerSecond
 * @property {number} redisCpuPercent % of one core
 * @property {number} workerCpuPercent all workers together, % of one core
 */

/**
 * @param {Redis} client
 * @returns {Promise<RedisCounters>}
 */
async function readRedisCounters(client) {
  const [commandstats, stats] = await Promise.all([client.info('commandstats'), client.info('stats')]);
  /** @type {Map<string, { calls: number, usec: number }>} */
  const commands = new Map();
  for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands.set(/** @type {string} */ (match[1]), { calls: Number(match[2]), usec: Number(match[3]) });
  }
  const stat = (/** @type {string} */ name) =>
    Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1] ?? NaN);
  return {
    commands,
    readsProcessed: stat('total_reads_processed'),
    netInputBytes: stat('total_net_input_bytes'),
    netOutputBytes: stat('total_net_output_bytes'),
  };
}

/** @param {number} pid */
function ticks(pid) {
  return readProcStat(pid)?.ticks ?? NaN;
}

/**
 * Measures the cost of Redis and the workers for one run.
 * @param {{ url: string, redisPid: number, workerPids: readonly number[] }} target
 */
export async function startCostMeter({ url, redisPid, workerPids }) {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  let ownHmget = 0;
  /** @returns {Promise<CostSnapshot>} */
  const snapshot = async () => {
    const redis = await readRedisCounters(client);
    return {
      at: performance.now(),
      redis,
      redisTicks: ticks(redisPid),
      workerTicks: workerPids.map(ticks),
      driver: process.cpuUsage(),
      ownHmget,
    };
  };
  /** @type {CostSnapshot | undefined} */
  let start;
  return {
    /**
     * What Redis and the idle workers cost per second over `ms` (call before the hand-over).
     * @param {number} ms
     * @returns {Promise<IdleFigures>}
     */
    async idle(ms) {
      const before = await snapshot();
      await sleep(ms);
      const after = await snapshot();
      const seconds = (after.at - before.at) / 1000;
      const d = diff(before, after);
      return {
        seconds,
        redisCommandsPerSecond: d.commands / seconds,
        redisCpuPercent: (d.redisTicks / TICKS_PER_SECOND / seconds) * 100,
        workerCpuPercent: (d.workerTicks / TICKS_PER_SECOND / seconds) * 100,
      };
    },
    /**
     * Messages in a terminal state, from the ledger's counters (`<prefix>:stats`).
     * @param {string} prefix
     * @param {readonly string[]} states the terminal states counted there
     */
    async terminalCount(prefix, states) {
      ownHmget += 1;
      const values = await client.hmget(`${prefix}:stats`, ...states);
      return values.reduce((sum, v) => sum + Number(v ?? 0), 0);
    },
    /** Opens the measured window (call just before the hand-over). */
    async mark() {
      start = await snapshot();
    },
    /**
     * Closes the window and divides by `messages`.
     * @param {number} messages
     * @returns {Promise<CostFigures>}
     */
    async finish(messages) {
      if (!start) throw new Error('startCostMeter: finish() before mark()');
      const end = await snapshot();
      const seconds = (end.at - start.at) / 1000;
      const d = diff(start, end);
      const perMessage = (/** @type {number} */ v) => v / messages;
      const cpuMs = (/** @type {number} */ t) => (t / TICKS_PER_SECOND) * 1000;
      const driverMicros = end.driver.user - start.driver.user + (end.driver.system - start.driver.system);
      const largest = [...d.byCommand.entries()].sort((a, b) => b[1].calls - a[1].calls).slice(0, 20);
      return {
        messages,
        seconds,
        redisCommandsPerMessage: perMessage(d.commands),
        redisScriptCallsPerMessage: perMessage(d.scriptCalls),
        redisReadsPerMessage: perMessage(d.reads),
        redisNetInBytesPerMessage: perMessage(d.netIn),
        redisNetOutBytesPerMessage: perMessage(d.netOut),
        redisCpuMsPerMessage: perMessage(cpuMs(d.redisTicks)),
        workerCpuMsPerMessage: perMessage(cpuMs(d.workerTicks)),
        driverCpuMsPerMessage: perMessage(driverMicros / 1000),
        redisCpuPercent: (d.redisTicks / TICKS_PER_SECOND / seconds) * 100,
        workerCpuPercent: (d.workerTicks / TICKS_PER_SECOND / seconds) * 100,
        callsPerMessage: Object.fromEntries(largest.map(([name, c]) => [name, perMessage(c.calls)])),
        usecPerMessage: Object.fromEntries(largest.map(([name, c]) => [name, perMessage(c.usec)])),
      };
    },
    close() {
      client.disconnect();
    },
  };
}

/**
 * @param {CostSnapshot} a
 * @param {CostSnapshot} b
 */
function diff(a, b) {
  /** @type {Map<string, { calls: number, usec: number }>} */
  const byCommand = new Map();
  for (const [name, after] of b.redis.commands) {
    if (name === METER_COMMAND) continue;
    const before = a.redis.commands.get(name) ?? { calls: 0, usec: 0 };
    const own = name === 'hmget' ? b.ownHmget - a.ownHmget : 0;
    const calls = after.calls - before.calls - own;
    if (calls > 0) byCommand.set(name, { calls, usec: after.usec - before.usec });
  }
  let commands = 0;
  let scriptCalls = 0;
  for (const [name, c] of byCommand) {
    commands += c.calls;
    if (SCRIPT_COMMANDS.has(name)) scriptCalls += c.calls;
  }
  return {
    byCommand,
    commands,
    scriptCalls,
    reads: b.redis.readsProcessed - a.redis.readsProcessed,
    netIn: b.redis.netInputBytes - a.redis.netInputBytes,
    netOut: b.redis.netOutputBytes - a.redis.netOutputBytes,
    redisTicks: b.redisTicks - a.redisTicks,
    workerTicks: b.workerTicks.reduce((sum, t, i) => sum + t - (a.workerTicks[i] ?? NaN), 0),
  };
}

/** @returns {number} USER_HZ, the unit of /proc/<pid>/stat's times */
function clockTicks() {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}
