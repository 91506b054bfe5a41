import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { recipientsFromCsv, recipientsFromJsonl, type MailroomClient } from '@mailroom/client';
import { NotFoundError, ValidationError } from '@mailroom/core';
import { compileTemplate } from '@mailroom/mime';
import { campaignTag, mailroomKeys, type CampaignStore } from '@mailroom/queue';
import { ApiError } from '../api-error.js';
import { assertSendersAllowed, hasScope } from '../authenticate.js';
import type { CampaignDrafts, CampaignDraft } from '../campaign-drafts.js';
import type { ApiLimits } from '../config.js';
import { streamedBody } from '../request-validation.js';
import {
  campaignActionSchema,
  campaignDraftSchema,
  campaignSchema,
  draftSchema,
  errorResponses,
  idParamsSchema,
  uploadReceiptSchema,
} from '../schemas.js';
import { UPLOAD_MEDIA_TYPES, boundedBody, limitRecipients, tooLarge } from '../upload-stream.js';
import type { ApiKeyRecord } from '../api-key-store.js';
import type { FastifyBaseLogger } from 'fastify';

export interface CampaignRoutesOptions {
  readonly client: MailroomClient;
  readonly drafts: CampaignDrafts;
  readonly campaigns: CampaignStore;
  readonly redis: Redis;
  /** The queue key prefix (not a route prefix: Fastify reserves `prefix` in plugin options). */
  readonly queuePrefix: string;
  readonly limits: ApiLimits;
}

const recipientsBody = streamedBody(
  z.string().meta({
    format: 'binary',
    description:
      'CSV with a header row (an `email`, `to` or `address` column, optional `name`, every column a merge variable), or JSON Lines (`{"to": ..., "vars": {...}}` or a flat object with `email`). Streamed: never held in memory.',
  }),
);

function recipientsUrl(id: string): string {
  return `/v1/campaigns/${id}/recipients`;
}

function describeDraft(d: CampaignDraft) {
  return {
    kind: 'draft' as const,
    id: d.id,
    state: d.state,
    recipientsUrl: recipientsUrl(d.id),
    expiresAt: d.expiresAt,
    ...(d.campaignId === undefined ? {} : { campaignId: d.campaignId }),
  };
}

function prefixFields(err: ValidationError, prefix: string): ValidationError {
  return new ValidationError(err.issues.map((i) => ({ field: `${prefix}.${i.field}`, message: i.message })));
}

/**
 * Campaign routes. A campaign is made in two requests: POST /v1/campaigns with the template and options
 * (validated, kept as a draft), then PUT (or POST) /v1/campaigns/:draftId/recipients with the recipient list
 * as the raw body (CSV or JSON Lines), streamed straight into the client's createCampaign: read, validated
 * and queued chunk by chunk, never held whole. The upload answers with the campaign's id and counts.
 */
