import { Queue, type DefaultJobOptions } from 'bullmq';
import { z } from 'zod';
import { assertPrefix, type RedisConnection } from '@mailroom/queue';
import { webhookBodySchema, type WebhookEvent } from './webhook-event.js';

/** The queue of webhook deliveries, under the same hash-tagged prefix as the mail queue. */
export const WEBHOOK_QUEUE = 'webhooks';

/** Name of the job that carries one request: some events for one endpoint. */
export const WEBHOOK_JOB = 'deliver';

/** Name of the backoff strategy the dispatcher registers (the delay its processor computed). */
export const WEBHOOK_BACKOFF_TYPE = 'mailroom-webhook';

/**
 * One delivery: the events of one request to one endpoint. Only the endpoint's name is queued; its URL and
 * secrets stay in the configuration (never in Redis), so a rotated secret applies to queued deliveries too.
 */
export interface WebhookJobData {
  readonly endpoint: string;
  readonly events: readonly WebhookEvent[];
}

/** Job data read back from Redis (an edge: validated before use). */
export const webhookJobDataSchema = z.object({
  endpoint: z.string().min(1).max(32),
  events: webhookBodySchema,
});

/**
 * Attempts are bounded by each endpoint's retry window (24 h by default), checked by the dispatcher; this
 * cap only stops a delivery that fails fast forever.
 */
const MAX_ATTEMPTS = 200;

export const webhookJobOptions: DefaultJobOptions = Object.freeze({
  attempts: MAX_ATTEMPTS,
  backoff: { type: WEBHOOK_BACKOFF_TYPE },
  // The receiver has it: nothing more to keep.
  removeOnComplete: true,
  // Failed deliveries (410, retry window over) stay a week for inspection and retry, the newest 10,000.
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  // Each failure stores its stack in the job; one frame set is enough to read a failed delivery.
  stackTraceLimit: 1,
});

export type WebhookQueue = Queue<WebhookJobData, unknown, typeof WEBHOOK_JOB>;

export function createWebhookQueue(connection: RedisConnection, options: { prefix: string }): WebhookQueue {
  assertPrefix(options.prefix);
  return new Queue<WebhookJobData, unknown, typeof WEBHOOK_JOB>(WEBHOOK_QUEUE, {
    connection,
    prefix: options.prefix,
    defaultJobOptions: webhookJobOptions,
  });
}
