import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { MailroomClient, SendReceipt } from '@mailroom/client';
import { ValidationError, type MessageState } from '@mailroom/core';
import { campaignMemberOf, type CampaignStore, type Ledger } from '@mailroom/queue';
import { ApiError } from '../api-error.js';
import { assertSendersAllowed } from '../authenticate.js';
import type { ApiLimits } from '../config.js';
import {
  batchInputSchema,
  batchReceiptSchema,
  cancelResultSchema,
  errorResponses,
  idParamsSchema,
  messageInputSchema,
  messageStatusSchema,
  receiptSchema,
  sendHeadersSchema,
} from '../schemas.js';

export interface MessageRoutesOptions {
  readonly client: MailroomClient;
  readonly ledger: Ledger;
  readonly campaigns: CampaignStore;
  readonly redis: Redis;
  /** The queue key prefix (not a route prefix: Fastify reserves `prefix` in plugin options). */
  readonly queuePrefix: string;
  readonly limits: ApiLimits;
  readonly idempotencyWindowSeconds: number;
  /** How long a repeated request waits for the first one with its Idempotency-Key to finish (ms). */
  readonly duplicateWaitMs: number;
}

const POLL_MS = 25;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Idempotency keys are per API key (per rotation chain): two applications can never collide or see each
 * other's messages, and a key rotated between two tries of one request still finds the first.
 */
function scopedKey(lineage: string, idempotencyKey: string): string {
  return `${lineage}:${idempotencyKey}`;
}

/**
 * Message routes: send one, send a batch, status, cancel. A 202 is given only once the client's send
 * resolved, i.e. the message is recorded and its job is in the queue. A repeated request (same
 * Idempotency-Key, same body) answers 200 with the first message's id once that message is queued.
 */
