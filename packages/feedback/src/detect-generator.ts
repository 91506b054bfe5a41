/**
 * The mail systems whose reports Mailroom recognises by their fingerprints: the big mailbox providers
 * (`microsoft` is Outlook.com and Hotmail, `exchange` is Exchange Server and Office 365), Amazon SES as a
 * relay, and the common MTAs.
 */
export type Generator =
  'gmail' | 'microsoft' | 'exchange' | 'yahoo' | 'amazon-ses' | 'postfix' | 'exim' | 'qmail' | 'sendmail';

/** What a report shows about the system that wrote it. */
export interface GeneratorSignals {
  /** Address of the report's From, domain lower-cased. */
  readonly fromAddress?: string;
  /** Names of the report's top-level header fields, lower-case. */
  readonly headerNames: ReadonlySet<string>;
  /** Reporting-MTA of the delivery-status part, lower-case. */
  readonly reportingMta?: string;
  /** Field names of the delivery-status part, lower-case. */
  readonly dsnFieldNames?: ReadonlySet<string>;
  /** User-Agent of an ARF feedback-report part. */
  readonly feedbackUserAgent?: string;
  /** The human-readable text of the report (without the returned message). */
  readonly text: string;
}

const GOOGLE_DOMAIN = /(?:^|\.)(?:googlemail|google|gmail)\.com$/;
const AMAZON_SES_DOMAIN = /(?:^|\.)amazonses\.com$/;
/** Outlook.com and its older consumer brands; Office 365 tenants send from their own domains. */
const MICROSOFT_CONSUMER_DOMAIN = /^(?:outlook|hotmail|live|msn)\.[a-z.]{2,20}$/;
/** JMRP, Microsoft's complaint feedback loop. */
const MICROSOFT_FBL_AGENT = /Hotmail FBL|JMRP/i;
/** Exchange Online hosts: `*.prod.outlook.com`, `*.protection.outlook.com`, `*.prod.exchangelabs.com`. */
const EXCHANGE_ONLINE_MTA = /\.(?:prod\.outlook\.com|protection\.outlook\.com|exchangelabs\.com)$/;
const EXCHANGE_TEXT =
  /Microsoft Exchange|Generating server:|Your message did not reach some or all of the intended recipients|The following recipient\(s\) (?:cannot|could not) be reached|Delivery has failed to these recipients or (?:groups|distribution lists)/i;
const YAHOO_DOMAIN = /(?:^|\.)(?:yahoo|yahoo-inc|yahoodns|ymail)\.[a-z.]{2,20}$/;
const YAHOO_FBL_AGENT = /Yahoo!-Mail-Feedback/i;
// Fixed-length dashes: `-{3,}` followed by text costs quadratic time on a long run of dashes.
const SENDMAIL_TEXT =
  /--- The following addresses had (?:permanent fatal|transient non-fatal) errors ---|--- Transcript of session follows ---/i;

/**
 * Which mail system wrote a report, from the most to the least reliable fingerprint: the From domain of
 * the big providers, vendor header, DSN and ARF fields, then the fixed sentences of each MTA's templates.
 * Undefined when nothing matches.
 */
export function detectGenerator(signals: GeneratorSignals): Generator | undefined {
  const fromDomain = signals.fromAddress?.slice(signals.fromAddress.lastIndexOf('@') + 1) ?? '';
  const reportingMta = signals.reportingMta ?? '';
  const dsnFields = signals.dsnFieldNames ?? new Set<string>();
  const userAgent = signals.feedbackUserAgent ?? '';
  const text = signals.text;
  if (GOOGLE_DOMAIN.test(fromDomain) || GOOGLE_DOMAIN.test(reportingMta)) return 'gmail';
  if (
    AMAZON_SES_DOMAIN.test(fromDomain) ||
    AMAZON_SES_DOMAIN.test(reportingMta) ||
    signals.headerNames.has('x-ses-outgoing') ||
    signals.headerNames.has('x-aws-outgoing')
  ) {
    return 'amazon-ses';
  }
  if (MICROSOFT_CONSUMER_DOMAIN.test(fromDomain) || MICROSOFT_FBL_AGENT.test(userAgent)) return 'microsoft';
  if (
    signals.headerNames.has('x-ms-exchange-message-is-ndr') ||
    EXCHANGE_ONLINE_MTA.test(reportingMta) ||
    EXCHANGE_TEXT.test(text)
  ) {
    return 'exchange';
  }
  if (
    YAHOO_DOMAIN.test(fromDomain) ||
    signals.headerNames.has('x-ymailisg') ||
    YAHOO_FBL_AGENT.test(userAgent)
  ) {
    return 'yahoo';
  }
  if (
    dsnFields.has('x-postfix-queue-id') ||
    dsnFields.has('x-postfix-sender') ||
    /This is the (?:mail system|Postfix program) at host/i.test(text)
  ) {
    return 'postfix';
  }
  if (
    [...dsnFields].some((name) => name.startsWith('x-exim-')) ||
    /This message was created automatically by mail delivery software/i.test(text)
  ) {
    return 'exim';
  }
  if (/This is the qmail-send program/i.test(text)) return 'qmail';
  if (SENDMAIL_TEXT.test(text)) return 'sendmail';
  return undefined;
}
