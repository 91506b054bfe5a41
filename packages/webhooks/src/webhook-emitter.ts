import {
  WEBHOOK_EVENT_TYPES,
  toWebhookEvent,
  type WebhookEvent,
  type WebhookEventInput,
  type WebhookEventType,
} from './webhook-event.js';
import type { WebhookEndpoint } from './webhook-config.js';
import { LogThrottle, silentWebhookLogger, type WebhookLogger } from './webhook-logger.js';
import type { WebhookDropReason, WebhookMetrics } from './webhook-metrics.js';
import { WEBHOOK_JOB, type WebhookJobData, type WebhookQueue } from './webhook-queue.js';

export interface WebhookEmitterOptions {
  /** Where deliveries are queued (`createWebhookQueue`); only `addBulk` is used. */
  queue: Pick<WebhookQueue, 'addBulk'>;
  /** The endpoints and the event types each one receives. */
  endpoints: readonly WebhookEndpoint[];
  metrics?: WebhookMetrics;
  logger?: WebhookLogger;
  /** Longest an event waits in the buffer before it is written to the queue, ms (default 100). */
  flushIntervalMs?: number;
  /** A buffer this full is written at once; also the most events one `addBulk` carries (default 500). */
  flushAtEvents?: number;
  /**
   * Events this process holds at most: in the buffer plus in the `addBulk` waiting for Redis (default
   * 10,000, about 9 MB: 890 bytes per held event). Beyond it, events are dropped and counted
   * (`mailroom_webhook_events_dropped_total`).
   */
  maxBufferedEvents?: number;
}

/** What an emitter did since it was created. */
export interface WebhookEmitterStats {
  /** Events taken by `emit` that some endpoint receives. */
  readonly emitted: number;
  /** Events confirmed in the queue (an event for two endpoints counts once). */
  readonly queued: number;
  readonly dropped: number;
  /** Held now: buffered plus in the `addBulk` in flight. */
  readonly held: number;
  /** Of those, in the `addBulk` in flight (waiting for Redis). */
  readonly writing: number;
}

export const EMITTER_DEFAULTS = Object.freeze({
  flushIntervalMs: 100,
  flushAtEvents: 500,
  maxBufferedEvents: 10_000,
  closeTimeoutMs: 5000,
});

/** After a failed `addBulk`: the first retry delay and the longest, ms. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;
/** A warning about drops or a failing Redis at most this often. */
const WARN_INTERVAL_MS = 10_000;
/** Bound on close's flush rounds (each is one `addBulk` or one wait after a failure). */
const MAX_CLOSE_ROUNDS = 10_000;

/**
 * Turns events into queued deliveries without ever making the send path wait: `emit` is synchronous and
 * never throws; events gather in a bounded buffer written to the `webhooks` queue by one `addBulk` every
 * `flushIntervalMs` (or at once when `flushAtEvents` are waiting), one job per endpoint and up to
 * `maxEventsPerRequest` events. When Redis is slow or down the buffer fills up to `maxBufferedEvents`; events
 * beyond it are counted as dropped and logged, never lost silently. `close()` writes what is left.
 */
export class WebhookEmitter {
  readonly #queue: Pick<WebhookQueue, 'addBulk'>;
  readonly #endpoints: readonly WebhookEndpoint[];
  readonly #wanted: ReadonlySet<WebhookEventType>;
  readonly #metrics: WebhookMetrics | undefined;
  readonly #logger: WebhookLogger;
  readonly #intervalMs: number;
  readonly #flushAt: number;
  readonly #maxHeld: number;
  readonly #warnings = new LogThrottle(WARN_INTERVAL_MS);

  #buffer: WebhookEvent[] = [];
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerMs = 0;
  #flushing: Promise<void> | undefined;
  /** Consecutive failed writes; while above 0, writes are retried with backoff. */
  #failures = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Set when close gave up on what was left: a write that ends later changes nothing any more. */
  #abandoned = false;
  #emitted = 0;
  #queued = 0;
  #dropped = 0;

