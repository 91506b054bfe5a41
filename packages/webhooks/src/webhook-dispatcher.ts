import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisConnection } from '@mailroom/queue';
import type { WebhookEndpoint } from './webhook-config.js';
import { LogThrottle, silentWebhookLogger, type WebhookLogger } from './webhook-logger.js';
import type { WebhookMetrics } from './webhook-metrics.js';
import { postWebhook } from './post-webhook.js';
import {
  WEBHOOK_QUEUE,
  webhookJobDataSchema,
  type WEBHOOK_JOB,
  type WebhookJobData,
} from './webhook-queue.js';

/** Thrown for a try BullMQ should repeat after `retryInMs` (the dispatcher's backoff strategy reads it). */
export class WebhookRetryError extends Error {
  override readonly name = 'WebhookRetryError';
  constructor(
    message: string,
    readonly retryInMs: number,
  ) {
    super(message);
  }
}

export interface WebhookRetryOptions {
  /** Delay before the second try, ms (default 10 s); doubles per try, with jitter. */
  baseMs?: number;
  /** Longest delay between two tries, ms (default 1 h). A receiver's Retry-After is honoured up to this. */
  maxMs?: number;
}

export interface WebhookDispatcherOptions {
  /** The worker's Redis connection (BullMQ opens its blocking connection beside it). */
  connection: RedisConnection;
  /** The queue prefix with its hash tag, as for the mail queue. */
  prefix: string;
  endpoints: readonly WebhookEndpoint[];
  metrics?: WebhookMetrics;
  logger?: WebhookLogger;
  /** Requests in flight at once in this process (default 16). */
  concurrency?: number;
  retry?: WebhookRetryOptions;
}

export const DISPATCHER_DEFAULTS = Object.freeze({
  concurrency: 16,
  retryBaseMs: 10_000,
  retryMaxMs: 3_600_000,
  closeTimeoutMs: 10_000,
});

/** A job for an endpoint this process does not know (a deploy in progress) is tried again after this. */
const UNKNOWN_ENDPOINT_DELAY_MS = 60_000;
/** Retry window for such a job. */
const UNKNOWN_ENDPOINT_WINDOW_MS = 24 * 3_600_000;
/** Failures of one endpoint are logged at most this often (with the count held back). */
const LOG_INTERVAL_MS = 60_000;

/**
 * The delay before try `tries + 1`: `baseMs * 2^(tries-1)` capped at `maxMs`, of which a random half is
 * taken away (equal jitter: receivers that failed together do not all come back at once), and never below
 * the receiver's Retry-After (itself capped at `maxMs`).
 */
export function webhookRetryDelayMs(
  tries: number,
  retry: Required<WebhookRetryOptions>,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(retry.maxMs, retry.baseMs * 2 ** Math.min(Math.max(tries - 1, 0), 30));
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, retry.maxMs));
}

/** BullMQ backoff strategy: the delay the processor computed (see WebhookRetryError). */
export function webhookBackoffStrategy(_attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof WebhookRetryError) return err.retryInMs;
  // An unexpected error (a bug, Redis): soon again; the job's attempts bound it.
  return 5000;
}

/**
 * Delivers the queued webhooks: a BullMQ Worker on the `webhooks` queue, in any number of processes. 2xx is
 * done; 410 Gone stops the delivery (failed job, logged as an error); any other status, a timeout or a
 * network error is retried with exponential backoff and jitter until the endpoint's retry window (24 h by
 * default) is over, then the job fails and is kept for inspection.
 */
export class WebhookDispatcher {
  readonly worker: Worker<WebhookJobData, void, typeof WEBHOOK_JOB>;
  readonly #endpoints: ReadonlyMap<string, WebhookEndpoint>;
  readonly #metrics: WebhookMetrics | undefined;
  readonly #logger: WebhookLogger;
  readonly #retry: Required<WebhookRetryOptions>;
  readonly #logs = new LogThrottle(LOG_INTERVAL_MS);
  readonly #active = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;

