import { fieldValue, headerFields, splitLines, type HeaderField } from './header-fields.js';
import { messageIds } from './message-ids.js';
import { recipientAddress } from './recipient-address.js';
import type { DsnRecipient } from './feedback-report.js';
import { diagnosticText, enhancedStatusIn, refineStatus } from './smtp-reply-text.js';

/** A parsed `message/delivery-status` (or `message/global-delivery-status`) body. */
export interface DeliveryStatus {
  /** Reporting-MTA name without its type, lower-cased. */
  readonly reportingMta?: string;
  /** Gmail and a few others name the returned message in the per-message fields (X-Original-Message-ID). */
  readonly originalMessageId?: string;
  /** Postfix's X-Postfix-Sender: the envelope sender of the returned message (its return path). */
  readonly postfixSender?: string;
  /** Every field name seen, lower-case: some name the MTA that wrote the report (X-Postfix-Queue-ID). */
  readonly fieldNames: ReadonlySet<string>;
  readonly recipients: readonly DsnRecipient[];
}

/**
 * Mailroom sends each message to one recipient; more groups than this come from alias expansion at most,
 * and the rest of a huge report is not read.
 */
export const MAX_DSN_RECIPIENTS = 100;
const RECIPIENT_FIELDS = new Set(['final-recipient', 'original-recipient', 'action', 'status']);

/**
 * Reads an RFC 3464 delivery-status body: a per-message field group, then one group per recipient,
 * separated by empty lines. Tolerates reports that leave out the empty line after the per-message group.
 */
export function deliveryStatus(text: string): DeliveryStatus {
  const lines = splitLines(text);
  const groups: HeaderField[][] = [];
  let i = 0;
  // One group for the per-message fields, then at most MAX_DSN_RECIPIENTS recipient groups.
  while (i < lines.length && groups.length <= MAX_DSN_RECIPIENTS) {
    if ((lines[i] ?? '').trim() === '') {
      i++;
      continue;
    }
    const { fields, next } = headerFields(lines, i);
    if (fields.length > 0) groups.push(fields);
    i = next === i ? i + 1 : next;
  }
  const perMessage = groups[0] ?? [];
  const recipientGroups = groups.filter((group) => group.some((f) => RECIPIENT_FIELDS.has(f.name)));
  const fieldNames = new Set(groups.flatMap((group) => group.map((f) => f.name)));
  const reportingMta = typeValue(fieldValue(perMessage, 'reporting-mta'))?.toLowerCase();
  const originalMessageId = messageIds(fieldValue(perMessage, 'x-original-message-id'))[0];
  const postfixSender = fieldValue(perMessage, 'x-postfix-sender');
  return {
    ...(reportingMta === undefined ? {} : { reportingMta }),
    ...(originalMessageId === undefined ? {} : { originalMessageId }),
    ...(postfixSender === undefined ? {} : { postfixSender }),
    fieldNames,
    recipients: recipientGroups.slice(0, MAX_DSN_RECIPIENTS).map(recipientStatus),
  };
}

function recipientStatus(group: readonly HeaderField[]): DsnRecipient {
  const diagnostic = diagnosticText(fieldValue(group, 'diagnostic-code'));
  const status = refineStatus(enhancedStatusIn(fieldValue(group, 'status')), diagnostic);
  const written = /^[a-z]+/.exec((fieldValue(group, 'action') ?? '').toLowerCase())?.[0];
  const action = written ?? actionFromStatus(status);
  const finalRecipient = recipientAddress(fieldValue(group, 'final-recipient'));
  const originalRecipient = recipientAddress(fieldValue(group, 'original-recipient'));
  return {
    ...(finalRecipient === undefined ? {} : { finalRecipient }),
    ...(originalRecipient === undefined ? {} : { originalRecipient }),
    ...(action === undefined ? {} : { action }),
    ...(status === undefined ? {} : { status }),
    ...(diagnostic === undefined ? {} : { diagnostic }),
  };
}

/** RFC 3464 makes Action required; for reports that leave it out, the status class says what happened. */
function actionFromStatus(status: string | undefined): string | undefined {
  switch (status?.charAt(0)) {
    case '5':
      return 'failed';
    case '4':
      return 'delayed';
    case '2':
      return 'delivered';
    default:
      return undefined;
  }
}

/** `dns; mx.example.com` → `mx.example.com`. */
function typeValue(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = value
    .replace(/^[A-Za-z0-9-]{1,40}[ \t]{0,8};[ \t]*/, '')
    .split(/\s/)[0]
    ?.trim();
  return text === undefined || text === '' ? undefined : text;
}
