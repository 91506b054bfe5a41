// Everything Mailroom-specific in the benchmark lives here: how its workers are started and configured,
// how the benchmark knows they are ready, and how the producer hands the newsletter over. When Mailroom's
// send path changes (campaigns, batches, a pipelining sender), this is the one module to update; settings
// that select a new path are passed from the command line (--mailroom-env, --mailroom-variant).
// Mailroom runs from a copy of the build taken at its first run (bench/lib/build-snapshot.mjs).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BenchArgsError, BenchError } from '../lib/bench-errors.mjs';
import { snapshotBuild } from '../lib/build-snapshot.mjs';
import { assertRunning, startProcess } from '../lib/child-process.mjs';
import { redisUsedMemory, startRedisServer, REDIS_SETTINGS } from '../lib/redis-server.mjs';
import { newsletter, newsletterRecipient, newsletterTemplate } from '../lib/newsletter.mjs';
import { startCostMeter } from '../lib/redis-cost.mjs';
import { splitConnections } from '../lib/split-connections.mjs';
import { waitUntil } from '../lib/wait-until.mjs';

/** Compiled output the benchmark needs: Mailroom runs from dist/, so `npm run build` must have run. */
const BUILT = [
  '../../apps/cli/dist/main.js',
  '../../apps/worker/dist/index.js',
  '../../packages/client/dist/index.js',
  '../../packages/queue/dist/index.js',
].map((path) => fileURLToPath(new URL(path, import.meta.url)));
/** Worker processes (`mailroom worker`). */
const DEFAULT_WORKERS = 2;
/** Messages sent per MailroomClient.sendMany call. */
const BATCH = 1000;
/**
 * How the producer hands the newsletter over: `messages`, N whole messages with MailroomClient.sendMany
 * (1,000 per call); `campaign`, one campaign (MailroomClient.createCampaign: the template stored once,
 * the N recipients streamed in, batch jobs of the client's default size); `preloaded`, the same N
 * messages enqueued with sendMany into a paused queue (BullMQ `Queue.pause`) before the clock starts, the
 * clock starting when the queue is resumed: the workers' drain rate alone, without a producer competing
 * for the machine (bench/scaling.mjs). The workers' watchdog (MAILROOM_WATCHDOG_MS, 2 minutes) bounds how
 * long a preload may take.
 * @typedef {'messages' | 'campaign' | 'preloaded'} MailroomHandOver
 */
/**
 * The worker settings the benchmark sets; every other MAILROOM_* setting stays at its default unless
 * --mailroom-env or a variant says otherwise. MAILROOM_SMTP_MAX_CONNECTIONS comes from --connections.
 */
const WORKER_ENV = Object.freeze({
  MAILROOM_WORKER_CONCURRENCY: '100',
  MAILROOM_SMTP_TLS: 'none',
  MAILROOM_LOG_LEVEL: 'warn',
  MAILROOM_HTTP_PORT: '-1',
});
/** Settings that only the benchmark may set: they point the worker at its Redis and sink. */
const OWNED_BY_BENCH = {
  MAILROOM_REDIS_URL: 'the benchmark starts its own Redis',
  MAILROOM_SMTP_HOST: 'the benchmark points the workers at its sink',
  MAILROOM_SMTP_PORT: 'the benchmark points the workers at its sink',
  MAILROOM_SMTP_MAX_CONNECTIONS: 'use --connections (split over the worker processes)',
};
const KNOWN_SETTINGS = await knownWorkerSettings();
/** @type {import('../lib/build-snapshot.mjs').BuildSnapshot | undefined} */
let snapshot;

/**
 * The build every Mailroom run of this process uses: a copy taken at the first run, so that a rebuild
 * of the checkout during the benchmark cannot change the code between rounds.
 * @returns {import('../lib/build-snapshot.mjs').BuildSnapshot}
 */
function mailroomBuild() {
  snapshot ??= snapshotBuild();
  return snapshot;
}

