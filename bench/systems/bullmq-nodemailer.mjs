import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { assertRunning, startProcess } from '../lib/child-process.mjs';
import { redisUsedMemory, startRedisServer, REDIS_SETTINGS } from '../lib/redis-server.mjs';
import { newsletter } from '../lib/newsletter.mjs';
import { splitConnections } from '../lib/split-connections.mjs';
import { waitUntil } from '../lib/wait-until.mjs';

const WORKER_SCRIPT = fileURLToPath(new URL('./bullmq-nodemailer-worker.mjs', import.meta.url));
/** Worker processes. */
const WORKERS = 2;
/** Jobs each worker process runs at once. */
const CONCURRENCY = 100;
/** Jobs per Queue.addBulk call. */
const BATCH = 1000;
const QUEUE = 'newsletter';
const PREFIX = 'bench';

/**
 * (b) The plain BullMQ + nodemailer pipeline: the producer puts the whole 2 KB message in each job
 * (Queue.addBulk, 1,000 per call), two worker processes compose and send each with a nodemailer pool
 * (--connections split over them). What a team gets from the two libraries with no design of its own.
 * @type {import('../lib/measure-run.mjs').BenchSystem}
 */
export const bullmqNodemailer = {
  id: 'bullmq',
  label: 'BullMQ + nodemailer (full message per job)',
  unavailableReason: () => undefined,
  settings: ({ connections }) => ({
    workerProcesses: WORKERS,
    concurrencyPerProcess: CONCURRENCY,
    smtpConnectionsPerProcess: splitConnections(connections, WORKERS, 'the BullMQ pipeline'),
    nodemailerPool: 'pool: true, maxConnections as above, other pool options at their defaults',
    enqueue: `Queue.addBulk, ${BATCH} jobs per call, removeOnComplete: true, job data = the whole message`,
    redis: REDIS_SETTINGS,
  }),
  async setUp({ n, relayPort, connections, timeoutMs }) {
    const perWorker = splitConnections(connections, WORKERS, 'the BullMQ pipeline');
    /** @type {(() => Promise<void>)[]} */
    const undo = [];
    const tearDown = async () => {
      const steps = undo.splice(0).reverse();
      for (const step of steps) await step();
    };
    try {
      const redis = await startRedisServer({ name: 'redis (BullMQ baseline)' });
      undo.push(() => redis.stop());
      const workers = perWorker.map((maxConnections, i) =>
        startProcess(process.execPath, [WORKER_SCRIPT], {
          name: `baseline worker ${i + 1}`,
          env: {
            ...process.env,
            BENCH_REDIS_URL: redis.url,
            BENCH_SINK_PORT: String(relayPort),
            BENCH_MAX_CONNECTIONS: String(maxConnections),
            BENCH_CONCURRENCY: String(CONCURRENCY),
            BENCH_QUEUE: QUEUE,
            BENCH_PREFIX: PREFIX,
          },
        }),
      );
      undo.push(() => Promise.all(workers.map((w) => w.stop())).then(() => undefined));
      await Promise.all(workers.map((w) => w.waitForOutput(/^ready$/m, timeoutMs)));

      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const queue = new Queue(QUEUE, { connection, prefix: PREFIX });
      undo.push(async () => {
        await queue.close();
        connection.disconnect();
      });
      await queue.waitUntilReady();
      // A worker that printed "ready" is connected; make sure Redis sees both before the clock starts.
      await waitUntil(async () => (await queue.getWorkersCount()) >= WORKERS, {
        timeoutMs,
        intervalMs: 50,
        what: `${WORKERS} BullMQ workers to register`,
      });
      const redisBytesBefore = await redisUsedMemory(redis.url);
      const jobs = Array.from({ length: n }, (_, i) => ({
        name: 'send',
        data: newsletter(i),
        opts: { removeOnComplete: true },
      }));
      return {
        processes: [
          ...workers.map((w) => ({ name: w.name, pid: w.pid })),
          { name: 'redis-server', pid: redis.pid, tree: true },
        ],
        async handOver() {
          for (let start = 0; start < jobs.length; start += BATCH) {
            await queue.addBulk(jobs.slice(start, start + BATCH));
          }
        },
        assertHealthy: () => assertRunning(workers),
        // Completed jobs are removed: what remains is BullMQ's event stream (capped) and bookkeeping.
        figuresAfterRun: async () => ({
          redisBytesPerMessage: ((await redisUsedMemory(redis.url)) - redisBytesBefore) / n,
        }),
        tearDown,
      };
    } catch (err) {
      await tearDown();
      throw err;
    }
  },
};
