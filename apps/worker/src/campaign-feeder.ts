import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  CAMPAIGN_PRIORITY,
  SEND_BATCH_JOB,
  mailroomKeys,
  type CampaignChunks,
  type CampaignFeedState,
  type MailQueue,
} from '@mailroom/queue';
import type { Logger } from './logger.js';

export interface CampaignFeederOptions {
  redis: Redis;
  queue: MailQueue;
  chunks: CampaignChunks;
  prefix: string;
  logger: Logger;
  /**
   * Recipients waiting in campaign batch jobs (not yet taken by a worker) at or above which no further
   * chunk is materialised. Memory then holds at most this many waiting members as records and jobs, plus
   * one chunk, plus what workers hold and what waits for a retry.
   */
  highWater: number;
  /** Time between passes, ms (default 200). */
  intervalMs?: number;
  /** Most chunks materialised or ended per pass (default 200); a pass that reaches it runs again at once. */
  chunksPerPass?: number;
}

export interface FeedReport {
  leader: boolean;
  /** Recipients materialised into ledger records and batch jobs. */
  fed: number;
  /** Recipients ended `expired` in bulk, never materialised (past their maximum age). */
  expired: number;
  /** Chunks whose jobs were added by a later pass than their records (a feeder stopped in between). */
  requeuedChunks: number;
  /** Campaigns with nothing left to feed, dropped from the feeding set. */
  retired: number;
  /** Recipients waiting in campaign batch jobs at the end of the pass (estimated from job counts). */
  backlog: number;
  /** True when the pass stopped at its chunk budget with work left. */
  more: boolean;
}

const DEFAULT_INTERVAL_MS = 200;
const DEFAULT_CHUNKS_PER_PASS = 200;

/**
 * Materialises chunked campaigns as the queue needs them (backpressure). Each pass, for every campaign
 * with work left, oldest first:
 * 1. chunks whose records exist but whose batch jobs were never added (a feeder stopped between the two
 *    steps) get their jobs: job ids are derived, so adding one that exists is a no-op;
 * 2. chunks past their recipients' maximum age end `expired` in bulk, whatever the campaign's state (a
 *    paused campaign's recipients still expire, as their records would);
 * 3. a running campaign whose `sendAt` has come gets chunks materialised (records, then jobs) while fewer
 *    than `highWater` recipients wait in campaign batch jobs.
 * Every step is an atomic script with a cursor (see CampaignChunks), so a crash anywhere repeats a step at
 * most and writes nothing twice. Every worker runs a feeder; only the holder of a Redis lease acts.
 */
export class CampaignFeeder {
  private readonly instance = randomBytes(8).toString('hex');
  private readonly intervalMs: number;
  private readonly chunksPerPass: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly o: CampaignFeederOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.chunksPerPass = o.chunksPerPass ?? DEFAULT_CHUNKS_PER_PASS;
  }

  start(): void {
    const tick = () => {
      let again = false;
      this.running = this.runOnce()
        .then((report) => {
          again = report.more;
        })
        .catch((err: unknown) =>
          this.o.logger.warn({ err: { message: (err as Error).message } }, 'campaign feed pass failed'),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, again ? 0 : this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
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
    return mailroomKeys(this.o.prefix).campaignFeederLease();
  }

  private async lease(): Promise<boolean> {
    const ttl = Math.max(15 * this.intervalMs, 3000);
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

  /** Campaign batch jobs waiting to be taken, in jobs (BullMQ keeps them by priority). */
  private async waitingBatchJobs(): Promise<number> {
    const counts = await this.o.queue.getCountsPerPriority([CAMPAIGN_PRIORITY]);
    return Number(counts[String(CAMPAIGN_PRIORITY)] ?? 0);
  }

  async runOnce(now = Date.now()): Promise<FeedReport> {
    const report: FeedReport = {
      leader: false,
      fed: 0,
      expired: 0,
      requeuedChunks: 0,
      retired: 0,
      backlog: 0,
      more: false,
    };
    if (!(await this.lease())) return report;
    report.leader = true;
    const { chunks, logger } = this.o;
    let budget = this.chunksPerPass;
    let waitingJobs = await this.waitingBatchJobs();

    for (const id of await chunks.feeding()) {
      if (budget <= 0) break;
      const feed = await chunks.feedState(id);
      report.requeuedChunks += await this.queueMissingJobs(feed, now);

      // Past their maximum age: end in bulk, never materialised.
      let next = feed.fed;
      while (next < feed.chunks && budget > 0) {
        const result = await chunks.materialise(feed, next, 'expire', now);
        if (result.kind !== 'expired') break;
        report.expired += result.count;
        budget -= 1;
        next += 1;
      }

      if (feed.state === 'running' && now >= feed.sendAt) {
        while (next < feed.chunks && budget > 0 && waitingJobs * feed.batchSize < this.o.highWater) {
          const result = await chunks.materialise(feed, next, 'feed', now);
          if (result.kind === 'expired') report.expired += result.count;
          else if (result.kind === 'fed') {
            await this.addJobs(feed, next, now);
            await chunks.markQueued(id, next);
            report.fed += result.count;
            waitingJobs = await this.waitingBatchJobs();
          } else break;
          budget -= 1;
          next += 1;
        }
        if (next < feed.chunks && budget <= 0) report.more = true;
      }

      if (await chunks.retire(id)) {
        report.retired += 1;
        logger.debug({ campaign: id }, 'campaign fully fed');
      }
    }
    report.backlog = waitingJobs;
    if (report.expired > 0) logger.info({ expired: report.expired }, 'campaign recipients expired unsent');
    if (report.requeuedChunks > 0) {
      logger.warn({ chunks: report.requeuedChunks }, 'campaign chunks without jobs got their jobs');
    }
    return report;
  }

  /** Jobs for chunks materialised by a feeder that stopped before adding them. Returns chunks queued. */
  private async queueMissingJobs(feed: CampaignFeedState, now: number): Promise<number> {
    const upTo = Math.min(feed.fed, feed.cancelledFrom ?? Infinity);
    let queued = 0;
    for (let k = feed.queued; k < upTo; k += 1) {
      if (!(await this.o.chunks.endedUnmaterialised(feed.id, k))) {
        await this.addJobs(feed, k, now);
        queued += 1;
      }
      if (!(await this.o.chunks.markQueued(feed.id, k))) break;
    }
    return queued;
  }

  private async addJobs(feed: CampaignFeedState, chunk: number, now: number): Promise<void> {
    const delay = Math.max(0, feed.sendAt - now);
    await this.o.queue.addBulk(
      this.o.chunks.batches(feed, chunk).map(
        (b) =>
          ({
            name: SEND_BATCH_JOB,
            data: { ids: b.ids, campaign: feed.id },
            opts: { jobId: b.jobId, priority: CAMPAIGN_PRIORITY, ...(delay > 0 ? { delay } : {}) },
          }) as const,
      ),
    );
  }
}
