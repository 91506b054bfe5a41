import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { WorkerMetrics } from '@mailroom/metrics';
import {
  MAIL_QUEUE,
  SEND_JOB,
  chunkOfBatchJob,
  mailroomKeys,
  type Ledger,
  type MailQueue,
} from '@mailroom/queue';
import type { Logger } from './logger.js';

export interface ReconcilerOptions {
  redis: Redis;
  ledger: Ledger;
  queue: MailQueue;
  prefix: string;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Time between passes, ms. */
  intervalMs: number;
  /** A record still `accepted` this long after acceptance without a job is an enqueue that never completed. */
  enqueueGraceMs: number;
  /** Non-terminal this long past the deadline counts as overdue (leaves time for attempts in flight). */
  overdueGraceMs: number;
  /** Records checked for a missing job per pass. */
  repairBatch?: number;
}

export interface ReconcileReport {
  expired: number;
  requeued: number;
  enqueueFailed: number;
  overdue: number;
  leader: boolean;
}

/**
 * The periodic pass that makes "exactly one terminal state" hold even when a job goes missing:
 * - messages past their deadline that are not being sent end as `expired`;
 * - a queued message whose job vanished (Redis data loss, a flushed queue) gets its job back (a repair,
 *   counted: it must be 0 in a healthy run);
 * - a record left `accepted` without a job (the producer was told the send failed) ends as `failed`.
 * Every worker runs it, but only the holder of a Redis lease acts, so the work is not repeated.
 */
export class Reconciler {
  private readonly instance = randomBytes(8).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private cursor = 0;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    const tick = () => {
      this.running = this.runOnce()
        .catch((err: unknown) =>
          this.o.logger.warn({ err: { message: (err as Error).message } }, 'reconcile pass failed'),
        )
        .finally(() => {
          this.running = undefined;
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.o.intervalMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(1000, this.o.intervalMs));
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.o.redis
      .eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        this.leaseKey(),
        this.instance,
      )
      .catch(() => undefined);
  }

  private leaseKey(): string {
    return `${this.o.prefix}:reconciler:lease`;
  }

  private async lease(): Promise<boolean> {
    const ttl = Math.max(3 * this.o.intervalMs, 5000);
    const got = await this.o.redis.eval(
      `local holder = redis.call('GET', KEYS[1])
       if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
       if not holder then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
       return 0`,
      1,
      this.leaseKey(),
      this.instance,
      ttl,
    );
    return Number(got) === 1;
  }

