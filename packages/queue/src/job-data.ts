import type { Mailbox } from '@mailroom/core';

/**
 * A body part or attachment as carried by a job: inline when small, otherwise a reference to content stored
 * once under its SHA-256 (so a newsletter's shared HTML or a shared attachment is stored once, not per job).
 */
export type PartRef = { readonly inline: string } | { readonly ref: string; readonly bytes: number };

export interface AttachmentRef {
  readonly filename: string;
  readonly contentType: string;
  readonly contentId?: string;
  /** Base64 content, inline or by reference. */
  readonly content: PartRef;
  /** Decoded size in bytes. */
  readonly size: number;
}

/**
 * One message as the ledger keeps it until it is sent: what differs per message, plus references to shared
 * content. Version 1.
 */
export interface MailPayload {
  readonly v: 1;
  /** Mailroom's message id, also the BullMQ job id. */
  readonly id: string;
  /** The Message-ID header, with angle brackets; the same on every attempt. */
  readonly messageIdHeader: string;
  /** When the message was accepted, ms since the epoch. */
  readonly acceptedAt: number;
  /** After this instant (ms) the message is no longer attempted and ends as expired. */
  readonly expiresAt: number;
  readonly from: Mailbox;
  readonly to: Mailbox;
  readonly replyTo?: Mailbox;
  readonly subject: string;
  readonly text?: PartRef;
  readonly html?: PartRef;
  readonly headers: readonly (readonly [string, string])[];
  readonly attachments: readonly AttachmentRef[];
  readonly tags: readonly string[];
}

/**
 * One campaign recipient as the ledger keeps it: only what differs from the campaign's template, which is
 * stored once with the campaign. Version 1.
 */
export interface CampaignMemberPayload {
  readonly v: 1;
  readonly campaign: string;
  readonly id: string;
  readonly messageIdHeader: string;
  readonly acceptedAt: number;
  readonly expiresAt: number;
  readonly to: Mailbox;
  /** Merge variables for this recipient. */
  readonly vars: Readonly<Record<string, unknown>>;
}

/** What a ledger record's payload can be. */
export type LedgerPayload = MailPayload | CampaignMemberPayload;

export function isCampaignMember(payload: LedgerPayload): payload is CampaignMemberPayload {
  return 'campaign' in payload;
}

/**
 * The data of one `send` job: only the message id. The job points at the ledger record, which holds the
 * payload and is the one place a message's state lives.
 */
export interface SendJobData {
  readonly id: string;
}

/**
 * The data of one `send-batch` job: several messages of one campaign, so the per-job cost in Redis is shared.
 * Each message keeps its own ledger record, outcome and retries; one that must wait leaves the batch and
 * goes on as a `send` job of its own.
 */
export interface BatchJobData {
  readonly ids: readonly string[];
  readonly campaign: string;
}

export type MailJobData = SendJobData | BatchJobData;

export function isBatch(data: MailJobData): data is BatchJobData {
  return 'ids' in data;
}

/** Parts at or below this size (UTF-8 bytes) travel inline in the job; larger ones are stored once by hash. */
export const INLINE_PART_MAX_BYTES = 4096;

/** The references a job needs resolved before its message can be composed. */
export function partRefs(data: MailPayload): string[] {
  const refs: string[] = [];
  for (const part of [data.text, data.html, ...data.attachments.map((a) => a.content)]) {
    if (part && 'ref' in part) refs.push(part.ref);
  }
  return refs;
}