  constructor(options: WebhookEmitterOptions) {
    this.#queue = options.queue;
    this.#endpoints = options.endpoints;
    this.#wanted = new Set(WEBHOOK_EVENT_TYPES.filter((t) => options.endpoints.some((e) => e.events.has(t))));
    this.#metrics = options.metrics;
    this.#logger = options.logger ?? silentWebhookLogger;
    this.#intervalMs = Math.max(1, options.flushIntervalMs ?? EMITTER_DEFAULTS.flushIntervalMs);
    this.#flushAt = Math.max(1, options.flushAtEvents ?? EMITTER_DEFAULTS.flushAtEvents);
    this.#maxHeld = Math.max(1, options.maxBufferedEvents ?? EMITTER_DEFAULTS.maxBufferedEvents);
  }

  /**
   * Takes one event for every endpoint that receives its type (none: ignored). Synchronous, never throws,
   * never waits for Redis. The event gets its `id` and `occurredAt` here unless they are given.
   */
  emit(input: WebhookEventInput): void {
    try {
      if (!this.#wanted.has(input.type)) return;
      this.#emitted += 1;
      if (this.#closed) {
        this.#drop('shutdown', 1);
        return;
      }
      if (this.#held() >= this.#maxHeld) {
        this.#drop('buffer_full', 1);
        return;
      }
      this.#buffer.push(toWebhookEvent(input));
      this.#metrics?.buffered.set(this.#held());
      this.#schedule();
    } catch (err) {
      try {
        this.#drop('error', 1, err);
      } catch {
        // emit never throws, not even when logging fails.
      }
    }
  }

  /** Writes what is buffered now and resolves once it is in the queue (or the write failed). */
  async flush(): Promise<void> {
    this.#clearTimer();
    if (this.#flushing) await this.#flushing;
    if (this.#buffer.length > 0) await this.#startFlush(true);
    if (this.#buffer.length > 0 && !this.#closed) this.#schedule();
  }

  /**
   * Stops taking events (later ones are counted dropped, reason `shutdown`) and writes the buffer, waiting at
   * most `timeoutMs` (default 5000) for Redis; what is still unwritten then is counted dropped and logged.
   * Close it after the last sender that emits, before the Redis connection.
   */
  close(timeoutMs: number = EMITTER_DEFAULTS.closeTimeoutMs): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  stats(): WebhookEmitterStats {
    return {
      emitted: this.#emitted,
      queued: this.#queued,
      dropped: this.#dropped,
      held: this.#held(),
      writing: this.#inFlight,
    };
  }

  #held(): number {
    return this.#buffer.length + this.#inFlight;
  }

  /** Arms the next write: at once for a full buffer, after `flushIntervalMs` otherwise, later after failures. */
  #schedule(): void {
    if (this.#flushing !== undefined || this.#closed || this.#buffer.length === 0) return;
    if (this.#failures > 0) this.#arm(this.#retryDelayMs());
    else this.#arm(this.#buffer.length >= this.#flushAt ? 0 : this.#intervalMs);
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) {
      if (ms >= this.#timerMs) return;
      clearTimeout(this.#timer);
    }
    this.#timerMs = ms;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#startFlush(false);
    }, ms);
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #retryDelayMs(): number {
    return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(this.#failures - 1, 10));
  }

  #startFlush(drainAll: boolean): Promise<void> {
    this.#flushing ??= this.#flushLoop(drainAll).finally(() => {
      this.#flushing = undefined;
      this.#schedule();
    });
    return this.#flushing;
  }

  /**
   * One `addBulk` per round, at most `flushAtEvents` events. A round that leaves less than a full buffer
   * stops (the rest waits for the timer and gathers more) unless `drainAll`.
   */
  async #flushLoop(drainAll: boolean): Promise<void> {
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#flushAt);
      this.#inFlight = batch.length;
      try {
        await this.#queue.addBulk(this.#jobsOf(batch));
        if (this.#abandoned) return;
        this.#queued += batch.length;
        if (this.#failures > 0) {
          this.#logger.info({ failures: this.#failures }, 'webhook events queued again');
          this.#warnings.reset('write');
        }
        this.#failures = 0;
      } catch (err) {
        if (this.#abandoned) return;
        // Back to the front, oldest first; they were counted in the bound already, so they fit.
        this.#buffer = batch.concat(this.#buffer);
        this.#failures += 1;
        const pass = this.#warnings.pass('write');
        if (pass) {
          this.#logger.warn(
            { err: { message: (err as Error).message }, held: this.#held(), failedWrites: pass.held + 1 },
            'webhook events not queued yet: Redis refused the write, retrying',
          );
        }
        return;
      } finally {
        if (!this.#abandoned) {
          this.#inFlight = 0;
          this.#metrics?.buffered.set(this.#held());
        }
      }
      if (!drainAll && this.#buffer.length < this.#flushAt) return;
    }
  }

  /** The deliveries for a batch: per endpoint, its event types, at most `maxEventsPerRequest` per job. */
  #jobsOf(batch: readonly WebhookEvent[]) {
    const jobs: { name: typeof WEBHOOK_JOB; data: WebhookJobData }[] = [];
    for (const endpoint of this.#endpoints) {
      const mine = batch.filter((e) => endpoint.events.has(e.type));
      for (let i = 0; i < mine.length; i += endpoint.maxEventsPerRequest) {
        jobs.push({
          name: WEBHOOK_JOB,
          data: { endpoint: endpoint.name, events: mine.slice(i, i + endpoint.maxEventsPerRequest) },
        });
      }
    }
    return jobs;
  }

  #drop(reason: WebhookDropReason, count: number, err?: unknown): void {
    this.#dropped += count;
    this.#metrics?.dropped.inc({ reason }, count);
    const pass = this.#warnings.pass(`drop:${reason}`);
    if (pass) {
      this.#logger.warn(
        {
          reason,
          dropped: count + pass.held,
          droppedTotal: this.#dropped,
          maxBufferedEvents: this.#maxHeld,
          ...(err === undefined ? {} : { err: { message: (err as Error).message } }),
        },
        'webhook events dropped',
      );
    }
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#clearTimer();
    let deadline: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      deadline = setTimeout(() => resolve('expired'), timeoutMs);
    });
    const within = (step: Promise<unknown>) => Promise.race([step.then(() => 'done' as const), expired]);
    try {
      for (let round = 0; round < MAX_CLOSE_ROUNDS; round++) {
        if (this.#flushing !== undefined) {
          if ((await within(this.#flushing)) === 'expired') break;
          continue;
        }
        if (this.#buffer.length === 0) break;
        if (this.#failures > 0) {
          // The last write failed: wait the retry delay (within the deadline) before the next one.
          let pause: NodeJS.Timeout | undefined;
          const waited = await within(
            new Promise<void>((resolve) => {
              pause = setTimeout(resolve, this.#retryDelayMs());
            }),
          );
          clearTimeout(pause);
          if (waited === 'expired') break;
        }
        if ((await within(this.#startFlush(true))) === 'expired') break;
      }
    } finally {
      clearTimeout(deadline);
    }
    const unwritten = this.#held();
    if (unwritten > 0) {
      // A write still waiting for Redis may yet land; it is counted dropped here all the same, since the
      // connection normally closes right after this and nobody could tell.
      this.#abandoned = true;
      this.#buffer = [];
      this.#inFlight = 0;
      this.#metrics?.buffered.set(0);
      this.#dropped += unwritten;
      this.#metrics?.dropped.inc({ reason: 'shutdown' }, unwritten);
      this.#logger.warn(
        { dropped: unwritten, timeoutMs },
        'webhook events not queued by the close deadline: dropped',
      );
    }
  }
}
