import { bounceClass } from './bounce-class.js';
import type { DeliveryStatus } from './delivery-status.js';
import { detectGenerator } from './detect-generator.js';
import type { DsnRecipient, FeedbackReport } from './feedback-report.js';
import type { ReportParts } from './report-parts.js';

/**
 * RFC 3464: describes the first failed recipient, else the first delayed one, else the first, and lists
 * them all. Action `failed` is a bounce, `delayed` a delay; `delivered`, `relayed` and `expanded` are
 * successes, kind `unknown`.
 */
export function readDeliveryStatus(parts: ReportParts, dsn: DeliveryStatus): FeedbackReport {
  const chosen: DsnRecipient | undefined =
    dsn.recipients.find((r) => r.action === 'failed') ??
    dsn.recipients.find((r) => r.action === 'delayed') ??
    dsn.recipients[0];
  const generator = detectGenerator({
    ...(parts.fromAddress === undefined ? {} : { fromAddress: parts.fromAddress }),
    headerNames: new Set(parts.headers.map((f) => f.name)),
    ...(dsn.reportingMta === undefined ? {} : { reportingMta: dsn.reportingMta }),
    dsnFieldNames: dsn.fieldNames,
    text: parts.text,
  });
  const kind = chosen?.action === 'failed' ? 'bounce' : chosen?.action === 'delayed' ? 'delay' : 'unknown';
  const recipient = chosen?.originalRecipient ?? chosen?.finalRecipient;
  return {
    kind,
    format: 'dsn',
    ...(generator === undefined ? {} : { generator }),
    // Status is a required field: a failure that leaves it and the reply code out is still a failure.
    ...(kind === 'bounce' ? { bounceClass: bounceClass(chosen?.status, chosen?.diagnostic, 'hard') } : {}),
    ...(chosen?.action === undefined ? {} : { action: chosen.action }),
    ...(chosen?.status === undefined ? {} : { status: chosen.status }),
    ...(chosen?.diagnostic === undefined ? {} : { diagnostic: chosen.diagnostic }),
    ...(recipient === undefined ? {} : { recipient }),
    recipients: dsn.recipients,
  };
}