/**
 * @typedef {object} MailroomSystemOptions
 * @property {string} [id] default `mailroom`
 * @property {string} [label] default `Mailroom`
 * @property {Record<string, string>} [env] worker settings on top of the benchmark's (MAILROOM_* only)
 * @property {string[]} [nodeArgs] Node options of the worker processes, e.g. `--cpu-prof`
 * @property {number} [workers] worker processes (default 2)
 * @property {MailroomHandOver} [handOver] default `messages`
 * @property {boolean} [costs] also measure what a message costs Redis and the workers (commands, read
 *   events, CPU), from just before the hand-over until every message is terminal, and what they cost per
 *   second while idle for `idleMs` before it (bench/lib/redis-cost.mjs; used by bench/scaling.mjs).
 *   The figures come with the run's other figures, as `cost.*` and `idle.*`.
 * @property {number} [idleMs] default 3000 with `costs`
 */

/**
 * (d) Mailroom: a private durable Redis, `mailroom worker` processes (2 by default), and the producer SDK
 * in the benchmark's own process (see MailroomHandOver).
 * @param {MailroomSystemOptions} [options]
 * @returns {import('../lib/measure-run.mjs').BenchSystem}
 */
export function mailroomSystem({
  id = 'mailroom',
  label = 'Mailroom',
  env = {},
  nodeArgs = [],
  workers = DEFAULT_WORKERS,
  handOver = 'messages',
  costs = false,
  idleMs = 3000,
} = {}) {
  const prefixSetting = env.MAILROOM_QUEUE_PREFIX;
  return {
    id,
    label,
    unavailableReason: () =>
      BUILT.every((path) => existsSync(path))
        ? undefined
        : 'Mailroom is not built (run `npm run build` first)',
    settings({ connections }) {
      checkEnv(id, env);
      const perWorker = splitConnections(connections, workers, label);
      return {
        workerProcesses: workers,
        smtpConnectionsPerWorker: perWorker,
        workerEnv: {
          ...WORKER_ENV,
          MAILROOM_SMTP_HOST: '127.0.0.1',
          MAILROOM_SMTP_PORT: '<sink or latency proxy port>',
          MAILROOM_SMTP_MAX_CONNECTIONS: perWorker.join(' / '),
          ...env,
        },
        ...(nodeArgs.length > 0 ? { nodeArgs } : {}),
        enqueue:
          handOver === 'campaign'
            ? 'MailroomClient.createCampaign: the template once, N recipients streamed into compact chunks ' +
              '(1,000 each), materialised into batch jobs (50) by the workers as the queue drains'
            : handOver === 'preloaded'
              ? `MailroomClient.sendMany, ${BATCH} messages per call, into the paused queue before the clock ` +
                'starts; the clock starts when the queue is resumed'
              : `MailroomClient.sendMany, ${BATCH} messages per call`,
        producer: 'in the benchmark process (the "bench driver")',
        redis: REDIS_SETTINGS,
      };
    },
    async setUp({ n, relayPort, connections, timeoutMs }) {
      const perWorker = splitConnections(connections, workers, label);
      const build = mailroomBuild();
      /** @type {(() => Promise<void>)[]} */
      const undo = [];
      const tearDown = async () => {
        const steps = undo.splice(0).reverse();
        for (const step of steps) await step();
      };
      try {
        const redis = await startRedisServer({ name: `redis (${label})` });
        undo.push(() => redis.stop());
        const processes = perWorker.map((maxConnections, i) =>
          startProcess(process.execPath, [...nodeArgs, build.path('apps/cli/bin/mailroom.js'), 'worker'], {
            name: `${id} worker ${i + 1}`,
            env: {
              ...process.env,
              ...WORKER_ENV,
              ...env,
              MAILROOM_REDIS_URL: redis.url,
              MAILROOM_SMTP_HOST: '127.0.0.1',
              MAILROOM_SMTP_PORT: String(relayPort),
              MAILROOM_SMTP_MAX_CONNECTIONS: String(maxConnections),
            },
          }),
        );
        // The shutdown timeout of the workers is 25 s by default; a profiled worker also writes its profile.
        undo.push(() => Promise.all(processes.map((w) => w.stop({ graceMs: 30_000 }))).then(() => undefined));
        await waitForWorkers(build, redis.url, prefixSetting, processes, timeoutMs);

        const { MailroomClient } = /** @type {typeof import('@mailroom/client')} */ (
          await import(pathToFileURL(build.path('packages/client/dist/index.js')).href)
        );
        const client = new MailroomClient({
          redis: redis.url,
          ...(prefixSetting === undefined ? {} : { prefix: prefixSetting }),
        });
        undo.push(() => client.close());
        await client.ready();
        // Whole messages are built before the clock starts; a campaign's recipients are generated as read.
        const messages = handOver !== 'campaign' ? Array.from({ length: n }, (_, i) => newsletter(i)) : [];
        const meter = costs
          ? await startCostMeter({
              url: redis.url,
              redisPid: redis.pid,
              workerPids: processes.map((w) => w.pid),
            })
          : undefined;
        if (meter) undo.push(async () => meter.close());
        const idle = meter && idleMs > 0 ? await meter.idle(idleMs) : undefined;
        const redisBytesBefore = await redisUsedMemory(redis.url);
        const memory = handOver === 'campaign' ? startMemorySampler(redis.url, prefixSetting) : undefined;
        if (memory) undo.push(() => memory.stop());
        /** @type {number | undefined} */
        let redisBytesAtHandOverEnd;
        await meter?.mark();
        const paused =
          handOver === 'preloaded' ? await openMailQueue(build, redis.url, prefixSetting) : undefined;
        if (paused) {
          undo.push(() => paused.close());
          await paused.queue.pause();
          for (let start = 0; start < messages.length; start += BATCH) {
            await client.sendMany(messages.slice(start, start + BATCH));
          }
        }
        return {
          version: build.fingerprint,
          processes: [
            ...processes.map((w) => ({ name: w.name, pid: w.pid })),
            { name: 'redis-server', pid: redis.pid, tree: true },
          ],
          async handOver() {
            if (paused) {
              await paused.queue.resume();
              return;
            }
            if (handOver === 'campaign') {
              const receipt = await client.createCampaign({
                name: 'Mailroom Weekly (benchmark)',
                template: newsletterTemplate(),
                recipients: recipients(n),
              });
              if (receipt.accepted !== n) {
                throw new BenchError(
                  'ERR_BENCH_HAND_OVER',
                  `the campaign accepted ${receipt.accepted} of ${n} recipients`,
                );
              }
              redisBytesAtHandOverEnd = await redisUsedMemory(redis.url);
              return;
            }
            for (let start = 0; start < messages.length; start += BATCH) {
              await client.sendMany(messages.slice(start, start + BATCH));
            }
          },
          assertHealthy: () => assertRunning(processes),
          // What Redis still holds per delivered message: the ledger's records and logs, kept for
          // MAILROOM_LEDGER_RETENTION_SECONDS, and BullMQ's event stream (capped).
          // A campaign's run also says what Redis held while it was sent (see campaignMemoryFigures).
          figuresAfterRun: async () => {
            const after = await redisUsedMemory(redis.url);
            /** @type {Record<string, number>} */
            const figures = { redisBytesPerMessage: (after - redisBytesBefore) / n };
            if (meter) Object.assign(figures, await costFigures(meter, { n, prefix: prefixSetting, idle }));
            if (!memory) return figures;
            return {
              ...figures,
              ...campaignMemoryFigures(await memory.stop(), { n, before: redisBytesBefore, after }),
              ...(redisBytesAtHandOverEnd === undefined
                ? {}
                : { redisBytesPerRecipientAtHandOverEnd: (redisBytesAtHandOverEnd - redisBytesBefore) / n }),
            };
          },
          tearDown,
        };
      } catch (err) {
        await tearDown();
        throw err;
      }
    },
  };
}

