import type { FeedbackReport, MailroomIdSource } from './feedback-report.js';

/**
 * What an inbound report means for the message it names:
 * - `hard_bounce`: the address does not work (a bounce with a 5.x.x status): suppress it.
 * - `soft_bounce`: delivery failed for good but the address may work later (a final 4.x.x failure, or a
 *   text bounce that does not call the error permanent): recorded, never suppressed.
 * - `complaint`: the recipient reported the message (ARF abuse, fraud, virus, other): suppress them.
 * - `delay`: still being retried somewhere: recorded, never suppressed.
 * - `unknown`: anything else (a success DSN, an auto-reply, an ARF not-spam or auth-failure report,
 *   unreadable input): counted only.
 */
export const FEEDBACK_EVENT_KINDS = ['hard_bounce', 'soft_bounce', 'complaint', 'delay', 'unknown'] as const;
export type FeedbackEventKind = (typeof FEEDBACK_EVENT_KINDS)[number];

/** One inbound report, reduced to what recording it needs. Fields other than the first three only when known. */
export interface FeedbackEvent {
  readonly kind: FeedbackEventKind;
  /**
   * Where the report came from, as `<format>[:<generator>][:<feedback type>]`: `dsn:gmail`, `text:qmail`,
   * `arf:yahoo:abuse`, `dsn`, `none`. For logs, the ledger's history and the suppression entry's source.
   */
  readonly source: string;
  /**
   * True when the report was sent to one of the configured complaints addresses (the address given to
   * feedback loops only), false when it came to the bounce domain, whose addresses every recipient sees.
   */
  readonly toComplaintsAddress: boolean;
  /** The Mailroom message id the report is about. */
  readonly mailroomId?: string;
  /** How `mailroomId` was found: a VERP return path whose MAC checked out, or a Message-ID (unauthenticated). */
  readonly linkedBy?: MailroomIdSource;
  /** Message-ID of the message reported on, with its angle brackets. */
  readonly originalMessageId?: string;
  /** The recipient the report names (unauthenticated: see the package README). */
  readonly recipient?: string;
  /** RFC 3463 status `x.y.z`. */
  readonly status?: string;
  /** The SMTP reply code the diagnostic starts with (`550`), when it starts with one. */
  readonly replyCode?: number;
  /** The remote server's reply or Diagnostic-Code, one line, at most 1000 characters. */
  readonly diagnostic?: string;
  /** ARF Feedback-Type, lower-case. */
  readonly feedbackType?: string;
}

/** Where the report arrived, besides the report itself. */
export interface FeedbackEventContext {
  /** The report was sent to a complaints address (see FeedbackEvent.toComplaintsAddress). */
  readonly toComplaintsAddress: boolean;
}

const REPLY_CODE = /^([245][0-9][0-9])(?:[ -]|$)/;

/** The event kind of a report: bounces split by class (a bounce without one counts as soft, never suppressed). */
export function feedbackKindOf(report: Pick<FeedbackReport, 'kind' | 'bounceClass'>): FeedbackEventKind {
  switch (report.kind) {
    case 'bounce':
      return report.bounceClass === 'hard' ? 'hard_bounce' : 'soft_bounce';
    case 'complaint':
      return 'complaint';
    case 'delay':
      return 'delay';
    case 'unknown':
      return 'unknown';
  }
}

/** Reduces a parsed report to the event the recorder takes. */
export function feedbackEventOf(report: FeedbackReport, context: FeedbackEventContext): FeedbackEvent {
  const source = [report.format, report.generator, report.feedbackType]
    .filter((part): part is string => part !== undefined && part !== '')
    .join(':');
  const code = report.diagnostic === undefined ? undefined : REPLY_CODE.exec(report.diagnostic)?.[1];
  const optional = {
    mailroomId: report.mailroomId,
    linkedBy: report.mailroomIdSource,
    originalMessageId: report.originalMessageId,
    recipient: report.recipient,
    status: report.status,
    replyCode: code === undefined ? undefined : Number(code),
    diagnostic: report.diagnostic,
    feedbackType: report.feedbackType,
  };
  return {
    kind: feedbackKindOf(report),
    source,
    toComplaintsAddress: context.toComplaintsAddress,
    ...(Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined)) as Partial<
      Omit<FeedbackEvent, 'kind' | 'source' | 'toComplaintsAddress'>
    >),
  };
}
