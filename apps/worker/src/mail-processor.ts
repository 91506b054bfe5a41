import { DelayedError, type Job } from 'bullmq';
import { classifySmtpOutcome, type Classification } from '@mailroom/core';
import type { WorkerMetrics, AttemptResult, TerminalOutcome } from '@mailroom/metrics';
import {
  ContentMissingError,
  partRefs,
  resolvePart,
  type ContentStore,
  type MailJobData,
} from '@mailroom/queue';
import { SmtpSendError, composeMessage, type RelayTransport } from '@mailroom/smtp';
import type { Logger } from './logger.js';
import type { RelayGate } from './relay-gate.js';
import { nextAttemptDelayMs, type RetryPolicyOptions } from './retry-policy.js';

/** What a finished job records as its return value. */
export interface DeliveryResult {
  readonly outcome: Extract<TerminalOutcome, 'delivered' | 'bounced' | 'expired' | 'failed'>;
  /** Attempts that reached the relay, this one included. */
  readonly attempts: number;
  readonly at: number;
  readonly responseCode?: number;
  readonly enhancedStatus?: string;
  /** The relay's reply text (may name the recipient: it stays in Redis, never in info logs or metrics). */
  readonly response?: string;
  readonly reason?: string;
}

/** Thrown for a failure BullMQ should retry with Mailroom's backoff; carries the classification. */
export class TransientDeliveryError extends Error {
  override readonly name = 'TransientDeliveryError';
  constructor(
    readonly classification: Classification,
    readonly retryInMs: number,
    options?: { cause?: unknown },
  ) {
    super(`transient delivery failure (${classification.reason})`, options);
  }
}

export interface MailProcessorDeps {
  readonly transport: RelayTransport;
  readonly content: ContentStore;
  readonly metrics: WorkerMetrics;
  readonly logger: Logger;
  readonly gate: RelayGate;
  readonly retry: RetryPolicyOptions;
  readonly configFaultPauseMs: number;
}

const CONFIG_FAULT_KIND: Record<string, 'auth' | 'tls' | 'dns' | 'policy'> = {
  auth: 'auth',
  tls: 'tls',
  dns: 'dns',
};

/**
 * The job processor: one message, one SMTP transaction. Outcomes:
 * - relay said 250: delivered, job completes;
 * - permanent reply: bounced at once, no retry, job completes;
 * - transient or throttled: thrown, BullMQ retries with capped backoff until the message's deadline, then expired;
 * - configuration fault: nothing is bounced; the message waits (no attempt spent) and the relay is paused.
 */
