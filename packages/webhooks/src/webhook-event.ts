import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/**
 * What a webhook reports. Every terminal state of a message has its event (`delivered`, `bounced`,
 * `expired`, `failed`, `ambiguous`, `cancelled`, `suppressed`), plus `deferred` (a transient failure; the
 * message is retried) and the feedback that arrives after sending (`complained`, `unsubscribed`).
 */
export const WEBHOOK_EVENT_TYPES = [
  'delivered',
  'deferred',
  'bounced',
  'expired',
  'failed',
  'ambiguous',
  'cancelled',
  'suppressed',
  'complained',
  'unsubscribed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The SMTP facts of the attempt an event reports, when there was a reply. */
export interface WebhookSmtpFacts {
  /** Reply code, e.g. 250 or 550. */
  readonly code?: number;
  /** RFC 3463 enhanced status, e.g. `5.1.1`. */
  readonly enhanced?: string;
  /** The reply text, at most {@link MAX_RESPONSE_CHARS} characters. */
  readonly response?: string;
}

/** One event as a receiver gets it (the body of a request is a JSON array of these). */
export interface WebhookEvent {
  /** Unique per event and the same on every retry: receivers deduplicate on it. */
  readonly id: string;
  readonly type: WebhookEventType;
  /** When it happened (ISO 8601, UTC). */
  readonly occurredAt: string;
  /**
   * Mailroom's message id (what `send` returned as `id`). Always present on delivery events; absent only on
   * a `complained` or `unsubscribed` event that could not be tied to one message.
   */
  readonly messageId?: string;
  /** The Message-ID header, with angle brackets. */
  readonly messageIdHeader?: string;
  readonly campaign?: string;
  /** The list an `unsubscribed` recipient left (the campaign template's `list`, else the sender's domain). */
  readonly list?: string;
  /** The recipient's address. In the payload only: Mailroom never logs it at info level. */
  readonly recipient: string;
  /** The configured name of the relay that answered. */
  readonly relay?: string;
  readonly smtp?: WebhookSmtpFacts;
  /**
   * Why, in Mailroom's words: `max_age`, `campaign_cancelled`, `unsubscribe`, a classification reason;
   * `hard_bounce`, `soft_bounce` or `complaint` for a report that came back after sending, `one_click` for
   * an unsubscribe.
   */
  readonly reason?: string;
  /** The delivery attempt, from 1. */
  readonly attempt?: number;
}

type Loose<T> = { [K in keyof T]: undefined extends T[K] ? T[K] | undefined : T[K] };

/**
 * What `WebhookEmitter.emit` takes: an event without its id and time (both assigned at emission unless
 * given). Optional fields may be passed as `undefined`; they are left out of the JSON.
 */
export type WebhookEventInput = Loose<Omit<WebhookEvent, 'id' | 'occurredAt' | 'smtp'>> & {
  readonly id?: string | undefined;
  readonly occurredAt?: string | undefined;
  readonly smtp?: Loose<WebhookSmtpFacts> | undefined;
};

/** Reply texts longer than this are cut: a relay's multi-line answer must not bloat every queued event. */
export const MAX_RESPONSE_CHARS = 1000;

/**
 * The event as queued: id and time assigned, the reply text bounded, only the known fields (what a caller
 * passes beyond them is not sent), no undefined values, in the documented order.
 */
export function toWebhookEvent(input: WebhookEventInput, now = Date.now()): WebhookEvent {
  const event: Record<string, unknown> = {
    id: input.id ?? randomUUID(),
    type: input.type,
    occurredAt: input.occurredAt ?? new Date(now).toISOString(),
  };
  if (input.messageId !== undefined) event.messageId = input.messageId;
  if (input.messageIdHeader !== undefined) event.messageIdHeader = input.messageIdHeader;
  if (input.campaign !== undefined) event.campaign = input.campaign;
  if (input.list !== undefined) event.list = input.list;
  event.recipient = input.recipient;
  if (input.relay !== undefined) event.relay = input.relay;
  const smtp = input.smtp;
  if (smtp !== undefined) {
    const facts: Record<string, unknown> = {};
    if (smtp.code !== undefined) facts.code = smtp.code;
    if (smtp.enhanced !== undefined) facts.enhanced = smtp.enhanced;
    if (smtp.response !== undefined) facts.response = smtp.response.slice(0, MAX_RESPONSE_CHARS);
    event.smtp = facts;
  }
  if (input.reason !== undefined) event.reason = input.reason;
  if (input.attempt !== undefined) event.attempt = input.attempt;
  return event as unknown as WebhookEvent;
}

/**
 * The event as zod sees it, for the edges: job data read back from Redis, and receivers parsing a body.
 * Unknown fields are allowed (and dropped) so that a receiver keeps working when Mailroom adds one.
 */
export const webhookEventSchema = z.object({
  id: z.string().min(1).max(100),
  type: z.enum(WEBHOOK_EVENT_TYPES),
  occurredAt: z.iso.datetime({ offset: true }),
  messageId: z.string().min(1).max(200).optional(),
  messageIdHeader: z.string().max(998).optional(),
  campaign: z.string().max(200).optional(),
  list: z.string().max(64).optional(),
  recipient: z.string().min(1).max(320),
  relay: z.string().max(64).optional(),
  smtp: z
    .object({
      code: z.number().int().min(100).max(999).optional(),
      enhanced: z.string().max(32).optional(),
      response: z.string().max(MAX_RESPONSE_CHARS).optional(),
    })
    .optional(),
  reason: z.string().max(200).optional(),
  attempt: z.number().int().min(0).optional(),
});

/** A request body: the events of one delivery, oldest first. */
export const webhookBodySchema = z.array(webhookEventSchema).min(1);