export const campaignRoutes: FastifyPluginAsyncZod<CampaignRoutesOptions> = async (app, options) => {
  const { client, drafts, limits } = options;

  async function templateFrom(campaignId: string): Promise<unknown> {
    const template = await options.campaigns.template(campaignId);
    return template === undefined ? undefined : (JSON.parse(template) as { from?: unknown }).from;
  }

  function assertOwner(key: ApiKeyRecord, draft: CampaignDraft): void {
    if (draft.owner !== key.lineage && !hasScope(key, 'admin')) {
      throw new ApiError('ERR_FORBIDDEN', 'this campaign draft belongs to another API key');
    }
  }

  app.post(
    '/v1/campaigns',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Create a campaign (its template and options); upload its recipients next',
        tags: ['campaigns'],
        body: campaignDraftSchema(limits),
        response: { 201: draftSchema, ...errorResponses(413, 415) },
      },
    },
    async (request, reply) => {
      const { template, name, sendAt, tags, batchSize } = request.body;
      assertSendersAllowed(request.apiKey!, [[template.from, 'template.from']]);
      try {
        compileTemplate(template, { maxMessageBytes: limits.maxMessageBytes });
      } catch (err) {
        throw err instanceof ValidationError ? prefixFields(err, 'template') : err;
      }
      const draft = await drafts.create({
        owner: request.apiKey!.lineage,
        template: JSON.stringify(template),
        tags: tags ?? [],
        ...(name === undefined ? {} : { name }),
        ...(sendAt === undefined ? {} : { sendAt: Date.parse(sendAt) }),
        ...(batchSize === undefined ? {} : { batchSize }),
      });
      return reply.code(201).header('location', `/v1/campaigns/${draft.id}`).send(describeDraft(draft));
    },
  );

  await app.register((uploads, _options, registered) => {
    // The body of a recipient upload is the request stream itself (only on these routes).
    uploads.addContentTypeParser(Object.keys(UPLOAD_MEDIA_TYPES), (_request, payload, done) => {
      done(null, payload);
    });
    for (const method of ['PUT', 'POST'] as const) uploadRoute(uploads, method);
    registered();
  });

  function uploadRoute(uploads: typeof app, method: 'PUT' | 'POST'): void {
    uploads.route({
      method,
      url: '/v1/campaigns/:id/recipients',
      config: { scope: 'send' },
      schema: {
        summary: "Upload a campaign's recipients (CSV or JSON Lines), streamed",
        description: `At most ${limits.maxCampaignRecipients} recipients and ${limits.uploadLimitBytes} bytes; rows past the recipient limit are refused and counted. Invalid rows are refused by row and field; the rest are queued. If the upload fails or is cut short, every message it queued and not yet sent is cancelled. PUT and POST are the same.`,
        tags: ['campaigns'],
        consumes: Object.keys(UPLOAD_MEDIA_TYPES),
        params: idParamsSchema,
        body: recipientsBody,
        response: { 202: uploadReceiptSchema, ...errorResponses(404, 409, 413, 415) },
      },
      handler: async (request, reply) => {
        const { id } = request.params;
        const key = request.apiKey!;
        const length = Number(request.headers['content-length']);
        if (length > limits.uploadLimitBytes) throw tooLarge(limits.uploadLimitBytes);
        const draft = await drafts.get(id);
        if (draft === undefined) throw new NotFoundError(`no campaign draft ${id} (unknown, or expired)`);
        assertOwner(key, draft);
        const template = JSON.parse(draft.template) as { from?: unknown };
        assertSendersAllowed(key, [[template.from, 'template.from']]);
        const before = await drafts.move(id, 'draft', 'uploading');
        if (before !== 'draft') {
          throw new ApiError(
            'ERR_CONFLICT',
            `the recipients of draft ${id} were already uploaded (${before})`,
          );
        }
        const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        const kind = UPLOAD_MEDIA_TYPES[mediaType as keyof typeof UPLOAD_MEDIA_TYPES];
        const body = boundedBody(request.raw, limits.uploadLimitBytes);
        const reader = kind === 'csv' ? recipientsFromCsv(body.stream) : recipientsFromJsonl(body.stream);
        const upload = { startedAt: Date.now(), campaignId: undefined as string | undefined };
        // Once the reader is first asked for a recipient the client has created the campaign: note its id
        // then, so that an upload failing part-way can cancel what it already queued.
        const recipients = onFirst(limitRecipients(reader, limits.maxCampaignRecipients), async () => {
          upload.campaignId = await findCreatedCampaign(upload.startedAt, draft.template, draft.name ?? '');
          if (upload.campaignId !== undefined) await drafts.setCampaign(id, upload.campaignId);
        });
        try {
          const receipt = await client.createCampaign(
            {
              template,
              recipients,
              tags: draft.tags,
              ...(draft.name === undefined ? {} : { name: draft.name }),
              ...(draft.sendAt === undefined ? {} : { sendAt: draft.sendAt }),
            },
            draft.batchSize === undefined ? {} : { batchSize: draft.batchSize },
          );
          upload.campaignId = receipt.id;
          await drafts.setCampaign(id, receipt.id);
          const problem = body.problem();
          if (problem !== undefined) throw problem;
          await drafts.move(id, 'uploading', 'uploaded');
          request.log.info(
            { campaign: receipt.id, accepted: receipt.accepted, refused: receipt.refused },
            'campaign uploaded',
          );
          return reply.code(202).send({
            id: receipt.id,
            draftId: id,
            accepted: receipt.accepted,
            refused: receipt.refused,
            refusals: [...receipt.refusals],
          });
        } catch (err) {
          body.release();
          const cancelled = await abandonUpload(id, upload.campaignId, request.log);
          throw explainAbandoned(err, cancelled);
        }
      },
    });
  }

  /**
   * The campaign an upload that started at `since` created: the one campaign still being fed, created since
   * then, not uploaded, with this template and name (the draft is `uploading`, so it runs once).
   */
  async function findCreatedCampaign(
    since: number,
    template: string,
    name: string,
  ): Promise<string | undefined> {
    const candidates = await options.redis.zrangebyscore(
      mailroomKeys(options.queuePrefix).campaignsFeeding(),
      since,
      '+inf',
      'LIMIT',
      0,
      FEEDING_CANDIDATES,
    );
    const matches: string[] = [];
    for (const candidate of candidates) {
      const record = await options.campaigns.get(candidate);
      if (record && !record.uploaded && record.template === template && record.name === name) {
        matches.push(candidate);
      }
    }
    return matches.length === 1 ? matches[0] : undefined;
  }

  /**
   * Cancels what an upload that failed part-way accepted and did not send yet, so a retried upload never
   * sends twice. Best effort: with Redis away it cannot, and the error says nothing was cancelled.
   */
  async function abandonUpload(
    draftId: string,
    campaignId: string | undefined,
    log: FastifyBaseLogger,
  ): Promise<{ campaignId: string; count: number } | undefined> {
    try {
      let result: { campaignId: string; count: number } | undefined;
      if (campaignId !== undefined) {
        result = { campaignId, count: await client.cancelCampaign(campaignId) };
        log.warn(result, 'campaign upload failed; the campaign was cancelled');
      }
      await drafts.move(draftId, 'uploading', 'failed');
      return result;
    } catch (err) {
      log.error(
        { err: { message: (err as Error).message }, draft: draftId },
        'could not abandon a failed upload',
      );
      return undefined;
    }
  }

  app.get(
    '/v1/campaigns/:id',
    {
      config: { scope: 'read' },
      schema: {
        summary: "A campaign's state and counts (or a draft's state)",
        tags: ['campaigns'],
        params: idParamsSchema,
        response: { 200: z.union([campaignSchema, draftSchema]), ...errorResponses(404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      try {
        return { kind: 'campaign' as const, ...(await client.campaignStatus(id)) };
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
      const draft = await drafts.get(id);
      if (draft === undefined) throw new NotFoundError(`no campaign ${id}`);
      return describeDraft(draft);
    },
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(
      `/v1/campaigns/:id/${action}`,
      {
        config: { scope: 'send' },
        schema: {
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} a campaign`,
          description: {
            cancel: 'Every message of the campaign not sent yet ends cancelled; a draft is discarded.',
            pause: 'Its messages wait until resumed; messages on the wire finish.',
            resume: 'Its waiting messages are sent again.',
          }[action],
          tags: ['campaigns'],
          params: idParamsSchema,
          response: { 200: campaignActionSchema.or(draftSchema), ...errorResponses(404, 409) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const key = request.apiKey!;
        const from = await templateFrom(id);
        if (from === undefined) {
          const draft = await drafts.get(id);
          if (draft === undefined) throw new NotFoundError(`no campaign ${id}`);
          assertOwner(key, draft);
          if (action !== 'cancel') {
            throw new ApiError(
              'ERR_CONFLICT',
              `campaign draft ${id} has no recipients yet: upload them first`,
            );
          }
          const before = await drafts.move(id, 'draft', 'cancelled');
          if (before !== 'draft') {
            throw new ApiError(
              'ERR_CONFLICT',
              `campaign draft ${id} is ${before}: cancel its campaign instead`,
            );
          }
          return describeDraft((await drafts.get(id)) ?? { ...draft, state: 'cancelled' });
        }
        assertSendersAllowed(key, [[from, 'template.from']]);
        if (action === 'cancel') {
          const cancelled = await client.cancelCampaign(id);
          return { id, state: 'cancelled' as const, cancelled };
        }
        if (action === 'pause') await client.pauseCampaign(id);
        else await client.resumeCampaign(id);
        const state = await options.campaigns.state(id);
        return { id, state: state ?? 'running' };
      },
    );
  }

  app.post(
    '/v1/campaigns/:id/resend-failed',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Send the failed and expired messages of a campaign again',
        description:
          'Each message of the campaign that ended failed or expired is accepted again as a new message (new id, same content and recipient); the rest are left alone. Answers how many were queued.',
        tags: ['campaigns'],
        params: idParamsSchema,
        response: {
          200: z.object({ id: z.string(), resent: z.number().int(), ids: z.array(z.string()) }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const from = await templateFrom(id);
      if (from === undefined) throw new NotFoundError(`no campaign ${id}`);
      assertSendersAllowed(request.apiKey!, [[from, 'template.from']]);
      const receipts = await client.redrive(campaignTag(id), { states: ['failed', 'expired'] });
      return { id, resent: receipts.length, ids: receipts.map((r) => r.id) };
    },
  );
};

/** Campaigns created since an upload started that are looked at to find the upload's own. */
const FEEDING_CANDIDATES = 50;

/** Yields what `source` yields, running `first` before the first item is handed on. */
async function* onFirst<T>(source: AsyncIterable<T>, first: () => Promise<void>): AsyncGenerator<T> {
  let pending = true;
  for await (const item of source) {
    if (pending) {
      pending = false;
      await first();
    }
    yield item;
  }
}

function explainAbandoned(
  err: unknown,
  cancelled: { campaignId: string; count: number } | undefined,
): unknown {
  if (cancelled === undefined || !(err instanceof ApiError)) return err;
  return new ApiError(
    err.code,
    `${err.message}; campaign ${cancelled.campaignId} was cancelled (${cancelled.count} messages not sent)`,
    err.fields,
    err.headers,
  );
}
