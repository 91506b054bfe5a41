import { Gauge, type Registry } from 'prom-client';

/** BullMQ job states counted per queue. */
export const QUEUE_JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed'] as const;
export type QueueJobState = (typeof QUEUE_JOB_STATES)[number];

/** States whose oldest job's age is exported: how long the job next in line has been able to run. */
export const QUEUE_AGE_STATES = ['waiting', 'prioritized', 'delayed'] as const;
export type QueueAgeState = (typeof QUEUE_AGE_STATES)[number];

export interface QueueMetricsOptions {
  registry: Registry;
  /** Names of the queues the gauges describe; every state of each starts at 0. */
  queues: readonly string[];
}

/**
 * Queue-wide gauges, exported by ONE process only (the queue-gauge role): they describe Redis, not the
 * process, so every scaled worker would repeat the same numbers.
 */
export interface QueueMetrics {
  readonly jobs: Gauge<'queue' | 'state'>;
  readonly oldestJobAge: Gauge<'queue' | 'state'>;
  readonly paused: Gauge<'queue'>;
  readonly overdue: Gauge;
  readonly lastRefresh: Gauge;
}

export function createQueueMetrics(options: QueueMetricsOptions): QueueMetrics {
  const registers = [options.registry];
  const jobs = new Gauge({
    name: 'mailroom_queue_jobs',
    help: 'Jobs in the queue by BullMQ state (waiting, prioritized, delayed, active, failed). One job can carry a campaign batch.',
    labelNames: ['queue', 'state'],
    registers,
  });
  const oldestJobAge = new Gauge({
    name: 'mailroom_queue_oldest_job_age_seconds',
    help: 'How long the job next in line has been ready to run: waiting and prioritized since it became ready (for a retried job, since its last attempt), delayed since its delay ran out without a worker taking it. 0 when none.',
    labelNames: ['queue', 'state'],
    registers,
  });
  const paused = new Gauge({
    name: 'mailroom_queue_paused',
    help: '1 while the queue is paused (workers take no jobs from it).',
    labelNames: ['queue'],
    registers,
  });
  for (const queue of options.queues) {
    for (const state of QUEUE_JOB_STATES) jobs.set({ queue, state }, 0);
    for (const state of QUEUE_AGE_STATES) oldestJobAge.set({ queue, state }, 0);
    paused.set({ queue }, 0);
  }
  const overdue = new Gauge({
    name: 'mailroom_messages_overdue',
    help: 'Messages past their max age (plus a grace for attempts in flight) without a terminal state. Must be 0.',
    registers,
  });
  const lastRefresh = new Gauge({
    name: 'mailroom_queue_gauges_last_success_timestamp_seconds',
    help: 'When the queue gauges were last read from Redis (Unix time); the gauges are as old as this.',
    registers,
  });
  return { jobs, oldestJobAge, paused, overdue, lastRefresh };
}
