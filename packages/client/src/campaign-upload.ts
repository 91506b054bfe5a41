import {
  MAX_TAGS,
  MailroomError,
  ValidationError,
  addressDomain,
  normalizeDomain,
  parseMailbox,
  type FieldIssue,
  type Mailbox,
} from '@mailroom/core';
import { compileTemplate } from '@mailroom/mime';
import {
  CampaignChunkWriter,
  MAX_CAMPAIGN_MEMBERS,
  newCampaignId,
  type CampaignLayout,
  type CampaignStore,
  type EncodedRecipient,
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
  /** Messages per BullMQ batch job (default 50, 1 to 1000). */
  readonly batchSize?: number;
  /**
   * Recipients per stored chunk (default 1000, 1 to 10,000): one Redis write at upload, one step of the
   * workers' feeder later. Smaller chunks let the feeder follow the queue more closely.
   */
  readonly chunkSize?: number;
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
const DEFAULT_CHUNK = 1000;
/** Chunks written but not yet confirmed: they travel back to back on the connection (pipelined). */
const CHUNKS_IN_FLIGHT = 8;
const MAX_REFUSALS_REPORTED = 100;
const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface CampaignUploadDeps {
  readonly campaigns: CampaignStore;
  readonly maxAgeMs: number;
  readonly messageIdDomain?: string;
  /** Not used: members are recorded in the ledger and queued by the workers' feeder, not at upload. */
  readonly ledger?: Ledger;
  /** Not used (see `ledger`). */
  readonly queue?: MailQueue;
}

/**
 * Creates a campaign: validates and stores the template once, then streams the recipients in. Each valid
 * recipient is written to a compact chunk (address, name and merge values; the variable names once per
 * chunk), one Redis round trip per chunk, several chunks in flight. Once its chunk is stored a recipient is
 * accepted: it has an id and a Message-ID derived from the campaign id and its position, counts as pending
 * in the campaign's status, and ends in exactly one terminal state. The workers' feeder turns chunks into
 * ledger records and batch jobs of `batchSize` only as fast as the queue drains, so Redis holds the compact
 * chunks, not a record and a job per recipient. A recipient row that is invalid is refused (row and field
 * named) and the rest go on; the template being invalid refuses the whole campaign before anything is
 * stored.
 */
export async function uploadCampaign(
  deps: CampaignUploadDeps,
  input: CampaignInput,
  options: CampaignUploadOptions = {},
): Promise<CampaignReceipt> {
  compileTemplate(input.template); // throws ValidationError naming the template field
  const template = JSON.stringify(input.template);
  const messageIdDomain = normalizeDomain(
    deps.messageIdDomain ?? senderDomain(input.template),
    'messageIdDomain',
  );
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  const issues: FieldIssue[] = [];
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000) {
    issues.push({ field: 'batchSize', message: 'must be an integer from 1 to 1000' });
  }
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 10_000) {
    issues.push({ field: 'chunkSize', message: 'must be an integer from 1 to 10000' });
  }
  const sendAt = input.sendAt === undefined ? 0 : new Date(input.sendAt).getTime();
  if (Number.isNaN(sendAt)) issues.push({ field: 'sendAt', message: 'is not a valid date' });
  const tags = input.tags ?? [];
  // The same rule as a message's tags (@mailroom/core): they are stored joined by commas.
  const badTag = tags.findIndex((t) => typeof t !== 'string' || !TAG.test(t));
  if (badTag >= 0) {
    issues.push({ field: `tags[${badTag}]`, message: 'must be 1-64 characters of A-Z a-z 0-9 _ . : -' });
  }
  if (tags.length > MAX_TAGS) issues.push({ field: 'tags', message: `has more than ${MAX_TAGS} tags` });
  if (issues.length > 0) throw new ValidationError(issues);

  const layout = { chunkSize, batchSize, maxAgeMs: deps.maxAgeMs, messageIdDomain, tags };
  const id = await createCampaignRecord(deps.campaigns, { name: input.name ?? '', template, sendAt }, layout);
  const chunks = deps.campaigns.chunks;

  const refusals: RecipientRefusal[] = [];
  let refused = 0;
  let accepted = 0;
  let read = 0;
  let listed = 0;
  let nextChunk = 0;
  const writer = new CampaignChunkWriter();
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;

  const flush = async (): Promise<void> => {
    if (writer.count === 0) return;
    const count = writer.count;
    const index = nextChunk++;
    const sent = chunks.append(id, index, count, writer.take()).then(
      () => {
        accepted += count;
        options.onProgress?.({ read, accepted, refused });
      },
      (error: unknown) => {
        failure ??= { error };
      },
    );
    inFlight.add(sent);
    void sent.finally(() => inFlight.delete(sent));
    if (inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(inFlight);
    if (failure) throw failure.error;
  };

  /** Validates and encodes one row; resolves true when a chunk is full and must be flushed. */
  const take = (recipient: unknown): boolean => {
    read += 1;
    const row = validateRecipient(recipient, writer);
    if ('issues' in row) {
      refused += 1;
      for (const issue of row.issues) {
        if (refusals.length < MAX_REFUSALS_REPORTED) refusals.push({ row: read, ...issue });
      }
      return false;
    }
    if (listed >= MAX_CAMPAIGN_MEMBERS) {
      throw new ValidationError([{ field: 'recipients', message: `more than ${MAX_CAMPAIGN_MEMBERS}` }]);
    }
    listed += 1;
    writer.add(row);
    return writer.count >= chunkSize;
  };

  try {
    const source = input.recipients;
    if (Symbol.iterator in source) {
      // A plain iterable (array, generator) is read without a promise per row.
      for (const recipient of source) if (take(recipient)) await flush();
    } else {
      for await (const recipient of source) if (take(recipient)) await flush();
    }
    await flush();
  } finally {
    // Chunks already sent are accepted whatever happened to the rest: wait for their answers.
    await Promise.all(inFlight);
  }
  if (failure) throw failure.error;
  await deps.campaigns.markUploaded(id);
  options.onProgress?.({ read, accepted, refused });
  return { id, accepted, refused, refusals };
}