/** Terminal states counted in the ledger's stats hash. */
const TERMINAL_STATS = ['delivered', 'bounced', 'expired', 'failed', 'ambiguous', 'cancelled', 'suppressed'];
/** How often Redis memory and the ledger's counters are read during a campaign run. */
const MEMORY_SAMPLE_MS = 500;

/**
 * @typedef {object} MemorySample
 * @property {number} at ms since the sampler started
 * @property {number} used INFO used_memory
 * @property {number} accepted recipients accepted so far (ledger stats)
 * @property {number} terminal recipients in a terminal state so far
 */

/**
 * Reads Redis' used_memory and the ledger's counters every 500 ms until stopped.
 * @param {string} url
 * @param {string | undefined} prefix
 */
function startMemorySampler(url, prefix) {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  /** @type {MemorySample[]} */
  const samples = [];
  const started = performance.now();
  let busy = false;
  const read = async () => {
    if (busy) return;
    busy = true;
    try {
      const [[, info], [, stats]] = /** @type {[[null, string], [null, (string | null)[]]]} */ (
        await redis
          .multi()
          .info('memory')
          .hmget(`${prefix ?? '{mailroom}'}:stats`, 'accepted', ...TERMINAL_STATS)
          .exec()
      );
      const [accepted, ...terminal] = stats.map((v) => Number(v ?? 0));
      samples.push({
        at: performance.now() - started,
        used: Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN),
        accepted: accepted ?? 0,
        terminal: terminal.reduce((a, b) => a + b, 0),
      });
    } catch {
      // A missed sample only makes the peak less exact.
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void read(), MEMORY_SAMPLE_MS);
  let stopped = false;
  return {
    /** @returns {Promise<MemorySample[]>} */
    async stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        await read();
        redis.disconnect();
      }
      return samples;
    },
  };
}

