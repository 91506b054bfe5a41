import { isAutoReply } from './auto-reply.js';
import { bounceClass } from './bounce-class.js';
import { detectGenerator } from './detect-generator.js';
import type { FeedbackReport } from './feedback-report.js';
import { fieldValues } from './header-fields.js';
import { findAddresses } from './recipient-address.js';
import type { ReportParts } from './report-parts.js';
import { returnedCopy } from './returned-copy.js';
import {
  readTextHeuristically,
  readTextLayout,
  type TextBounce,
  type TextBounceInput,
} from './text-bounce.js';

/** Header fields of a report that name its own addresses, never the failed recipient. */
const OWN_ADDRESS_FIELDS = [
  'from',
  'to',
  'delivered-to',
  'x-original-to',
  'return-path',
  'reply-to',
  'sender',
];

/**
 * A message without a delivery-status or feedback-report part: a bounce in one MTA's layout, else an
 * auto-reply (never a bounce, whatever its text says), else a bounce recognised by heuristics, else
 * nothing.
 */
export function readText(parts: ReportParts): FeedbackReport {
  const input: TextBounceInput = {
    text: returnedCopy(parts.text).report,
    subject: parts.subject,
    ...(parts.fromAddress === undefined ? {} : { fromAddress: parts.fromAddress }),
    failedRecipients: fieldValues(parts.headers, 'x-failed-recipients').flatMap((value) =>
      findAddresses(value, 5),
    ),
    ownAddresses: new Set(
      OWN_ADDRESS_FIELDS.flatMap((name) =>
        fieldValues(parts.headers, name).flatMap((value) => findAddresses(value).map((a) => a.toLowerCase())),
      ),
    ),
  };
  const layout = readTextLayout(input);
  if (layout !== undefined) return textReport(layout, parts, input.text);
  if (isAutoReply(parts.headers, parts.subject, parts.fromAddress))
    return { kind: 'unknown', format: 'auto-reply' };
  const heuristic = readTextHeuristically(input);
  return heuristic === undefined
    ? { kind: 'unknown', format: 'none' }
    : textReport(heuristic, parts, input.text);
}

function textReport(bounce: TextBounce, parts: ReportParts, text: string): FeedbackReport {
  const generator =
    detectGenerator({
      ...(parts.fromAddress === undefined ? {} : { fromAddress: parts.fromAddress }),
      headerNames: new Set(parts.headers.map((f) => f.name)),
      text,
    }) ?? bounce.generator;
  const kind = bounce.delayed ? 'delay' : 'bounce';
  return {
    kind,
    format: 'text',
    ...(generator === undefined ? {} : { generator }),
    ...(kind === 'bounce'
      ? { bounceClass: bounceClass(bounce.status, bounce.diagnostic, bounce.permanent ? 'hard' : 'soft') }
      : {}),
    action: bounce.delayed ? 'delayed' : 'failed',
    ...(bounce.status === undefined ? {} : { status: bounce.status }),
    ...(bounce.diagnostic === undefined ? {} : { diagnostic: bounce.diagnostic }),
    ...(bounce.recipient === undefined ? {} : { recipient: bounce.recipient }),
  };
}
