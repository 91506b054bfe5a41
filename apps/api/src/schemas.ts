import { z } from 'zod';
import { MAX_TAGS, MESSAGE_STATES, TERMINAL_STATES } from '@mailroom/core';
import { SUPPRESSION_REASONS } from '@mailroom/queue';
import { API_ERROR_STATUS, type ApiErrorCode } from './api-error.js';
import type { ApiLimits } from './config.js';

// Route schemas: they describe the JSON the API takes and gives, and are what the OpenAPI document is
// generated from. They check shape and the API's own limits (counts); every rule about the content of a
// message (addresses, control characters, allowed headers, base64, size) is core's, applied by the client,
// so a message is judged the same way whether it comes over HTTP, from the SDK or from the CLI.

const mailbox = z
  .union([z.string(), z.looseObject({ name: z.string().optional(), address: z.string() })], {
    error: 'must be an address string or an object { name?, address }',
  })
  .meta({
    description:
      'One mailbox: `a@b.example`, `Name <a@b.example>` or `{ "name": "Name", "address": "a@b.example" }`. Lists are refused.',
    examples: ['Ada <ada@example.org>'],
  });

function extraHeaders(max: number) {
  return z
    .record(z.string(), z.string())
    .refine((h) => Object.keys(h).length <= max, {
      message: `has more than ${max} headers (the API's limit)`,
    })
    .meta({
      maxProperties: max,
      description:
        'Extra headers by name: X-* and the List-*, threading and priority headers (List-Unsubscribe, In-Reply-To, ...). Structural headers are refused.',
      examples: [{ 'X-Campaign': 'spring' }],
    });
}

function attachments(max: number) {
  return z
    .array(
      z.looseObject({
        filename: z.string(),
        contentType: z
          .string()
          .optional()
          .meta({ examples: ['application/pdf'] }),
        content: z.string().meta({ description: 'Standard base64, unbroken, padded. Never a path or URL.' }),
        contentId: z
          .string()
          .optional()
          .meta({ description: 'For inline images referenced as cid: in html.' }),
      }),
    )
    .max(max, `has more than ${max} attachments (the API's limit)`);
}

const tags = z
  .array(z.string())
  .max(MAX_TAGS)
  .meta({ description: '1-64 characters of A-Z a-z 0-9 _ . : -' });

/** One message, as the SDK's MessageInput. */
export function messageInputSchema(limits: ApiLimits) {
  return z
    .looseObject({
      from: mailbox.meta({ description: "Sender. Its domain must be one of the API key's sender domains." }),
      to: mailbox.meta({ description: 'The one recipient.' }),
      replyTo: mailbox.optional(),
      subject: z.string().meta({ examples: ['Hello'] }),
      text: z.string().optional().meta({ description: 'Plain-text body.' }),
      html: z.string().optional().meta({ description: 'HTML body.' }),
      headers: extraHeaders(limits.maxExtraHeaders).optional(),
      attachments: attachments(limits.maxAttachments).optional(),
      tags: tags.optional(),
    })
    .meta({ description: 'One message for one recipient. Give text, html or both.' });
}

export function batchInputSchema(limits: ApiLimits) {
  return z.object({
    messages: z
      .array(messageInputSchema(limits))
      .min(1)
      .max(limits.maxBatchMessages, `has more than ${limits.maxBatchMessages} messages (the API's limit)`),
  });
}

/** A campaign template: a message without `to`, merge fields (`{{name}}`) in subject, text and html. */
export function campaignDraftSchema(limits: ApiLimits) {
  return z.object({
    name: z.string().max(200).optional(),
    template: z
      .looseObject({
        from: mailbox,
        replyTo: mailbox.optional(),
        subject: z.string(),
        text: z.string().optional(),
        html: z.string().optional(),
        headers: extraHeaders(limits.maxExtraHeaders).optional(),
        attachments: attachments(limits.maxAttachments).optional(),
      })
      .meta({
        description:
          'The message every recipient gets, with Handlebars merge fields ({{name}}) in subject, text and html.',
      }),
    sendAt: z.iso.datetime({ offset: true }).optional().meta({ description: 'Not before this instant.' }),
    tags: z
      .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . : -'))
      .max(MAX_TAGS - 2)
      .optional(),
    batchSize: z.number().int().min(1).max(1000).optional().meta({ description: 'Messages per queue job.' }),
  });
}