/**
 * What Redis held for a campaign while it was sent. `redisPeakBytesPerRecipient` is the largest
 * used_memory over the run (minus the empty server's) per recipient of the list: it includes the records
 * of recipients already finished, which the ledger keeps for MAILROOM_LEDGER_RETENTION_SECONDS.
 * `redisPeakQueuedBytesPerRecipient` takes those out: at each sample, what the finished recipients cost
 * (measured at the end, when all are finished: `after` per recipient) is subtracted, and the largest rest
 * (chunks, records and jobs of recipients not finished) is divided by the recipients of the list.
 * @param {MemorySample[]} samples
 * @param {{ n: number, before: number, after: number }} run
 */
function campaignMemoryFigures(samples, { n, before, after }) {
  const finishedBytes = (after - before) / n;
  let peak = before;
  let peakQueued = 0;
  for (const s of samples) {
    peak = Math.max(peak, s.used);
    peakQueued = Math.max(peakQueued, s.used - before - s.terminal * finishedBytes);
  }
  return {
    redisPeakBytesPerRecipient: (peak - before) / n,
    redisPeakQueuedBytesPerRecipient: peakQueued / n,
    redisMemorySamples: samples.length,
  };
}

/**
 * Waits until every message is terminal (the sink counts a message before the worker records its
 * outcome), then closes the cost meter's window; the figures flattened for the run's `extra`.
 * @param {Awaited<ReturnType<typeof startCostMeter>>} meter
 * @param {{ n: number, prefix: string | undefined, idle: import('../lib/redis-cost.mjs').IdleFigures | undefined }} run
 * @returns {Promise<Record<string, number>>}
 */
