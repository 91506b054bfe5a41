import { ConfigError } from '@mailroom/core';
import type { FeedbackReport } from './feedback-report.js';
import { messageLink } from './message-link.js';
import { readComplaint } from './read-complaint.js';
import { readDeliveryStatus } from './read-dsn.js';
import { readText } from './read-text.js';
import { reportParts, type ReportParts } from './report-parts.js';
import { validateVerpOptions, type VerpOptions } from './verp.js';

/** Inputs besides the message itself. */
export interface ParseFeedbackOptions {
  /** The return-path settings the messages were sent with; without them no VERP address is read. */
  verp?: VerpOptions;
  /** Envelope recipients (RCPT TO) the report arrived for: the most reliable place of the return path. */
  rcptTo?: readonly string[];
  /**
   * Bytes of the message that are read, default DEFAULT_MAX_FEEDBACK_BYTES (1 MiB); the rest is ignored.
   * Reports put their explanation and delivery-status or feedback-report part before the returned
   * message, so a cut only ever loses the end of that copy.
   */
  maxBytes?: number;
}

/** Default of `ParseFeedbackOptions.maxBytes`: 1 MiB. */
export const DEFAULT_MAX_FEEDBACK_BYTES = 1024 * 1024;
/** Envelope recipients looked at: a report is delivered to one return path. */
const MAX_RCPT_TO = 10;

const NOTHING: FeedbackReport = { kind: 'unknown', format: 'none' };

/**
 * Reads an inbound bounce, delay warning, complaint or auto-reply: RFC 3464 delivery status notifications,
 * RFC 5965 ARF feedback reports, the plain-text bounces of qmail, Exim, Postfix, Sendmail, Exchange,
 * Gmail, Yahoo and Hotmail, and RFC 3834 auto-replies, then finds the Mailroom message it is about (see
 * FeedbackReport). Its work is bounded: at most `maxBytes` of input, 100 MIME parts, 100 DSN recipients,
 * 64 KiB of explanation text. Never rejects for the message, whatever it is (empty, binary, truncated, too
 * many parts: kind `unknown`, format `none`); rejects with ConfigError for unusable options.
 */
export async function parseFeedback(
  raw: Buffer | string,
  options: ParseFeedbackOptions = {},
): Promise<FeedbackReport> {
  if (options.verp !== undefined) validateVerpOptions(options.verp);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FEEDBACK_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new ConfigError([{ field: 'maxBytes', message: 'must be a positive integer' }]);
  }
  if (typeof raw !== 'string' && !Buffer.isBuffer(raw)) return { ...NOTHING };
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
  let parts: ReportParts;
  try {
    parts = await reportParts(bytes.length > maxBytes ? bytes.subarray(0, maxBytes) : bytes);
  } catch {
    // mailparser refuses what it cannot read or what crosses its limits: not a report Mailroom can use.
    return { ...NOTHING };
  }
  const report = readReport(parts);
  const rcptTo = Array.isArray(options.rcptTo)
    ? options.rcptTo.filter((value) => typeof value === 'string').slice(0, MAX_RCPT_TO)
    : [];
  return { ...report, ...messageLink(parts, options.verp, rcptTo) };
}

function readReport(parts: ReportParts): FeedbackReport {
  if (parts.feedback !== undefined || parts.reportType === 'feedback-report') return readComplaint(parts);
  if (parts.dsn !== undefined && parts.dsn.recipients.length > 0) return readDeliveryStatus(parts, parts.dsn);
  return readText(parts);
}
