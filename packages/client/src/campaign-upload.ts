import {
  ValidationError,
  addressDomain,
  messageIdHeader,
  newMessageId,
  parseMailbox,
  type FieldIssue,
  type Mailbox,
} from '@mailroom/core';
import { compileTemplate } from '@mailroom/mime';
import type { CampaignStore } from '@mailroom/queue';
import {
  CAMPAIGN_PRIORITY,
  SEND_BATCH_JOB,
  campaignTag,
  type AcceptEntry,
  type CampaignMemberPayload,
  type Ledger,
  type MailQueue,
} from '@mailroom/queue';

/** One recipient of a campaign: the address and the merge variables for it. */
export interface CampaignRecipientInput {
  readonly to: unknown;
  readonly vars?: unknown;
  /** Set by a reader for a row it could not parse; the row is refused with this message. */
  readonly parseError?: string;
}

export interface CampaignInput {
  /** For people: shown in status and the CLI. */
  readonly name?: string;
  /** The message template (from, subject, text, html, headers, attachments), merge fields in handlebars. */
  readonly template: unknown;
  /** Streamed, never loaded whole: an array, a generator, or `recipientsFromCsv` / `recipientsFromJsonl`. */
  readonly recipients: AsyncIterable<CampaignRecipientInput> | Iterable<CampaignRecipientInput>;
  /** Not before this moment. */
  readonly sendAt?: Date | number;
  readonly tags?: readonly string[];
}

export interface CampaignUploadOptions {
  /** Messages per BullMQ batch job (default 50). */
  readonly batchSize?: number;
  /** Called after every accepted chunk of recipients. */
  readonly onProgress?: (progress: { read: number; accepted: number; refused: number }) => void;
}

/** A recipient row that was not accepted, with its 1-based row number and the field at fault. */
export interface RecipientRefusal {
  readonly row: number;
  readonly field: string;
  readonly message: string;
}

export interface CampaignReceipt {
  readonly id: string;
  readonly accepted: number;
  readonly refused: number;
  /** The first refusals (at most 100), each naming its row and field. */
  readonly refusals: readonly RecipientRefusal[];
}

/** Largest JSON of one recipient's merge variables. */
export const MAX_RECIPIENT_VARS_BYTES = 8 * 1024;
const DEFAULT_BATCH = 50;
/** Recipients accepted per ledger call and BullMQ addBulk. */
const UPLOAD_CHUNK = 1000;
const MAX_REFUSALS_REPORTED = 100;

export interface CampaignUploadDeps {
  readonly ledger: Ledger;
  readonly queue: MailQueue;
  readonly campaigns: CampaignStore;
  readonly maxAgeMs: number;
  readonly messageIdDomain?: string;
}

/**
 * Creates a campaign: validates and stores the template once, then streams the recipients in, chunk by
 * chunk, each one a ledger record of its own carried in batch jobs of `batchSize`. A recipient row that is
 * invalid is refused (row and field named) and the rest go on; the template being invalid refuses the whole
 * campaign before anything is stored.
 */