  constructor(options: WebhookDispatcherOptions) {
    this.#endpoints = new Map(options.endpoints.map((e) => [e.name, e]));
    this.#metrics = options.metrics;
    this.#logger = options.logger ?? silentWebhookLogger;
    this.#retry = {
      baseMs: options.retry?.baseMs ?? DISPATCHER_DEFAULTS.retryBaseMs,
      maxMs: options.retry?.maxMs ?? DISPATCHER_DEFAULTS.retryMaxMs,
    };
    this.worker = new Worker<WebhookJobData, void, typeof WEBHOOK_JOB>(
      WEBHOOK_QUEUE,
      (job) => {
        const running = this.#process(job).finally(() => this.#active.delete(running));
        this.#active.add(running);
        return running;
      },
      {
        connection: options.connection,
        prefix: options.prefix,
        concurrency: options.concurrency ?? DISPATCHER_DEFAULTS.concurrency,
        autorun: false,
        // A crashed process's request is made again by another (receivers deduplicate by event id).
        maxStalledCount: 5,
        settings: { backoffStrategy: webhookBackoffStrategy },
      },
    );
    this.worker.on('error', (err) => {
      if (this.#logs.pass('worker-error')) {
        this.#logger.warn({ err: { message: err.message } }, 'webhook worker error');
      }
    });
  }

  /** Starts taking deliveries; resolves once the worker is connected. */
  async start(): Promise<void> {
    void this.worker.run().catch((err: unknown) => {
      this.#logger.error({ err: { message: (err as Error).message } }, 'webhook worker stopped unexpectedly');
    });
    await this.worker.waitUntilReady();
  }

  /**
   * Takes no new deliveries and waits for the requests in flight, at most `timeoutMs` (default 10 s); those
   * still running then are left to BullMQ's stalled-job recovery (made again by another process).
   */
  close(timeoutMs: number = DISPATCHER_DEFAULTS.closeTimeoutMs): Promise<void> {
    this.#closing ??= (async () => {
      await this.worker.pause(true);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        Promise.allSettled([...this.#active]).then(() => 'drained' as const),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        this.#logger.warn(
          { active: this.#active.size },
          'webhook requests still running at shutdown: left for retry',
        );
      }
      await this.worker.close(outcome === 'timeout');
    })();
    return this.#closing;
  }

  async #process(job: Job<WebhookJobData, void, typeof WEBHOOK_JOB>): Promise<void> {
    const tries = job.attemptsMade + 1;
    const lastTry = tries >= (job.opts.attempts ?? 1);
    const data = webhookJobDataSchema.safeParse(job.data);
    if (!data.success) {
      this.#logger.error({ jobId: job.id }, 'webhook delivery with unreadable data: not sent');
      throw new UnrecoverableError('unreadable job data');
    }
    const endpoint = this.#endpoints.get(data.data.endpoint);
    if (endpoint === undefined) {
      if (this.#logs.pass(`unknown:${data.data.endpoint}`)) {
        this.#logger.warn(
          { endpoint: data.data.endpoint, jobId: job.id },
          'webhook delivery for an endpoint this process does not know: tried again later',
        );
      }
      if (lastTry || Date.now() - job.timestamp > UNKNOWN_ENDPOINT_WINDOW_MS) {
        throw new UnrecoverableError(`endpoint "${data.data.endpoint}" is not configured`);
      }
      throw new WebhookRetryError('endpoint not configured here', UNKNOWN_ENDPOINT_DELAY_MS);
    }
    const name = endpoint.name;
    // The events exactly as queued: the same bytes on every try.
    const body = JSON.stringify(job.data.events);
    const outcome = await postWebhook(endpoint, {
      body,
      eventIds: data.data.events.map((e) => e.id),
      deliveryId: String(job.id),
      attempt: tries,
    });
    this.#metrics?.deliverySeconds.observe({ endpoint: name }, outcome.seconds);
    const facts = { endpoint: name, jobId: job.id, attempt: tries, events: data.data.events.length };

    switch (outcome.kind) {
      case 'delivered':
        this.#metrics?.deliveries.inc({ endpoint: name, result: 'delivered' });
        this.#logs.reset(`retry:${name}`);
        this.#logger.debug({ ...facts, status: outcome.status }, 'webhook delivered');
        return;
      case 'gone': {
        this.#metrics?.deliveries.inc({ endpoint: name, result: 'gone' });
        const pass = this.#logs.pass(`gone:${name}`);
        if (pass) {
          this.#logger.error(
            { ...facts, status: 410, heldBack: pass.held },
            'webhook endpoint answered 410 Gone: delivery stopped (remove or fix the endpoint)',
          );
        }
        throw new UnrecoverableError('HTTP 410 Gone: endpoint gone, not retried');
      }
      case 'retry': {
        const delay = webhookRetryDelayMs(tries, this.#retry, outcome.retryAfterMs);
        if (lastTry || Date.now() + delay > job.timestamp + endpoint.retryForMs) {
          this.#metrics?.deliveries.inc({ endpoint: name, result: 'failed' });
          this.#logger.error(
            { ...facts, reason: outcome.reason, retryForMs: endpoint.retryForMs },
            'webhook delivery given up: retry window over (the job is kept as failed)',
          );
          throw new UnrecoverableError(`${outcome.reason}; given up after ${tries} tries`);
        }
        this.#metrics?.deliveries.inc({ endpoint: name, result: 'retry' });
        const pass = this.#logs.pass(`retry:${name}`);
        if (pass) {
          this.#logger.warn(
            { ...facts, reason: outcome.reason, retryInMs: delay, heldBack: pass.held },
            'webhook delivery failed: will retry',
          );
        }
        throw new WebhookRetryError(outcome.reason, delay);
      }
    }
  }
}
