import type { MailroomIdSource } from './feedback-report.js';
import { fieldValue, fieldValues } from './header-fields.js';
import { mailroomIdOf, messageIds } from './message-ids.js';
import { findAddresses } from './recipient-address.js';
import type { ReportParts } from './report-parts.js';
import { decodeVerp, type VerpOptions } from './verp.js';

/** How a report names the message it is about. */
export interface MessageLink {
  readonly originalMessageId?: string;
  readonly mailroomId?: string;
  readonly mailroomIdSource?: MailroomIdSource;
}

/**
 * Header fields of the report that name the address it was delivered to, i.e. the return path the
 * message was sent with: Delivered-To and X-Original-To (Postfix, Dovecot), Envelope-To (Exim),
 * X-Envelope-To, X-Apparently-To (Yahoo), and To (the bounce is addressed to the return path).
 */
const DELIVERY_ADDRESS_FIELDS = [
  'delivered-to',
  'x-original-to',
  'envelope-to',
  'x-envelope-to',
  'x-apparently-to',
  'to',
];
/** Bounds the number of VERP candidates tried: each costs an HMAC. */
const MAX_VERP_CANDIDATES = 20;

/** The returned Message-ID, and the Mailroom id from a VERP return path or else from that Message-ID. */
export function messageLink(
  parts: ReportParts,
  verp: VerpOptions | undefined,
  rcptTo: readonly string[],
): MessageLink {
  const originalMessageId = findOriginalMessageId(parts);
  const link = originalMessageId === undefined ? {} : { originalMessageId };
  const verpId = verp === undefined ? undefined : findVerpId(parts, verp, rcptTo);
  if (verpId !== undefined) return { ...link, mailroomId: verpId, mailroomIdSource: 'verp' };
  const fromMessageId = mailroomIdOf(originalMessageId);
  if (fromMessageId !== undefined)
    return { ...link, mailroomId: fromMessageId, mailroomIdSource: 'message-id' };
  return link;
}

/**
 * The returned message's Message-ID: from the attached message or headers, Gmail's X-Original-Message-ID,
 * the inline copy, then the report's own In-Reply-To and References (Gmail, Exchange and Exim set them).
 */
function findOriginalMessageId(parts: ReportParts): string | undefined {
  const candidates = [
    () => messageIds(fieldValue(parts.original, 'message-id'))[0],
    () => parts.dsn?.originalMessageId,
    () => messageIds(/^[ \t]{0,8}Message-ID:[ \t]{0,8}(<[^<>\s]{1,500}>)/im.exec(parts.text)?.[1])[0],
    () => messageIds(fieldValue(parts.headers, 'in-reply-to'))[0],
    () => messageIds(fieldValue(parts.headers, 'references')).at(-1),
  ];
  for (const candidate of candidates) {
    const id = candidate();
    if (id !== undefined) return id;
  }
  return undefined;
}

/**
 * The message id of the first VERP return path whose MAC checks out among: the envelope recipients, the
 * report's delivery headers, Postfix's X-Postfix-Sender DSN field, ARF Original-Mail-From, and the
 * returned message's Return-Path.
 */
function findVerpId(parts: ReportParts, verp: VerpOptions, rcptTo: readonly string[]): string | undefined {
  const values = [
    ...rcptTo,
    ...DELIVERY_ADDRESS_FIELDS.flatMap((name) => fieldValues(parts.headers, name)),
    ...(parts.dsn?.postfixSender === undefined ? [] : [parts.dsn.postfixSender]),
    ...fieldValues(parts.feedback ?? [], 'original-mail-from'),
    ...fieldValues(parts.original, 'return-path'),
  ];
  const candidates = values
    .slice(0, MAX_VERP_CANDIDATES)
    .flatMap((value) => findAddresses(value, 5))
    .slice(0, MAX_VERP_CANDIDATES);
  for (const address of candidates) {
    const id = decodeVerp(address, verp);
    if (id !== undefined) return id;
  }
  return undefined;
}
