import { Queue, type DefaultJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { MailJobData } from './job-data.js';
import { MAIL_QUEUE, assertPrefix, type SEND_BATCH_JOB, type SEND_JOB } from './keys.js';

/** Name of the backoff strategy that workers register (capped exponential with jitter, bounded by max age). */
export const BACKOFF_TYPE = 'mailroom';

export interface MailQueueOptions {
  /** Key prefix with a hash tag (default `{mailroom}`). */
  prefix: string;
  /**
   * Upper bound on attempts per message. Messages normally end by max age long before this; it only stops a
   * message that fails fast forever (default 100).
   */
  maxAttempts?: number;
}

/** Job options shared by producers; the job id is always the message id. */
export function mailJobOptions(maxAttempts = 100): DefaultJobOptions {
  return {
    attempts: maxAttempts,
    backoff: { type: BACKOFF_TYPE },
    // The ledger record is the source of truth for a message; a finished job has nothing more to say.
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

export type MailJobName = typeof SEND_JOB | typeof SEND_BATCH_JOB;
export type MailQueue = Queue<MailJobData, unknown, MailJobName>;

export function createMailQueue(connection: Redis, options: MailQueueOptions): MailQueue {
  assertPrefix(options.prefix);
  return new Queue<MailJobData, unknown, MailJobName>(MAIL_QUEUE, {
    connection,
    prefix: options.prefix,
    defaultJobOptions: mailJobOptions(options.maxAttempts),
  });
}
