import type { Registry } from 'prom-client';
import type { RedisConnection } from '@mailroom/queue';
import type { WebhookEndpoint } from './webhook-config.js';
import { WebhookDispatcher, type WebhookRetryOptions } from './webhook-dispatcher.js';
import { WebhookEmitter, type WebhookEmitterOptions } from './webhook-emitter.js';
import type { WebhookLogger } from './webhook-logger.js';
import { createWebhookMetrics, type WebhookMetrics } from './webhook-metrics.js';
import { createWebhookQueue, type WebhookQueue } from './webhook-queue.js';

export interface WebhooksOptions {
  /** The process's Redis connection (`maxRetriesPerRequest: null`, as workers use). */
  redis: RedisConnection;
  /** Queue prefix with its hash tag (`MAILROOM_QUEUE_PREFIX`). */
  prefix: string;
  endpoints: readonly WebhookEndpoint[];
  /** The process's registry: the webhook metrics are registered on it. */
  registry: Registry;
  logger: WebhookLogger;
  /** Also deliver (run a dispatcher in this process). Default true; an API process only emits. */
  dispatch?: boolean;
  /** Requests in flight at once in this process (default 16). */
  concurrency?: number;
  retry?: WebhookRetryOptions;
  emitter?: Pick<WebhookEmitterOptions, 'flushIntervalMs' | 'flushAtEvents' | 'maxBufferedEvents'>;
}

/** Webhooks in one process: the emitter the send path calls, and (unless told not to) a dispatcher. */
export interface Webhooks {
  readonly emitter: WebhookEmitter;
  readonly dispatcher: WebhookDispatcher | undefined;
  /** The `webhooks` queue, e.g. for the queue gauges. */
  readonly queue: WebhookQueue;
  readonly metrics: WebhookMetrics;
  /**
   * Writes the buffered events (at most `timeoutMs`, default 5 s), stops the dispatcher (waiting for
   * requests in flight, at most 10 s) and closes the queue. Call it after the mail worker has stopped and
   * before the Redis connection is closed.
   */
  close(timeoutMs?: number): Promise<void>;
}

export async function startWebhooks(options: WebhooksOptions): Promise<Webhooks> {
  const metrics = createWebhookMetrics({
    registry: options.registry,
    endpoints: options.endpoints.map((e) => e.name),
  });
  const queue = createWebhookQueue(options.redis, { prefix: options.prefix });
  queue.on('error', (err) =>
    options.logger.warn({ err: { message: err.message } }, 'webhook queue connection error'),
  );
  const emitter = new WebhookEmitter({
    ...options.emitter,
    queue,
    endpoints: options.endpoints,
    metrics,
    logger: options.logger,
  });
  const dispatcher =
    options.dispatch === false
      ? undefined
      : new WebhookDispatcher({
          connection: options.redis,
          prefix: options.prefix,
          endpoints: options.endpoints,
          metrics,
          logger: options.logger,
          ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
          ...(options.retry === undefined ? {} : { retry: options.retry }),
        });
  await dispatcher?.start();
  options.logger.info(
    { endpoints: options.endpoints.map((e) => e.name), dispatch: dispatcher !== undefined },
    'webhooks started',
  );
  let closing: Promise<void> | undefined;
  return {
    emitter,
    dispatcher,
    queue,
    metrics,
    close(timeoutMs) {
      closing ??= (async () => {
        await emitter.close(timeoutMs);
        await dispatcher?.close();
        await queue.close();
      })();
      return closing;
    },
  };
}
