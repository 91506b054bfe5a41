import { createHash } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import {
  NotFoundError,
  ValidationError,
  addressDomain,
  isTerminalState,
  messageIdHeader,
  newMessageId,
  parseMailbox,
  parseMessage,
  type FieldIssue,
  type Message,
  type MessageState,
  type TerminalState,
} from '@mailroom/core';
import {
  ContentStore,
  DEFAULT_PREFIX,
  Ledger,
  SEND_JOB,
  createMailQueue,
  type AcceptEntry,
  type AcceptOutcome,
  type AttachmentRef,
  type MailQueue,
  type MailPayload,
  type MessageStatus,
  CampaignStore,
  campaignTag,
  isCampaignMember,
  type CampaignCounts,
  type CampaignRecord,
  type LedgerPayload,
  GLOBAL_SUPPRESSION_SCOPE,
  SuppressionStore,
  suppressionScopeOf,
  type SuppressionEntry,
  type SuppressionReason,
  asStoreConnection,
  createRedisConnection,
  type RedisConnection,
  type RedisConnectionSpec,
} from '@mailroom/queue';
import {
  uploadCampaign,
  type CampaignInput,
  type CampaignReceipt,
  type CampaignUploadOptions,
} from './campaign-upload.js';

export interface MailroomClientOptions {
  /**
   * Redis URL (`redis://host:port/db`, `rediss://` for TLS), a cluster or Sentinel spec (see
   * createRedisConnection), or an ioredis Redis or Cluster client you configured yourself; a client you pass
   * stays yours and is not closed by close().
   */
  redis: string | RedisConnectionSpec | Redis | Cluster;
  /** Key prefix with a Redis Cluster hash tag (default `{mailroom}`); workers must use the same. */
  prefix?: string;
  /** Largest accepted message in bytes, as encoded MIME (default 10 MiB). */
  maxMessageBytes?: number;
  /** How long a message may keep being retried before it ends as expired, in ms (default 24 h). */
  maxAgeMs?: number;
  /** Domain for Message-ID headers (default: the From address's domain). */
  messageIdDomain?: string;
  /** How long an idempotency key returns the first message's id, in seconds (default 24 h). */
  idempotencyWindowSeconds?: number;
  /** How long a finished message's status stays queryable, in seconds (default 30 days). */
  retentionSeconds?: number;
}

export interface SendOptions {
  /**
   * Makes the send safe to retry: within the idempotency window the same key with the same message returns
   * the first message's id (and queues nothing); the same key with a different message is refused with
   * IdempotencyConflictError. 1-255 printable ASCII characters.
   */
  idempotencyKey?: string;
}

/** What the producer is told about an accepted message. */
export interface SendReceipt {
  /** Mailroom's message id: use it to ask for the message's status. */
  readonly id: string;
  /** The Message-ID header the message carries on every attempt. */
  readonly messageId: string;
  /** True when an idempotency key matched an earlier message: nothing new was queued. */
  readonly duplicate: boolean;
  /**
   * `queued`: in the queue, to be sent. `suppressed`: the recipient is on the suppression list (in the
   * sender scope, the From domain, or in `*`): the message is recorded and ended `suppressed` at once, never
   * sent. `duplicate`: an idempotency key matched an earlier message, whose id this is.
   */
  readonly status: 'queued' | 'suppressed' | 'duplicate';
  /** For a suppressed message: the list entry's reason (also the ledger's reason) and scope. */
  readonly suppression?: { readonly reason: SuppressionReason; readonly scope: string };
}

/**
 * The suppression list through the client: SuppressionStore's operations (see there for scopes,
 * normalisation and reason precedence), each waiting for the connection first.
 */
export type Suppressions = Pick<
  SuppressionStore,
  'add' | 'remove' | 'check' | 'checkEach' | 'get' | 'list' | 'count' | 'export' | 'import'
>;

