import { detectGenerator } from './detect-generator.js';
import type { FeedbackReport } from './feedback-report.js';
import { fieldValue, fieldValues } from './header-fields.js';
import { findAddresses, recipientAddress } from './recipient-address.js';
import type { ReportParts } from './report-parts.js';

/** ARF types that are not complaints: a "this is not spam" vote, and DKIM/SPF failure reports (RFC 6591). */
const NOT_COMPLAINTS = new Set(['not-spam', 'auth-failure']);

/** RFC 5965 ARF: Feedback-Type, the recipient, and who sent the report. */
export function readComplaint(parts: ReportParts): FeedbackReport {
  const fields = parts.feedback ?? [];
  const feedbackType = /^[A-Za-z0-9-]{1,60}/
    .exec(fieldValue(fields, 'feedback-type') ?? '')?.[0]
    ?.toLowerCase();
  // A report without a Feedback-Type still says someone reported the message.
  const complaint = feedbackType === undefined || !NOT_COMPLAINTS.has(feedbackType);
  // Original-Rcpt-To and Removal-Recipient are RFC 5965 fields; Microsoft's JMRP names the recipient in an
  // X-HmXmrOriginalRecipient header of the returned message instead. The returned To comes last: some
  // reporters redact it.
  const named = [
    ...fieldValues(fields, 'original-rcpt-to'),
    ...fieldValues(fields, 'removal-recipient'),
    ...fieldValues(parts.original, 'x-hmxmroriginalrecipient'),
  ];
  const recipient =
    named.map(recipientAddress).find((address) => address !== undefined) ??
    singleAddress(fieldValue(parts.original, 'to'));
  const userAgent = fieldValue(fields, 'user-agent');
  const generator = detectGenerator({
    ...(parts.fromAddress === undefined ? {} : { fromAddress: parts.fromAddress }),
    headerNames: new Set(parts.headers.map((f) => f.name)),
    ...(userAgent === undefined ? {} : { feedbackUserAgent: userAgent }),
    text: '',
  });
  return {
    kind: complaint ? 'complaint' : 'unknown',
    format: 'arf',
    ...(generator === undefined ? {} : { generator }),
    ...(recipient === undefined ? {} : { recipient }),
    ...(feedbackType === undefined ? {} : { feedbackType }),
  };
}

/** The address of a To field that names exactly one (not `undisclosed-recipients:;` or a redacted one). */
function singleAddress(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const addresses = findAddresses(value, 2);
  return addresses.length === 1 ? recipientAddress(addresses[0]) : undefined;
}