export function createMailProcessor(deps: MailProcessorDeps) {
  const { transport, content, metrics, logger, gate } = deps;

  function finish(job: Job<MailJobData>, result: DeliveryResult): DeliveryResult {
    metrics.terminal.inc({ outcome: result.outcome });
    const delayS = (result.at - job.data.acceptedAt) / 1000;
    logger.info(
      {
        msgId: job.data.id,
        outcome: result.outcome,
        attempts: result.attempts,
        responseCode: result.responseCode,
        enhancedStatus: result.enhancedStatus,
        reason: result.reason,
        delayS,
      },
      'message finished',
    );
    return result;
  }

  async function holdForGate(job: Job<MailJobData>, token: string | undefined): Promise<never> {
    await job.moveToDelayed(Math.max(gate.until, Date.now() + 1), token);
    throw new DelayedError('relay paused after a configuration fault');
  }

  return async function processMail(job: Job<MailJobData>, token?: string): Promise<DeliveryResult> {
    const data = job.data;
    const attempt = job.attemptsMade + 1;
    if (Date.now() >= data.expiresAt) {
      return finish(job, {
        outcome: 'expired',
        attempts: job.attemptsMade,
        at: Date.now(),
        reason: 'max_age',
      });
    }
    if (gate.isClosed()) return holdForGate(job, token);

    let raw: Buffer;
    try {
      const loaded = await content.load(partRefs(data));
      raw = await composeMessage({
        from: data.from,
        to: data.to,
        ...(data.replyTo ? { replyTo: data.replyTo } : {}),
        subject: data.subject,
        ...(data.text ? { text: resolvePart(data.text, loaded) } : {}),
        ...(data.html ? { html: resolvePart(data.html, loaded) } : {}),
        headers: data.headers,
        attachments: data.attachments.map((a) => ({
          filename: a.filename,
          contentType: a.contentType,
          ...(a.contentId === undefined ? {} : { contentId: a.contentId }),
          content: Buffer.from(resolvePart(a.content, loaded), 'base64'),
        })),
        messageIdHeader: data.messageIdHeader,
      });
    } catch (err) {
      if (err instanceof ContentMissingError) {
        logger.error({ msgId: data.id, err }, 'message content is missing');
        return finish(job, {
          outcome: 'failed',
          attempts: job.attemptsMade,
          at: Date.now(),
          reason: 'content_missing',
        });
      }
      throw err;
    }

    const started = performance.now();
    try {
      const accepted = await transport.send({ from: data.from.address, to: data.to.address }, raw);
      recordAttempt('delivered', '2xx', started);
      logger.debug(
        { msgId: data.id, rcpt: data.to.address, response: accepted.response },
        'relay accepted message',
      );
      return finish(job, {
        outcome: 'delivered',
        attempts: attempt,
        at: Date.now(),
        responseCode: accepted.responseCode,
        response: accepted.response,
      });
    } catch (err) {
      if (!(err instanceof SmtpSendError)) throw err;
      const c = classifySmtpOutcome(err.observation);
      const facts = {
        msgId: data.id,
        attempt,
        outcome: c.outcome,
        reason: c.reason,
        responseCode: err.observation.responseCode,
        enhancedStatus: c.enhancedStatus,
        code: err.observation.code,
        command: err.observation.command,
      };
      switch (c.outcome) {
        case 'delivered':
        case 'permanent': {
          recordAttempt('bounced', c.replyClass, started);
          logger.debug(
            { ...facts, rcpt: data.to.address, response: err.observation.response },
            'relay refused message',
          );
          return finish(job, {
            outcome: 'bounced',
            attempts: attempt,
            at: Date.now(),
            ...(err.observation.responseCode === undefined
              ? {}
              : { responseCode: err.observation.responseCode }),
            ...(c.enhancedStatus === undefined ? {} : { enhancedStatus: c.enhancedStatus }),
            ...(err.observation.response === undefined ? {} : { response: err.observation.response }),
            reason: c.reason,
          });
        }
        case 'config': {
          recordAttempt('paused', c.replyClass, started);
          metrics.configFaults.inc({ reason: CONFIG_FAULT_KIND[c.replyClass] ?? 'policy' });
          logger.error(facts, 'relay configuration fault: sending paused, message kept');
          gate.close(deps.configFaultPauseMs, c.reason);
          return holdForGate(job, token);
        }
        case 'transient':
        case 'throttled':
        case 'ambiguous': {
          const result: AttemptResult = c.replyClass === '4xx' ? 'deferred' : 'error';
          recordAttempt(result, c.replyClass, started);
          const maxAttempts = job.opts.attempts ?? 1;
          const delay =
            attempt >= maxAttempts
              ? null
              : nextAttemptDelayMs(attempt, data.expiresAt, Date.now(), deps.retry);
          if (delay === null) {
            return finish(job, {
              outcome: 'expired',
              attempts: attempt,
              at: Date.now(),
              ...(err.observation.responseCode === undefined
                ? {}
                : { responseCode: err.observation.responseCode }),
              ...(c.enhancedStatus === undefined ? {} : { enhancedStatus: c.enhancedStatus }),
              ...(err.observation.response === undefined ? {} : { response: err.observation.response }),
              reason: attempt >= maxAttempts ? 'max_attempts' : 'max_age',
            });
          }
          logger.info({ ...facts, retryInMs: delay }, 'message deferred');
          throw new TransientDeliveryError(c, delay, { cause: err });
        }
      }
    }
  };

  function recordAttempt(result: AttemptResult, replyClass: string, started: number): void {
    metrics.attempts.inc({ result, reply_class: replyClass });
    metrics.sendDuration.observe({ result }, (performance.now() - started) / 1000);
  }
}

/** BullMQ backoff strategy: the delay the processor computed for this failure (see TransientDeliveryError). */
export function mailBackoffStrategy(_attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof TransientDeliveryError) return err.retryInMs;
  // An unexpected error (Redis hiccup, bug): retry soon, BullMQ's attempts bound it.
  return 5000;
}