export async function uploadCampaign(
  deps: CampaignUploadDeps,
  input: CampaignInput,
  options: CampaignUploadOptions = {},
): Promise<CampaignReceipt> {
  compileTemplate(input.template); // throws ValidationError naming the template field
  const template = JSON.stringify(input.template);
  const fromDomain = senderDomain(input.template);
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000) {
    throw new ValidationError([{ field: 'batchSize', message: 'must be an integer from 1 to 1000' }]);
  }
  const sendAt = input.sendAt === undefined ? 0 : new Date(input.sendAt).getTime();
  if (Number.isNaN(sendAt)) throw new ValidationError([{ field: 'sendAt', message: 'is not a valid date' }]);
  const now = Date.now();
  const id = newMessageId(now);
  await deps.campaigns.create({
    id,
    name: input.name ?? '',
    state: 'running',
    template,
    createdAt: now,
    sendAt,
  });

  const tags = [campaignTag(id), ...(input.tags ?? [])];
  const refusals: RecipientRefusal[] = [];
  let refused = 0;
  let accepted = 0;
  let read = 0;
  let batchSeq = 0;
  let chunk: { to: Mailbox; vars: Record<string, unknown> }[] = [];

  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    const at = Date.now();
    const payloads: CampaignMemberPayload[] = chunk.map((r) => {
      const messageId = newMessageId(at);
      return {
        v: 1,
        campaign: id,
        id: messageId,
        messageIdHeader: messageIdHeader(messageId, deps.messageIdDomain ?? fromDomain),
        acceptedAt: at,
        expiresAt: Math.max(at, sendAt) + deps.maxAgeMs,
        to: r.to,
        vars: r.vars,
      };
    });
    const batches: { jobId: string; ids: string[] }[] = [];
    for (let i = 0; i < payloads.length; i += batchSize) {
      batches.push({ jobId: `${id}-${batchSeq++}`, ids: payloads.slice(i, i + batchSize).map((p) => p.id) });
    }
    const jobOf = new Map<string, string>();
    for (const b of batches) for (const m of b.ids) jobOf.set(m, b.jobId);
    const entries: AcceptEntry[] = payloads.map((p) => ({
      id: p.id,
      messageId: p.messageIdHeader,
      expiresAt: p.expiresAt,
      payload: JSON.stringify(p),
      contentHash: '',
      tags,
      campaign: id,
      batchJobId: jobOf.get(p.id)!,
    }));
    await deps.ledger.accept(entries);
    const ids = payloads.map((p) => p.id);
    try {
      const delay = Math.max(0, sendAt - Date.now());
      await deps.queue.addBulk(
        batches.map(
          (b) =>
            ({
              name: SEND_BATCH_JOB,
              data: { ids: b.ids, campaign: id },
              opts: { jobId: b.jobId, priority: CAMPAIGN_PRIORITY, ...(delay > 0 ? { delay } : {}) },
            }) as const,
        ),
      );
    } catch (err) {
      await deps.ledger
        .finish(ids, 'failed', 'enqueue_incomplete', { from: ['accepted'] })
        .catch(() => undefined);
      throw err;
    }
    await deps.ledger.markQueued(ids);
    accepted += chunk.length;
    chunk = [];
    options.onProgress?.({ read, accepted, refused });
  };

  for await (const recipient of input.recipients) {
    read += 1;
    const issues = validateRecipient(recipient);
    if ('issues' in issues) {
      refused += 1;
      for (const issue of issues.issues) {
        if (refusals.length < MAX_REFUSALS_REPORTED) refusals.push({ row: read, ...issue });
      }
      continue;
    }
    chunk.push(issues);
    if (chunk.length >= UPLOAD_CHUNK) await flush();
  }
  await flush();
  await deps.campaigns.markUploaded(id);
  options.onProgress?.({ read, accepted, refused });
  return { id, accepted, refused, refusals };
}

function validateRecipient(
  input: unknown,
): { to: Mailbox; vars: Record<string, unknown> } | { issues: FieldIssue[] } {
  if (typeof input !== 'object' || input === null) {
    return { issues: [{ field: '(recipient)', message: 'must be an object with `to` and optional `vars`' }] };
  }
  const row = input as { to?: unknown; vars?: unknown; parseError?: unknown };
  if (typeof row.parseError === 'string') return { issues: [{ field: '(row)', message: row.parseError }] };
  const issues: FieldIssue[] = [];
  let to: Mailbox | undefined;
  try {
    to = parseMailbox(row.to, 'to');
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  const vars = row.vars ?? {};
  if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) {
    issues.push({ field: 'vars', message: 'must be an object' });
  } else if (Buffer.byteLength(JSON.stringify(vars)) > MAX_RECIPIENT_VARS_BYTES) {
    issues.push({ field: 'vars', message: `is larger than ${MAX_RECIPIENT_VARS_BYTES} bytes as JSON` });
  }
  if (issues.length > 0 || to === undefined) return { issues };
  return { to, vars: vars as Record<string, unknown> };
}

function senderDomain(template: unknown): string {
  const from = (template as { from?: unknown }).from;
  return addressDomain(parseMailbox(from, 'from').address);
}
