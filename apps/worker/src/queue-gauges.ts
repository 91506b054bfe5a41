import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import {
  QUEUE_AGE_STATES,
  QUEUE_JOB_STATES,
  createQueueMetrics,
  type QueueAgeState,
  type QueueMetrics,
} from '@mailroom/metrics';
import type { Ledger } from '@mailroom/queue';
import type { Logger } from './logger.js';

export interface QueueGaugesOptions {
  /** Registry of the process's /metrics listener; the gauges are registered on it. */
  registry: Registry;
  /** The connection the queues use, for reading job timestamps. */
  redis: Redis;
  /** The queues to describe; each one's name is its `queue` label. */
  queues: readonly Queue[];
  /** The ledger whose overdue count is exported. */
  ledger: Pick<Ledger, 'overdue'>;
  /**
   * A message counts as overdue once it is this long past its deadline without a terminal state, ms: the time
   * the reconciler and an attempt in flight may take to end it (the reconciler's own grace).
   */
  overdueGraceMs: number;
  /** Time between two reads of Redis, ms (default 5000). Scrapes read the last values; they never wait. */
  intervalMs?: number;
  /** Jobs looked at from the head of a queue to find the next one that was never attempted (default 100). */
  scanDepth?: number;
  logger?: Logger;
}

/** The running queue-gauge role. */
export interface QueueGauges {
  readonly metrics: QueueMetrics;
  /** Reads every gauge from Redis once (the timer calls this); rejects when Redis does. */
  refresh(now?: number): Promise<void>;
  /** Stops reading; waits for a read in progress, at most `timeoutMs` (default 2000) so a dead Redis cannot hold shutdown. */
  stop(timeoutMs?: number): Promise<void>;
}

const DEFAULT_INTERVAL_MS = 5000;
const DEFAULT_SCAN_DEPTH = 100;
/** BullMQ scores a delayed job `readyAt * 0x1000 + counter`. */
const DELAYED_SCORE_FACTOR = 0x1000;

/** The job hash fields that tell when a job became ready to run. */
interface JobTimes {
  /** Creation, ms. */
  readonly timestamp: number;
  /** Start of its last attempt, ms; absent for a job never attempted. */
  readonly processedOn?: number;
  /** Delay it was created with, ms. */
  readonly delay: number;
}

function parseJobTimes(fields: (string | null)[] | undefined): JobTimes | undefined {
  const [timestamp, processedOn, opts] = fields ?? [];
  if (timestamp === null || timestamp === undefined) return undefined;
  let delay = 0;
  try {
    const parsed = JSON.parse(opts ?? '{}') as { delay?: unknown };
    if (typeof parsed.delay === 'number' && Number.isFinite(parsed.delay)) delay = parsed.delay;
  } catch {
    // Unreadable options: the creation time alone.
  }
  return {
    timestamp: Number(timestamp),
    delay,
    ...(processedOn === null || processedOn === undefined ? {} : { processedOn: Number(processedOn) }),
  };
}

/**
 * Age of the job next in line, in seconds. A job never attempted became ready at creation plus its delay
 * (exact); BullMQ keeps no such moment for a retried job, so the first never-attempted job in `jobs` (head
 * first) is used, and only when there is none, the head's last attempt (an upper bound that includes its
 * backoff).
 */
function nextInLineAge(jobs: readonly (JobTimes | undefined)[], now: number): number {
  const known = jobs.filter((j): j is JobTimes => j !== undefined);
  const fresh = known.find((j) => j.processedOn === undefined);
  const head = known[0];
  const readyAt =
    fresh !== undefined
      ? fresh.timestamp + fresh.delay
      : head === undefined
        ? now
        : (head.processedOn ?? now);
  return Math.max(0, (now - readyAt) / 1000);
}

/**
 * The queue-gauge role: job counts by state, the age of the job next in line, the paused flag and the
 * ledger's overdue count, read from Redis every `intervalMs`. Run it in ONE process: the numbers describe
 * Redis, so scaled workers would only repeat them.
 */