export const DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000;
/** Messages enqueued per BullMQ addBulk call (each call is one atomic MULTI). */
const BULK_CHUNK = 1000;
/** Stored content outlives the message's max age by this margin, so a late retry still finds it. */
const CONTENT_TTL_MARGIN_MS = 3600 * 1000;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The producer SDK: validates messages, stores shared content once, records each message in the delivery
 * ledger, and enqueues one job per message. Nothing is queued unless the whole message (or batch) is valid,
 * and a receipt is returned only once the message is durably in the queue.
 */
export class MailroomClient {
  private readonly connection: RedisConnection;
  /** The connection as the stores' type (see asStoreConnection). */
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly queue: MailQueue;
  private readonly campaigns: CampaignStore;
  private readonly content: ContentStore;
  private readonly ledger: Ledger;
  private readonly maxAgeMs: number;
  private readonly suppressionStore: SuppressionStore;
  /**
   * The suppression list: `send`, `sendMany` and `redrive` consult it for every message (sender scope and
   * `*`, one round trip per 1000 messages); workers check it again right before sending.
   */
  readonly suppressions: Suppressions;

  constructor(private readonly options: MailroomClientOptions) {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (options.redis instanceof Redis || options.redis instanceof Cluster) {
      this.connection = options.redis;
      this.ownsRedis = false;
    } else {
      // Producers fail fast when Redis is unreachable instead of queueing commands in memory.
      this.connection = createRedisConnection(options.redis, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
      });
      this.connection.on('error', () => undefined); // surfaced by the commands that fail
      this.ownsRedis = true;
    }
    this.redis = asStoreConnection(this.connection);
    this.queue = createMailQueue(this.redis, { prefix });
    // Connection errors reach the caller through the operation that failed; no stray logging from here.
    this.queue.on('error', () => undefined);
    this.content = new ContentStore(this.redis, prefix);
    this.campaigns = new CampaignStore(this.redis, prefix);
    this.ledger = new Ledger(this.redis, {
      prefix,
      ...(options.retentionSeconds === undefined ? {} : { retentionSeconds: options.retentionSeconds }),
      ...(options.idempotencyWindowSeconds === undefined
        ? {}
        : { idempotencyWindowSeconds: options.idempotencyWindowSeconds }),
    });
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    const store = new SuppressionStore(this.redis, prefix);
    this.suppressionStore = store;
    const whenReady =
      <A extends unknown[], R>(operation: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        await this.ready();
        return operation(...args);
      };
    const ready = () => this.ready();
    this.suppressions = {
      add: whenReady(store.add.bind(store)),
      remove: whenReady(store.remove.bind(store)),
      check: whenReady(store.check.bind(store)),
      checkEach: whenReady(store.checkEach.bind(store)),
      get: whenReady(store.get.bind(store)),
      list: whenReady(store.list.bind(store)),
      count: whenReady(store.count.bind(store)),
      import: whenReady(store.import.bind(store)),
      async *export(scope) {
        await ready();
        yield* store.export(scope);
      },
    };
  }

  /**
   * Resolves once the Redis connection is ready; rejects at the first connection error (producers fail fast
   * rather than wait for Redis). Every operation calls it.
   */
  async ready(): Promise<void> {
    if (this.connection.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        this.connection.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        this.connection.off('ready', onReady);
        reject(err);
      };
      this.connection.once('ready', onReady);
      this.connection.once('error', onError);
    });
  }

  /** Validates and enqueues one message. Throws ValidationError naming every bad field; nothing is queued then. */
  async send(input: unknown, options: SendOptions = {}): Promise<SendReceipt> {
    const [receipt] = await this.enqueue([input], [options.idempotencyKey]);
    return receipt!;
  }

  /**
   * Validates every message first, then enqueues them all. One invalid message refuses the whole batch
   * (fields are named `[index].field`), so a batch is never half-queued by validation.
   */
  async sendMany(
    inputs: readonly unknown[],
    options: { idempotencyKeys?: readonly string[] } = {},
  ): Promise<SendReceipt[]> {
    return this.enqueue(inputs, options.idempotencyKeys ?? []);
  }

  /** The message's state, attempts (with the relay's replies) and timestamps. Throws NotFoundError. */
  async status(id: string): Promise<MessageStatus> {
    await this.ready();
    const status = await this.ledger.status(id);
    if (!status) throw new NotFoundError(`no message ${id} (unknown, or past its retention)`);
    return status;
  }

  /** Withdraws a message that is not being sent right now. Returns false when it already ended or is in flight. */
  async cancel(id: string): Promise<boolean> {
    await this.ready();
    const ended = await this.ledger.finish([id], 'cancelled', 'cancelled_by_producer', {
      from: ['accepted', 'queued'],
    });
    return ended.length === 1;
  }

  /**
   * Re-drives a tagged group: every message with the tag that ended in one of `states` (default failed and
   * expired) is sent again as a new message (new id and Message-ID) with the same content. The old records
   * keep their terminal state. Returns the new receipts.
   */
  async redrive(tag: string, options: { states?: readonly TerminalState[] } = {}): Promise<SendReceipt[]> {
    await this.ready();
    const wanted = new Set<string>(options.states ?? ['failed', 'expired']);
    const ids = await this.ledger.tagged(tag);
    const receipts: SendReceipt[] = [];
    for (let start = 0; start < ids.length; start += BULK_CHUNK) {
      const chunk = ids.slice(start, start + BULK_CHUNK);
      const states = await this.ledger.states(chunk);
      const payloads: LedgerPayload[] = [];
      for (const [i, id] of chunk.entries()) {
        const state = states[i];
        if (!state || !isTerminalState(state) || !wanted.has(state)) continue;
        const payload = await this.ledger.payload(id);
        if (payload) payloads.push(JSON.parse(payload) as LedgerPayload);
      }
      const now = Date.now();
      const fresh = payloads.map((old) => {
        const id = newMessageId(now);
        return {
          ...old,
          id,
          messageIdHeader: messageIdHeader(
            id,
            old.messageIdHeader.slice(old.messageIdHeader.indexOf('@') + 1, -1),
          ),
          acceptedAt: now,
          expiresAt: now + this.maxAgeMs,
        } satisfies LedgerPayload;
      });
      receipts.push(
        ...(await this.enqueuePayloads(
          fresh,
          fresh.map(() => undefined),
          fresh.map((p) => hashOf(p.id)),
        )),
      );
    }
    return receipts;
  }

  /**
   * Creates a campaign and streams its recipients in (see CampaignInput). The template is validated first
   * (ValidationError naming the field; nothing stored). Each recipient becomes a message with its own id,
   * Message-ID, ledger record and outcome; invalid recipient rows are refused and reported by row and field.
   */
  async createCampaign(input: CampaignInput, options: CampaignUploadOptions = {}): Promise<CampaignReceipt> {
    await this.ready();
    return uploadCampaign(
      {
        ledger: this.ledger,
        queue: this.queue,
        campaigns: this.campaigns,
        maxAgeMs: this.maxAgeMs,
        ...(this.options.messageIdDomain === undefined
          ? {}
          : { messageIdDomain: this.options.messageIdDomain }),
      },
      input,
      options,
    );
  }

  /** The campaign's state and exact counts (from the ledger's own counters). Throws NotFoundError. */
  async campaignStatus(
    id: string,
  ): Promise<Omit<CampaignRecord, 'template'> & { readonly counts: CampaignCounts }> {
    await this.ready();
    const record = await this.campaigns.get(id);
    if (!record) throw new NotFoundError(`no campaign ${id}`);
    const { template: _template, ...rest } = record;
    return { ...rest, counts: await this.campaigns.counts(id) };
  }

  /** Stops sending the campaign's messages until resumed; messages on the wire finish. */
  async pauseCampaign(id: string): Promise<void> {
    await this.ready();
    await this.campaigns.setState(id, 'paused');
  }

  async resumeCampaign(id: string): Promise<void> {
    await this.ready();
    await this.campaigns.setState(id, 'running');
  }

  /**
   * Cancels the campaign: every message of it not sent yet ends `cancelled`; messages on the wire finish
   * with their own outcome. Returns how many were cancelled here (workers cancel any they meet later).
   */
  async cancelCampaign(id: string): Promise<number> {
    await this.ready();
    // Recipients still in the campaign's chunks (never materialised) end in bulk here; those with a ledger
    // record are ended one by one below.
    let cancelled = await this.campaigns.cancel(id);
    for await (const ids of this.campaigns.members(id)) {
      const ended = await this.ledger.finish(ids, 'cancelled', 'campaign_cancelled', {
        from: ['accepted', 'queued'],
      });
      cancelled += ended.length;
    }
    return cancelled;
  }

  async close(): Promise<void> {
    await this.queue.close();
    if (this.ownsRedis) this.connection.disconnect();
  }

  private async enqueue(
    inputs: readonly unknown[],
    keys: readonly (string | undefined)[],
  ): Promise<SendReceipt[]> {
    const messages = this.validateAll(inputs, keys);
    await this.ready();
    const now = Date.now();
    const receipts: SendReceipt[] = [];
    for (let start = 0; start < messages.length; start += BULK_CHUNK) {
      const chunk = messages.slice(start, start + BULK_CHUNK);
      const pending = new Map<string, string>();
      const payloads = chunk.map((message) => this.toPayload(message, now, pending));
      // Content first: a message is never recorded before the content it refers to exists.
      await this.content.store(pending, (this.maxAgeMs + CONTENT_TTL_MARGIN_MS) / 1000);
      receipts.push(
        ...(await this.enqueuePayloads(
          payloads,
          chunk.map((_, i) => keys[start + i]),
          chunk.map((m) => hashOf(JSON.stringify(m))),
        )),
      );
    }
    return receipts;
  }

  /**
   * Ledger record (accepted), then the jobs, then the record says queued: only then is the producer told
   * "yes". If the jobs cannot be added the records are ended as failed (enqueue_incomplete) and the error is
   * thrown; should even that fail, the reconciler ends them the same way. A message whose recipient is
   * suppressed is recorded and ended `suppressed` in one transaction, and gets no job.
   */
  private async enqueuePayloads(
    payloads: readonly LedgerPayload[],
    keys: readonly (string | undefined)[],
    contentHashes: readonly string[],
  ): Promise<SendReceipt[]> {
    const suppressed = await this.suppressionsOf(payloads);
    const entries: AcceptEntry[] = payloads.map((p, i) => {
      const key = keys[i];
      const hit = suppressed[i];
      return {
        id: p.id,
        messageId: p.messageIdHeader,
        expiresAt: p.expiresAt,
        payload: JSON.stringify(p),
        ...(key === undefined ? {} : { idempotencyKeyHash: hashOf(key) }),
        contentHash: contentHashes[i]!,
        ...(isCampaignMember(p)
          ? { tags: [campaignTag(p.campaign)], campaign: p.campaign, recipient: p.to.address }
          : { tags: p.tags, recipient: p.to.address, from: p.from.address }),
        ...(hit === undefined ? {} : { suppressedReason: hit.reason }),
      };
    });
    const outcomes = await this.ledger.accept(entries);
    const ids = payloads.filter((_, i) => outcomes[i]?.status === 'new').map((p) => p.id);
    ids.push(...(await this.strandedDuplicates(outcomes)));
    if (ids.length > 0) {
      try {
        await this.queue.addBulk(
          ids.map((id) => ({ name: SEND_JOB, data: { id }, opts: { jobId: id } }) as const),
        );
      } catch (err) {
        await this.ledger
          .finish(ids, 'failed', 'enqueue_incomplete', { from: ['accepted'] })
          .catch(() => undefined);
        throw err;
      }
      await this.ledger.markQueued(ids);
    }
    return payloads.map((p, i) => {
      const outcome = outcomes[i]!;
      const fresh = { id: p.id, messageId: p.messageIdHeader, duplicate: false } as const;
      if (outcome.status === 'new') return { ...fresh, status: 'queued' };
      const hit = suppressed[i];
      if (outcome.status === 'suppressed' && hit !== undefined) {
        return { ...fresh, status: 'suppressed', suppression: { reason: hit.reason, scope: hit.scope } };
      }
      const domain = p.messageIdHeader.slice(p.messageIdHeader.indexOf('@') + 1, -1);
      return {
        id: outcome.id,
        messageId: messageIdHeader(outcome.id, domain),
        duplicate: true,
        status: 'duplicate',
      };
    });
  }

  /**
   * Duplicates whose record is still `accepted`: an earlier call with the same idempotency key recorded them
   * and then lost Redis before their jobs were written (or before it could end them `failed`). A retry is how
   * the producer finishes that enqueue, so their jobs are added here. The job id is the message id, so a job
   * another call is adding at the same moment is not added twice, and the worker's claim refuses a message
   * that has already left `accepted`/`queued`.
   */
  private async strandedDuplicates(outcomes: readonly AcceptOutcome[]): Promise<string[]> {
    const ids = outcomes.filter((o) => o.status === 'duplicate').map((o) => o.id);
    if (ids.length === 0) return [];
    const states = await this.ledger.states(ids);
    return ids.filter((_, i) => states[i] === 'accepted');
  }

  /**
   * The suppression entry that stops each message, if any: its recipient in the sender scope (the From
   * domain; a campaign member's from its template) or in `*`. One round trip per 1000 messages.
   */
  private async suppressionsOf(
    payloads: readonly LedgerPayload[],
  ): Promise<(SuppressionEntry | undefined)[]> {
    const campaignScopes = new Map<string, string>();
    const items: { scope: string; address: string }[] = [];
    for (const p of payloads) {
      let scope: string;
      if (isCampaignMember(p)) {
        scope = campaignScopes.get(p.campaign) ?? (await this.campaignScope(p.campaign));
        campaignScopes.set(p.campaign, scope);
      } else scope = suppressionScopeOf(p.from.address);
      items.push({ scope, address: p.to.address });
    }
    return this.suppressionStore.checkEach(items);
  }

  /** A campaign's sender scope, from its stored template; `*` alone when the campaign is gone. */
  private async campaignScope(campaign: string): Promise<string> {
    const template = await this.campaigns.template(campaign);
    if (template === undefined) return GLOBAL_SUPPRESSION_SCOPE;
    const from = (JSON.parse(template) as { from?: unknown }).from;
    return suppressionScopeOf(parseMailbox(from, 'from').address);
  }

  private validateAll(inputs: readonly unknown[], keys: readonly (string | undefined)[]): Message[] {
    const issues: FieldIssue[] = [];
    const messages: Message[] = [];
    const options =
      this.options.maxMessageBytes === undefined ? {} : { maxMessageBytes: this.options.maxMessageBytes };
    inputs.forEach((input, index) => {
      const prefix = inputs.length === 1 ? '' : `[${index}].`;
      const key = keys[index];
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
        issues.push({
          field: `${prefix}idempotencyKey`,
          message: 'must be 1-255 printable ASCII characters',
        });
      }
      try {
        messages.push(parseMessage(input, options));
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        for (const issue of err.issues) issues.push({ field: prefix + issue.field, message: issue.message });
      }
    });
    if (issues.length > 0) throw new ValidationError(issues);
    return messages;
  }

  private toPayload(message: Message, now: number, pending: Map<string, string>): MailPayload {
    const id = newMessageId(now);
    const domain = this.options.messageIdDomain ?? addressDomain(message.from.address);
    const attachments: AttachmentRef[] = message.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      ...(a.contentId === undefined ? {} : { contentId: a.contentId }),
      content: ContentStore.toPartRef(a.content, pending),
      size: a.size,
    }));
    return {
      v: 1,
      id,
      messageIdHeader: messageIdHeader(id, domain),
      acceptedAt: now,
      expiresAt: now + this.maxAgeMs,
      from: message.from,
      to: message.to,
      ...(message.replyTo === undefined ? {} : { replyTo: message.replyTo }),
      subject: message.subject,
      ...(message.text === undefined ? {} : { text: ContentStore.toPartRef(message.text, pending) }),
      ...(message.html === undefined ? {} : { html: ContentStore.toPartRef(message.html, pending) }),
      headers: message.headers,
      attachments,
      tags: message.tags,
    };
  }
}

function hashOf(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export type { MessageStatus, MessageState };