/** The Idempotency-Key header: the same key with the same body answers with the first message. */
export const sendHeadersSchema = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, 'must be 1-200 printable ASCII characters without spaces')
    .optional()
    .meta({
      description:
        'Makes the request safe to retry: within the idempotency window the same key and body answer with the first message (200, duplicate: true) and queue nothing; the same key with a different body is refused (409).',
    }),
});

export const idParamsSchema = z.object({
  id: z.string().regex(/^[0-9a-z]{1,64}$/, 'is not a Mailroom id'),
});

export const receiptSchema = z
  .object({
    id: z.string().meta({ description: "Mailroom's message id: ask for its status with it." }),
    messageId: z
      .string()
      .meta({ description: 'The Message-ID header the message carries on every attempt.' }),
    duplicate: z.boolean().meta({ description: 'True when an Idempotency-Key matched an earlier request.' }),
    state: z.enum(MESSAGE_STATES).meta({
      description:
        '`queued`, `suppressed` (recorded, never sent), or for a duplicate the first message state.',
    }),
    suppression: z
      .object({ reason: z.enum(SUPPRESSION_REASONS), scope: z.string() })
      .optional()
      .meta({ description: 'Why a suppressed message is not sent: the suppression list entry.' }),
  })
  .meta({ id: 'Receipt' });

export const batchReceiptSchema = z.object({ messages: z.array(receiptSchema) });

export const messageStatusSchema = z
  .object({
    id: z.string(),
    messageId: z.string(),
    state: z.enum(MESSAGE_STATES),
    attempts: z.number().int(),
    acceptedAt: z.number().meta({ description: 'ms since the epoch' }),
    expiresAt: z.number(),
    updatedAt: z.number(),
    terminalAt: z.number().optional(),
    code: z.number().int().optional().meta({ description: "The relay's last reply code." }),
    enhanced: z.string().optional(),
    response: z.string().optional(),
    reason: z.string().optional(),
    ambiguous: z.number().int(),
    history: z.array(
      z.object({
        at: z.number(),
        outcome: z.string(),
        code: z.number().int().optional(),
        enhanced: z.string().optional(),
        response: z.string().optional(),
        reason: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'MessageStatus' });

export const cancelResultSchema = z.object({
  id: z.string(),
  cancelled: z.boolean().meta({ description: 'False when the message already ended or is being sent.' }),
  state: z.enum(MESSAGE_STATES),
});

export const draftSchema = z
  .object({
    kind: z.literal('draft'),
    id: z.string(),
    state: z.enum(['draft', 'uploading', 'uploaded', 'failed', 'cancelled']),
    recipientsUrl: z.string(),
    expiresAt: z.number(),
    campaignId: z.string().optional().meta({ description: 'The campaign the upload created.' }),
  })
  .meta({ id: 'CampaignDraft' });

export const uploadReceiptSchema = z.object({
  id: z.string().meta({ description: 'The campaign id.' }),
  draftId: z.string(),
  accepted: z.number().int(),
  refused: z.number().int(),
  refusals: z.array(z.object({ row: z.number().int(), field: z.string(), message: z.string() })),
});

const terminalCounts = z.object(Object.fromEntries(TERMINAL_STATES.map((s) => [s, z.number().int()])));

export const campaignSchema = z
  .object({
    kind: z.literal('campaign'),
    id: z.string(),
    name: z.string(),
    state: z.enum(['running', 'paused', 'cancelled']),
    createdAt: z.number(),
    sendAt: z.number(),
    uploaded: z.boolean(),
    counts: z.object({ accepted: z.number().int(), pending: z.number().int(), terminal: terminalCounts }),
  })
  .meta({ id: 'Campaign' });

export const campaignActionSchema = z.object({
  id: z.string(),
  state: z.enum(['running', 'paused', 'cancelled']),
  cancelled: z.number().int().optional().meta({ description: 'Messages cancelled by this request.' }),
});

export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(API_ERROR_STATUS) as [ApiErrorCode, ...ApiErrorCode[]]),
      message: z.string(),
      fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    }),
  })
  .meta({ id: 'Error' });

/** Response schemas of the errors every authenticated route may answer, plus `extra`. */
export function errorResponses(...extra: number[]): Record<number, typeof errorBodySchema> {
  const out: Record<number, typeof errorBodySchema> = {};
  for (const status of [400, 401, 403, 422, 429, 500, 503, ...extra]) out[status] = errorBodySchema;
  return out;
}