export function startQueueGauges(options: QueueGaugesOptions): QueueGauges {
  const metrics = createQueueMetrics({
    registry: options.registry,
    queues: options.queues.map((q) => q.name),
  });
  const depth = Math.max(1, options.scanDepth ?? DEFAULT_SCAN_DEPTH);
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;

  async function ages(queue: Queue, now: number): Promise<Record<QueueAgeState, number>> {
    const client = options.redis;
    const heads = await client
      .pipeline()
      .lrange(queue.toKey('wait'), -depth, -1)
      .zrange(queue.toKey('prioritized'), 0, String(depth - 1))
      .zrange(queue.toKey('delayed'), 0, '0', 'WITHSCORES')
      .exec();
    const reply = (i: number): string[] => {
      const [err, value] = heads?.[i] ?? [null, []];
      if (err) throw err;
      return value as string[];
    };
    // Workers take waiting jobs from the right end of the list: the head is the last element.
    const waiting = reply(0).reverse();
    const prioritized = reply(1);
    const [, delayedScore] = reply(2);

    const ids = [...waiting, ...prioritized];
    const times: (JobTimes | undefined)[] = [];
    if (ids.length > 0) {
      const read = client.pipeline();
      for (const id of ids) read.hmget(queue.toKey(id), 'timestamp', 'processedOn', 'opts');
      for (const [err, fields] of (await read.exec()) ?? []) {
        times.push(err ? undefined : parseJobTimes(fields as (string | null)[]));
      }
    }
    const dueAt = delayedScore === undefined ? now : Math.floor(Number(delayedScore) / DELAYED_SCORE_FACTOR);
    return {
      waiting: waiting.length === 0 ? 0 : nextInLineAge(times.slice(0, waiting.length), now),
      prioritized: prioritized.length === 0 ? 0 : nextInLineAge(times.slice(waiting.length), now),
      delayed: Math.max(0, (now - dueAt) / 1000),
    };
  }

  async function refresh(now = Date.now()): Promise<void> {
    const readings = await Promise.all(
      options.queues.map(async (queue) => {
        const [counts, paused, age] = await Promise.all([
          queue.getJobCounts(...QUEUE_JOB_STATES),
          queue.isPaused(),
          ages(queue, now),
        ]);
        return { queue: queue.name, counts, paused, age };
      }),
    );
    const overdue = await options.ledger.overdue(now - options.overdueGraceMs);
    // Every value is set only once all reads succeeded, so a scrape never mixes two moments.
    for (const { queue, counts, paused, age } of readings) {
      for (const state of QUEUE_JOB_STATES) metrics.jobs.set({ queue, state }, counts[state] ?? 0);
      for (const state of QUEUE_AGE_STATES) metrics.oldestJobAge.set({ queue, state }, age[state]);
      metrics.paused.set({ queue }, paused ? 1 : 0);
    }
    metrics.overdue.set(overdue);
    metrics.lastRefresh.set(now / 1000);
  }

  let stopped = false;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = (): void => {
    running = refresh()
      .then(() => {
        if (failing) options.logger?.info('queue gauges read again');
        failing = false;
      })
      .catch((err: unknown) => {
        // Logged once per outage, not at every tick; the last-success timestamp shows how old the values are.
        if (!failing)
          options.logger?.warn({ err: { message: (err as Error).message } }, 'queue gauges not read');
        failing = true;
      })
      .finally(() => {
        running = undefined;
        if (!stopped) {
          timer = setTimeout(tick, intervalMs);
          timer.unref();
        }
      });
  };
  tick();

  return {
    metrics,
    refresh,
    async stop(timeoutMs = 2000) {
      stopped = true;
      clearTimeout(timer);
      if (running === undefined) return;
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        running,
        new Promise<void>((resolve) => {
          bound = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(bound);
    },
  };
}
