import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import {
  ValidationError,
  addressDomain,
  messageIdHeader,
  newMessageId,
  parseMessage,
  type FieldIssue,
  type Message,
} from '@mailroom/core';
import {
  ContentStore,
  DEFAULT_PREFIX,
  SEND_JOB,
  createMailQueue,
  type AttachmentRef,
  type MailJobData,
} from '@mailroom/queue';

export interface MailroomClientOptions {
  /**
   * Redis URL (`redis://host:port/db`, `rediss://` for TLS), or an ioredis client you configured yourself
   * (Sentinel, TLS options); a client you pass stays yours and is not closed by close().
   */
  redis: string | Redis;
  /** Key prefix with a Redis Cluster hash tag (default `{mailroom}`); workers must use the same. */
  prefix?: string;
  /** Largest accepted message in bytes, as encoded MIME (default 10 MiB). */
  maxMessageBytes?: number;
  /** How long a message may keep being retried before it ends as expired, in ms (default 24 h). */
  maxAgeMs?: number;
  /** Domain for Message-ID headers (default: the From address's domain). */
  messageIdDomain?: string;
}

/** What the producer is told about an accepted message. */
export interface SendReceipt {
  /** Mailroom's message id: use it to ask for the message's status. */
  readonly id: string;
  /** The Message-ID header the message carries on every attempt. */
  readonly messageId: string;
}

export const DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000;
/** Messages enqueued per BullMQ addBulk call (each call is one atomic MULTI). */
const BULK_CHUNK = 1000;
/** Stored content outlives the message's max age by this margin, so a late retry still finds it. */
const CONTENT_TTL_MARGIN_MS = 3600 * 1000;

/**
 * The producer SDK: validates messages, stores shared content once, and enqueues one job per message.
 * Nothing is queued unless the whole message (or the whole batch) is valid.
 */
export class MailroomClient {
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly queue: Queue<MailJobData, unknown, typeof SEND_JOB>;
  private readonly content: ContentStore;
  private readonly maxAgeMs: number;

  constructor(private readonly options: MailroomClientOptions) {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (options.redis instanceof Redis) {
      this.redis = options.redis;
      this.ownsRedis = false;
    } else {
      // Producers fail fast when Redis is unreachable instead of queueing commands in memory.
      this.redis = new Redis(options.redis, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      this.ownsRedis = true;
    }
    this.queue = createMailQueue(this.redis, { prefix });
    this.content = new ContentStore(this.redis, prefix);
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  }

  /** Resolves once the Redis connection is ready (useful before the first send with enableOfflineQueue off). */
  async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        this.redis.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        this.redis.off('ready', onReady);
        reject(err);
      };
      this.redis.once('ready', onReady);
      this.redis.once('error', onError);
    });
  }

  /** Validates and enqueues one message. Throws ValidationError naming every bad field; nothing is queued then. */
  async send(input: unknown): Promise<SendReceipt> {
    const [receipt] = await this.sendMany([input]);
    return receipt!;
  }

  /**
   * Validates every message first, then enqueues them all. One invalid message refuses the whole batch
   * (fields are named `[index].field`), so a batch is never half-queued by validation.
   */
  async sendMany(inputs: readonly unknown[]): Promise<SendReceipt[]> {
    const messages = this.validateAll(inputs);
    const now = Date.now();
    const receipts: SendReceipt[] = [];
    for (let start = 0; start < messages.length; start += BULK_CHUNK) {
      const chunk = messages.slice(start, start + BULK_CHUNK);
      const pending = new Map<string, string>();
      const jobs = chunk.map((message) => {
        const data = this.toJobData(message, now, pending);
        receipts.push({ id: data.id, messageId: data.messageIdHeader });
        return { name: SEND_JOB, data, opts: { jobId: data.id } } as const;
      });
      // Content first: a job is never queued before the content it refers to exists.
      await this.content.store(pending, (this.maxAgeMs + CONTENT_TTL_MARGIN_MS) / 1000);
      await this.queue.addBulk(jobs);
    }
    return receipts;
  }

  async close(): Promise<void> {
    await this.queue.close();
    if (this.ownsRedis) this.redis.disconnect();
  }

  private validateAll(inputs: readonly unknown[]): Message[] {
    const issues: FieldIssue[] = [];
    const messages: Message[] = [];
    const options =
      this.options.maxMessageBytes === undefined ? {} : { maxMessageBytes: this.options.maxMessageBytes };
    inputs.forEach((input, index) => {
      try {
        messages.push(parseMessage(input, options));
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        const prefix = inputs.length === 1 ? '' : `[${index}].`;
        for (const issue of err.issues) issues.push({ field: prefix + issue.field, message: issue.message });
      }
    });
    if (issues.length > 0) throw new ValidationError(issues);
    return messages;
  }

  private toJobData(message: Message, now: number, pending: Map<string, string>): MailJobData {
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