export const messageRoutes: FastifyPluginCallbackZod<MessageRoutesOptions> = (app, options, done) => {
  const { client, limits } = options;

  /** The state of a message a repeated request points at, once its first request got it queued. */
  async function settledState(id: string): Promise<MessageState> {
    const deadline = Date.now() + options.duplicateWaitMs;
    for (;;) {
      const { state } = await client.status(id);
      if (state !== 'accepted') return state;
      if (Date.now() >= deadline) {
        throw new ApiError(
          'ERR_CONFLICT',
          'a request with this Idempotency-Key is still being processed; retry shortly',
          [{ field: 'Idempotency-Key', message: 'is in use by a request still being processed' }],
          { 'retry-after': '1' },
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** What a receipt says over HTTP: the message's state (queued, suppressed, or a duplicate's own state). */
  async function describe(receipts: readonly SendReceipt[]) {
    return Promise.all(
      receipts.map(async (r) => ({
        id: r.id,
        messageId: r.messageId,
        duplicate: r.duplicate,
        state: r.duplicate
          ? await settledState(r.id)
          : r.status === 'suppressed'
            ? ('suppressed' as const)
            : ('queued' as const),
        ...(r.suppression === undefined ? {} : { suppression: { ...r.suppression } }),
      })),
    );
  }

  /** 202 when this request queued something; 200 when it only recorded suppressed or repeated messages. */
  const statusOf = (receipts: readonly SendReceipt[]) =>
    receipts.some((r) => r.status === 'queued') ? 202 : 200;

  app.post(
    '/v1/messages',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Send one message',
        description:
          '202 once the message is durably queued. 200 when nothing was queued: the recipient is suppressed (the message is recorded as suppressed and never sent), or a repeated Idempotency-Key with the same body (the first message is returned).',
        tags: ['messages'],
        headers: sendHeadersSchema,
        body: messageInputSchema(limits),
        response: { 200: receiptSchema, 202: receiptSchema, ...errorResponses(409, 413, 415) },
      },
    },
    async (request, reply) => {
      assertSendersAllowed(request.apiKey!, [[request.body.from, 'from']]);
      const key = request.headers['idempotency-key'];
      const receipt = await client.send(
        request.body,
        key === undefined ? {} : { idempotencyKey: scopedKey(request.apiKey!.lineage, key) },
      );
      const [described] = await describe([receipt]);
      return reply.code(statusOf([receipt])).send(described!);
    },
  );

  app.post(
    '/v1/messages/batch',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Send many messages',
        description: `Up to ${limits.maxBatchMessages} messages, validated together: one invalid message refuses the whole batch and nothing is queued (fields are named messages[i].field). 202 when at least one message was queued, else 200.`,
        tags: ['messages'],
        headers: sendHeadersSchema,
        body: batchInputSchema(limits),
        response: { 200: batchReceiptSchema, 202: batchReceiptSchema, ...errorResponses(409, 413, 415) },
      },
    },
    async (request, reply) => {
      const { messages } = request.body;
      assertSendersAllowed(
        request.apiKey!,
        messages.map((m, i) => [m.from, `messages[${i}].from`] as [unknown, string]),
      );
      const key = request.headers['idempotency-key'];
      let keys: string[] | undefined;
      if (key !== undefined) {
        const scoped = scopedKey(request.apiKey!.lineage, key);
        await bindBatchKey(scoped, JSON.stringify(messages));
        keys = messages.map((_, i) => `${scoped}#${i}`);
      }
      let receipts: SendReceipt[];
      try {
        receipts = await client.sendMany(messages, keys === undefined ? {} : { idempotencyKeys: keys });
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        throw new ValidationError(
          err.issues.map((i) => ({
            field: `messages${i.field.startsWith('[') ? '' : '.'}${i.field}`,
            message: i.message,
          })),
        );
      }
      const described = await describe(receipts);
      return reply.code(statusOf(receipts)).send({ messages: described });
    },
  );

  /**
   * Binds a batch's Idempotency-Key to the whole body (the client binds each message's derived key to that
   * message), so a different batch under the same key is refused even when its length differs.
   */
  async function bindBatchKey(scoped: string, body: string): Promise<void> {
    const redisKey = `${options.queuePrefix}:api:idem-batch:${sha256(scoped)}`;
    const fingerprint = sha256(body);
    const set = await options.redis.set(redisKey, fingerprint, 'EX', options.idempotencyWindowSeconds, 'NX');
    if (set === 'OK') return;
    const held = await options.redis.get(redisKey);
    if (held !== null && held !== fingerprint) {
      throw new ApiError(
        'ERR_IDEMPOTENCY_CONFLICT',
        'this Idempotency-Key was already used with a different request body',
        [{ field: 'Idempotency-Key', message: 'was already used with a different request body' }],
      );
    }
  }

  app.get(
    '/v1/messages/:id',
    {
      config: { scope: 'read' },
      schema: {
        summary: "A message's state and attempts",
        tags: ['messages'],
        params: idParamsSchema,
        response: { 200: messageStatusSchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const status = await client.status(request.params.id);
      return { ...status, history: [...status.history] };
    },
  );

  app.post(
    '/v1/messages/:id/cancel',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Withdraw a message not sent yet',
        tags: ['messages'],
        params: idParamsSchema,
        response: { 200: cancelResultSchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      await client.status(id); // 404 for an unknown id
      const from = await senderOf(id);
      if (from !== undefined) assertSendersAllowed(request.apiKey!, [[from, 'from']]);
      const cancelled = await client.cancel(id);
      const { state } = await client.status(id);
      return { id, cancelled, state };
    },
  );

  /**
   * The From of a message still holding its payload, or its campaign's template From for a campaign member
   * (one still in its campaign's chunks has no ledger record: its id names the campaign).
   */
  async function senderOf(id: string): Promise<unknown> {
    const payload = await options.ledger.payload(id);
    let campaign: unknown;
    if (payload === undefined) {
      campaign = campaignMemberOf(id)?.campaign;
    } else {
      const data = JSON.parse(payload) as { from?: unknown; campaign?: unknown };
      if (data.from !== undefined) return data.from;
      campaign = data.campaign;
    }
    if (typeof campaign !== 'string') return undefined;
    const template = await options.campaigns.template(campaign);
    return template === undefined ? undefined : (JSON.parse(template) as { from?: unknown }).from;
  }
  done();
};

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
