import { ConfigError, type FieldIssue } from '@mailroom/core';

/**
 * The right-most identifier of Mailroom's Feedback-ID: Gmail's `SenderId`, mandatory, 5 to 15 characters,
 * the same across the mail stream. Gmail reports per DKIM domain verified in Postmaster Tools, so one fixed
 * value does not mix the data of different senders.
 */
export const FEEDBACK_ID_SENDER_ID = 'mailroom';

/** What a campaign message's Feedback-ID identifies. */
export interface FeedbackIdFields {
  /** The campaign id. */
  readonly campaign: string;
  /** The campaign's first tag, if any; `campaign` stands in for it otherwise. */
  readonly tag?: string | undefined;
  /** The From domain (punycode). */
  readonly senderDomain: string;
}

const MAX_IDENTIFIER_CHARS = 64;
const MAX_DOMAIN_CHARS = 253;

/** An identifier without `:` (the separator), whitespace or anything but `A-Z a-z 0-9 . _ -`. */
function identifier(value: string, max: number): string {
  return value.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, max);
}

/**
 * The value of Gmail's feedback-loop header, `Feedback-ID: a:b:c:SenderId`:
 * `<campaign id>:<first tag, or "campaign">:<sender domain>:mailroom`. Gmail aggregates spam reports per
 * identifier, starting from the right, so Postmaster Tools shows the complaint rate of each sender domain,
 * tag and campaign. Every identifier is the same for all recipients of a campaign (never per recipient).
 * Throws ConfigError naming `feedbackId.campaign` or `feedbackId.senderDomain` when either is empty.
 */
export function feedbackIdValue(fields: FeedbackIdFields): string {
  const campaign = identifier(fields.campaign, MAX_IDENTIFIER_CHARS);
  const domain = identifier(fields.senderDomain.toLowerCase(), MAX_DOMAIN_CHARS);
  const issues: FieldIssue[] = [];
  if (campaign === '') issues.push({ field: 'feedbackId.campaign', message: 'must not be empty' });
  if (domain === '') issues.push({ field: 'feedbackId.senderDomain', message: 'must not be empty' });
  if (issues.length > 0) throw new ConfigError(issues);
  const tag = identifier(fields.tag ?? '', MAX_IDENTIFIER_CHARS) || 'campaign';
  return `${campaign}:${tag}:${domain}:${FEEDBACK_ID_SENDER_ID}`;
}

/**
 * The `Feedback-ID:` header line. Written on one line (at most 400 characters, under RFC 5322's 998): the
 * value has no whitespace to fold at. DKIM signs it (and oversigns it: one added in transit breaks the
 * signature), as Gmail requires.
 */
export function feedbackIdHeader(fields: FeedbackIdFields): string {
  return `Feedback-ID: ${feedbackIdValue(fields)}\r\n`;
}