/** Stores the empty campaign under a new id; an id taken already (45 random bits in one ms) is drawn again. */
async function createCampaignRecord(
  campaigns: CampaignStore,
  record: { name: string; template: string; sendAt: number },
  layout: CampaignLayout,
): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const now = Date.now();
    const id = newCampaignId(now);
    if (await campaigns.create({ id, state: 'running', createdAt: now, ...record }, layout)) return id;
  }
  throw new MailroomError('ERR_INTERNAL', 'could not draw a free campaign id');
}

/** Validates one row and encodes it for the chunk being written; refusals name the field. */
function validateRecipient(
  input: unknown,
  writer: CampaignChunkWriter,
): EncodedRecipient | { issues: FieldIssue[] } {
  if (typeof input !== 'object' || input === null) {
    return { issues: [{ field: '(recipient)', message: 'must be an object with `to` and optional `vars`' }] };
  }
  const row = input as { to?: unknown; vars?: unknown; parseError?: unknown };
  if (typeof row.parseError === 'string') return { issues: [{ field: '(row)', message: row.parseError }] };
  let issues: FieldIssue[] | undefined;
  let to: Mailbox | undefined;
  try {
    to = parseMailbox(row.to, 'to');
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues = [...err.issues];
  }
  const vars = row.vars ?? {};
  if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) {
    (issues ??= []).push({ field: 'vars', message: 'must be an object' });
    return { issues };
  }
  if (to === undefined) return { issues: issues ?? [] };
  const encoded = writer.encode(to, vars as Record<string, unknown>);
  // UTF-8 bytes are at most 3 per UTF-16 unit: only a large object needs its exact size.
  if (
    encoded.varsJsonChars * 3 > MAX_RECIPIENT_VARS_BYTES &&
    Buffer.byteLength(JSON.stringify(vars)) > MAX_RECIPIENT_VARS_BYTES
  ) {
    return {
      issues: [{ field: 'vars', message: `is larger than ${MAX_RECIPIENT_VARS_BYTES} bytes as JSON` }],
    };
  }
  return encoded;
}

function senderDomain(template: unknown): string {
  const from = (template as { from?: unknown }).from;
  return addressDomain(parseMailbox(from, 'from').address);
}