  async runOnce(now = Date.now()): Promise<ReconcileReport> {
    const report: ReconcileReport = { expired: 0, requeued: 0, enqueueFailed: 0, overdue: 0, leader: false };
    if (!(await this.lease())) return report;
    report.leader = true;
    const { ledger, metrics, logger } = this.o;

    // 1. Deadlines: end what is past its max age and not in an attempt (an attempt ends it itself).
    for (let offset = 0; ;) {
      const due = await ledger.pending({ upTo: now, offset, limit: 500 });
      if (due.length === 0) break;
      const ended = await ledger.finish(due, 'expired', 'max_age', { from: ['queued'] }, now);
      report.expired += ended.length;
      if (ended.length > 0) metrics.observeTerminal('expired', {}, ended.length);
      offset += due.length - ended.length;
      if (due.length < 500) break;
    }

    // 2. Records whose job is gone: a window of the pending set per pass, round robin.
    const batch = this.o.repairBatch ?? 1000;
    const ids = await ledger.pending({ offset: this.cursor, limit: batch });
    this.cursor = ids.length < batch ? 0 : this.cursor + ids.length;
    if (ids.length > 0) {
      // State and job existence read atomically: a ledger record turns terminal before its job is removed.
      const tx = this.o.redis.multi();
      for (const id of ids) {
        tx.hmget(ledger.key(id), 'state', 'acceptedAt', 'job');
        tx.exists(`${this.o.prefix}:${MAIL_QUEUE}:${id}`);
        tx.hget(`${this.o.prefix}:${MAIL_QUEUE}:${id}`, 'finishedOn');
      }
      const replies = (await tx.exec()) ?? [];
      // A campaign message travels in a batch job until it leaves the batch for a job of its own.
      const batchOf = new Map<string, string>();
      ids.forEach((id, i) => {
        const batch = (replies[3 * i]?.[1] as (string | null)[] | undefined)?.[2];
        if (batch) batchOf.set(id, batch);
      });
      const unqueued = await this.chunksWithoutJobs(batchOf);
      const batches = [...new Set(batchOf.values())];
      const liveBatches = new Set<string>();
      /**
       * A batch member's state and own job, read again together with its batch: the batch may have
       * finished (and been removed) since the first read, and its members are terminal before that.
       */
      const fresh = new Map<string, { state: string | null; hasJob: boolean; jobFinished: boolean }>();
      if (batches.length > 0) {
        const check = this.o.redis.multi();
        for (const b of batches)
          check
            .hget(`${this.o.prefix}:${MAIL_QUEUE}:${b}`, 'finishedOn')
            .exists(`${this.o.prefix}:${MAIL_QUEUE}:${b}`);
        const members = [...batchOf.keys()];
        for (const id of members) {
          check
            .hget(ledger.key(id), 'state')
            .exists(`${this.o.prefix}:${MAIL_QUEUE}:${id}`)
            .hget(`${this.o.prefix}:${MAIL_QUEUE}:${id}`, 'finishedOn');
        }
        const found = (await check.exec()) ?? [];
        batches.forEach((b, i) => {
          const finished = (found[2 * i]?.[1] ?? null) !== null;
          if (!finished && Number(found[2 * i + 1]?.[1] ?? 0) === 1) liveBatches.add(b);
        });
        const base = 2 * batches.length;
        members.forEach((id, i) => {
          fresh.set(id, {
            state: (found[base + 3 * i]?.[1] ?? null) as string | null,
            hasJob: Number(found[base + 3 * i + 1]?.[1] ?? 1) === 1,
            jobFinished: (found[base + 3 * i + 2]?.[1] ?? null) !== null,
          });
        });
      }
      const requeue: string[] = [];
      const abandon: string[] = [];
      /** Jobs BullMQ gave up on (stalled too often, unexpected errors) while the message is not finished. */
      const failedJobs: string[] = [];
      ids.forEach((id, i) => {
        const [firstState, acceptedAt] = (replies[3 * i]?.[1] as (string | null)[] | undefined) ?? [];
        const batch = batchOf.get(id);
        if (batch !== undefined && (liveBatches.has(batch) || unqueued.has(batch))) return;
        const again = fresh.get(id);
        const state = again ? again.state : firstState;
        const hasJob = again ? again.hasJob : Number(replies[3 * i + 1]?.[1] ?? 1) === 1;
        const jobFinished = again ? again.jobFinished : (replies[3 * i + 2]?.[1] ?? null) !== null;
        if (!state) return;
        if (hasJob && jobFinished && (state === 'queued' || state === 'sending')) {
          failedJobs.push(id);
          return;
        }
        if (hasJob) return;
        if (state === 'accepted') {
          if (now - Number(acceptedAt ?? now) > this.o.enqueueGraceMs) abandon.push(id);
        } else if (state === 'queued' || state === 'sending') requeue.push(id);
      });
      for (const id of failedJobs) {
        // A finished (failed) job is not locked; removing it frees its id for the new job below.
        await this.o.queue.remove(id);
        requeue.push(id);
      }
      if (abandon.length > 0) {
        const ended = await ledger.finish(
          abandon,
          'failed',
          'enqueue_incomplete',
          { from: ['accepted'] },
          now,
        );
        report.enqueueFailed = ended.length;
        metrics.reconcilerRepairs.inc({ reason: 'enqueue_incomplete' }, ended.length);
        if (ended.length > 0) metrics.observeTerminal('failed', {}, ended.length);
      }
      if (requeue.length > 0) {
        await this.o.queue.addBulk(
          requeue.map((id) => ({ name: SEND_JOB, data: { id }, opts: { jobId: id } }) as const),
        );
        await ledger.count('repaired', requeue.length);
        report.requeued = requeue.length;
        if (failedJobs.length > 0) metrics.reconcilerRepairs.inc({ reason: 'job_failed' }, failedJobs.length);
        const missing = requeue.length - failedJobs.length;
        if (missing > 0) metrics.reconcilerRepairs.inc({ reason: 'job_missing' }, missing);
        logger.error(
          { count: requeue.length, failedJobs: failedJobs.length },
          'messages whose job had vanished or failed were queued again',
        );
      }
    }

    // The count goes to the logs here; the queue-gauge role exports it as mailroom_messages_overdue.
    report.overdue = await ledger.overdue(now - this.o.overdueGraceMs);
    if (report.expired > 0 || report.enqueueFailed > 0) logger.info(report, 'reconcile pass');
    return report;
  }

  /**
   * Batch jobs the campaign feeder has not added yet: their chunk's records exist, its jobs come next (or,
   * after a feeder crash, from the next feeder pass). Their members are the feeder's to queue, not
   * missing jobs to repair.
   */
  private async chunksWithoutJobs(batchOf: ReadonlyMap<string, string>): Promise<Set<string>> {
    const chunkOf = new Map<string, { campaign: string; chunk: number }>();
    for (const batch of new Set(batchOf.values())) {
      const owner = chunkOfBatchJob(batch);
      if (owner) chunkOf.set(batch, owner);
    }
    const campaigns = [...new Set([...chunkOf.values()].map((c) => c.campaign))];
    if (campaigns.length === 0) return new Set();
    const read = this.o.redis.pipeline();
    for (const c of campaigns) read.hget(mailroomKeys(this.o.prefix).campaign(c), 'queued');
    const replies = (await read.exec()) ?? [];
    const queuedUpTo = new Map(campaigns.map((c, i) => [c, replies[i]?.[1] as string | null | undefined]));
    const out = new Set<string>();
    for (const [batch, { campaign, chunk }] of chunkOf) {
      const queued = queuedUpTo.get(campaign);
      if (typeof queued === 'string' && chunk >= Number(queued)) out.add(batch);
    }
    return out;
  }
}