async function costFigures(meter, { n, prefix, idle }) {
  await waitUntil(async () => (await meter.terminalCount(prefix ?? '{mailroom}', TERMINAL_STATS)) >= n, {
    timeoutMs: 60_000,
    intervalMs: 50,
    what: `the ledger to count ${n} terminal messages`,
  });
  const { callsPerMessage, usecPerMessage, ...cost } = await meter.finish(n);
  return {
    ...Object.fromEntries(Object.entries(cost).map(([key, value]) => [`cost.${key}`, value])),
    ...Object.fromEntries(Object.entries(callsPerMessage).map(([cmd, v]) => [`cost.calls.${cmd}`, v])),
    ...Object.fromEntries(Object.entries(usecPerMessage).map(([cmd, v]) => [`cost.usec.${cmd}`, v])),
    ...(idle ? Object.fromEntries(Object.entries(idle).map(([key, value]) => [`idle.${key}`, value])) : {}),
  };
}

/**
 * The campaign's recipients, generated one by one as the client reads them.
 * @param {number} n
 */
function* recipients(n) {
  for (let i = 0; i < n; i++) yield newsletterRecipient(i);
}

/**
 * Refuses settings the worker would not read, and those the benchmark sets itself: a variant whose
 * setting is silently ignored would be measured as if it made no difference.
 * @param {string} id
 * @param {Record<string, string>} env
 */
function checkEnv(id, env) {
  for (const key of Object.keys(env)) {
    const owned = /** @type {Record<string, string>} */ (OWNED_BY_BENCH)[key];
    if (owned) throw new BenchArgsError(`${id}: ${key} cannot be set here: ${owned}`);
    if (!key.startsWith('MAILROOM_')) throw new BenchArgsError(`${id}: ${key} is not a MAILROOM_* setting`);
    if (KNOWN_SETTINGS && !KNOWN_SETTINGS.has(key)) {
      throw new BenchArgsError(
        `${id}: ${key} is not a setting of this Mailroom worker (README, "Configuration", lists them)`,
      );
    }
  }
}

/** @returns {Promise<Set<string> | undefined>} the worker's setting names, or undefined when not built */
async function knownWorkerSettings() {
  try {
    const { workerSettings } = await import('@mailroom/worker');
    return new Set(Object.keys(workerSettings));
  } catch {
    return undefined;
  }
}

/**
 * The mail queue of the build, to pause and resume it.
 * @param {import('../lib/build-snapshot.mjs').BuildSnapshot} build
 * @param {string} url
 * @param {string | undefined} prefix MAILROOM_QUEUE_PREFIX, when set
 */
async function openMailQueue(build, url, prefix) {
  const { DEFAULT_PREFIX, MAIL_QUEUE } = /** @type {typeof import('@mailroom/queue')} */ (
    await import(pathToFileURL(build.path('packages/queue/dist/index.js')).href)
  );
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(MAIL_QUEUE, { connection, prefix: prefix ?? DEFAULT_PREFIX });
  return {
    queue,
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

/**
 * The workers log nothing at `warn` when they start, so readiness is read from Redis: each running
 * worker holds a connection named after the mail queue.
 * @param {import('../lib/build-snapshot.mjs').BuildSnapshot} build
 * @param {string} url
 * @param {string | undefined} prefix MAILROOM_QUEUE_PREFIX, when set
 * @param {import('../lib/child-process.mjs').ProcessHandle[]} workers
 * @param {number} timeoutMs
 */
async function waitForWorkers(build, url, prefix, workers, timeoutMs) {
  const { DEFAULT_PREFIX, MAIL_QUEUE } = /** @type {typeof import('@mailroom/queue')} */ (
    await import(pathToFileURL(build.path('packages/queue/dist/index.js')).href)
  );
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(MAIL_QUEUE, { connection, prefix: prefix ?? DEFAULT_PREFIX });
  try {
    await waitUntil(
      async () => {
        assertRunning(workers);
        return (await queue.getWorkersCount()) >= workers.length;
      },
      { timeoutMs, intervalMs: 50, what: `${workers.length} Mailroom workers to connect` },
    );
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
