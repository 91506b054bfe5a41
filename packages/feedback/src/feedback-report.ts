import type { Generator } from './detect-generator.js';

/**
 * - `bounce`: delivery failed for good (a DSN with Action: failed, or a text bounce that is not a warning).
 * - `complaint`: a recipient reported the message (ARF abuse, fraud, virus, other or an unregistered type).
 * - `delay`: delivery is still being retried (Action: delayed, "THIS IS A WARNING ONLY"); never a bounce.
 * - `unknown`: anything else: a success DSN, an auto-reply, an ARF not-spam or auth-failure report, a
 *   message that is not a report, unreadable input.
 */
export type FeedbackKind = 'bounce' | 'complaint' | 'delay' | 'unknown';

/**
 * `hard`: the address does not work (status class 5); `soft`: it may work later (status class 4).
 * Only bounces have a class.
 */
export type BounceClass = 'hard' | 'soft';

/**
 * How the report was written: `dsn` (RFC 3464 multipart/report with a delivery-status part), `arf`
 * (RFC 5965 feedback report), `text` (a bounce in one MTA's own plain-text layout, or read by heuristics),
 * `auto-reply` (an out-of-office or other automatic answer, RFC 3834), `none` (nothing recognised).
 */
export type ReportFormat = 'dsn' | 'arf' | 'text' | 'auto-reply' | 'none';

/** Where `mailroomId` came from: a return path whose MAC checked out, or an unauthenticated Message-ID. */
export type MailroomIdSource = 'verp' | 'message-id';

/** One per-recipient group of a delivery-status part. */
export interface DsnRecipient {
  /** Final-Recipient: the address the reporting MTA tried, domain lower-cased. */
  readonly finalRecipient?: string;
  /** Original-Recipient: the address as the sender gave it (before alias expansion), domain lower-cased. */
  readonly originalRecipient?: string;
  /** Action, lower-case (`failed`, `delayed`, `delivered`, `relayed`, `expanded`). */
  readonly action?: string;
  /** RFC 3463 status `x.y.z`; a generic `x.0.0` gives way to a more specific one quoted in the diagnostic. */
  readonly status?: string;
  /** Diagnostic-Code as one line, without its type (`smtp;`). */
  readonly diagnostic?: string;
}

/** What one inbound report says. Every field but `kind` and `format` is present only when known. */
export interface FeedbackReport {
  kind: FeedbackKind;
  format: ReportFormat;
  /** The mail system that wrote the report, when its fingerprints are recognised. */
  generator?: Generator;
  /**
   * Bounces only. `5.x.x` is hard, `4.x.x` soft: a final failure with a 4.x.x status (Postfix giving up on
   * `452 4.2.2 mailbox full` after its queue lifetime) loses the message, but the address may work later.
   * Without a status, the reply code decides (`550` hard, `452` soft); without either, a DSN failure is
   * hard and a text bounce is hard only when it says the error is permanent.
   */
  bounceClass?: BounceClass;
  /** `failed` for bounces, `delayed` for delays; a DSN's own Action for the other DSNs. */
  action?: string;
  /** RFC 3463 status `x.y.z`, when the report states one. */
  status?: string;
  /** Diagnostic-Code or the SMTP reply quoted in the text, as one line of at most 1000 characters. */
  diagnostic?: string;
  /**
   * The recipient the report is about, domain lower-cased: a DSN's Original-Recipient (the address as
   * sent) before its Final-Recipient; ARF Original-Rcpt-To or Removal-Recipient, else the returned
   * message's single To address. Taken from the report, so unauthenticated: see the README.
   */
  recipient?: string;
  /**
   * Every per-recipient group of a DSN (at most 100), in order. `recipient`, `status` and friends describe
   * the first `failed` one, else the first `delayed`, else the first.
   */
  recipients?: readonly DsnRecipient[];
  /** ARF Feedback-Type, lower-case (`abuse`, `fraud`, `virus`, `other`, `not-spam`, `auth-failure`, ...). */
  feedbackType?: string;
  /** Message-ID of the message reported on, with its angle brackets. */
  originalMessageId?: string;
  /**
   * The Mailroom message id: from a VERP return path (MAC checked) before the returned Message-ID, which
   * anyone who has seen the message can copy into a forged report.
   */
  mailroomId?: string;
  /** Where mailroomId came from; present exactly when mailroomId is. */
  mailroomIdSource?: MailroomIdSource;
}
