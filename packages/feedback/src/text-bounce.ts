import { REPORT_SENDER } from './auto-reply.js';
import type { Generator } from './detect-generator.js';
import { splitLines } from './header-fields.js';
import { findAddresses } from './recipient-address.js';
import { diagnosticText, enhancedStatusIn, replyCodeIn, replyStart } from './smtp-reply-text.js';
import { TEXT_LAYOUTS, type LayoutReading } from './text-layouts.js';

/** What a bounce without a delivery-status part says about its first recipient. */
export interface TextBounce {
  /** The software whose layout the text follows, when it follows one. */
  readonly generator?: Generator;
  /** A warning that delivery is still being tried, rather than a failure. */
  readonly delayed: boolean;
  readonly recipient?: string;
  readonly status?: string;
  readonly diagnostic?: string;
  /** The text says the failure is permanent ("This is a permanent error", "failed permanently"). */
  readonly permanent: boolean;
}

/** The report as read from the message: its explanation text (without the returned copy) and headers. */
export interface TextBounceInput {
  /** Explanation text, cut before the returned copy. */
  readonly text: string;
  readonly subject: string;
  /** From address, domain lower-cased. */
  readonly fromAddress?: string;
  /** Addresses of X-Failed-Recipients (Exim, Gmail), domains lower-cased. */
  readonly failedRecipients: readonly string[];
  /** Addresses that are never the failed recipient: the report's own From, To, Delivered-To and so on. */
  readonly ownAddresses: ReadonlySet<string>;
}

/** At most this much explanation text is read: real ones are a few kilobytes. */
const MAX_TEXT_CHARS = 64 * 1024;

const DELAY_TEXT =
  /THIS IS A WARNING (?:MESSAGE )?ONLY|has not yet been delivered|Delivery to the following recipients? has been delayed|Delivery is delayed to these recipients|transient non-fatal errors|Warning: could not send message for (?:the )?past|It will be retried until|Technical details of temporary failure/i;
const PERMANENT_TEXT =
  /permanent (?:error|failure)|failed permanently|permanent fatal errors|Technical details of permanent failure/i;
const FAILURE_TEXT =
  /could not be delivered|couldn'?t be delivered|undeliverable|delivery (?:has )?failed|failed to deliver|unable to deliver|permanent (?:error|failure)|user unknown|unknown user|no such (?:user|mailbox|recipient)|mailbox (?:unavailable|not found|full)|does not exist|returned to sender/i;
const BOUNCE_SUBJECT =
  /undeliver|delivery (?:status notification|failure|failed|has failed|problem|delayed|notification)|returned mail|failure notice|mail delivery (?:failed|failure|system|subsystem)|non[- ]?delivery|could not be delivered|delayed mail|warning: could not send/i;
const ROLE_ADDRESS = /^(?:mailer-daemon|mail-daemon|maildaemon|mdaemon|postmaster|abuse|noreply|no-reply)@/i;

/** Reads a bounce in the layout whose fixed sentence its text contains; undefined when none does. */
export function readTextLayout(input: TextBounceInput): TextBounce | undefined {
  const text = clip(input.text);
  const layout = TEXT_LAYOUTS.find((candidate) => candidate.marker.test(text));
  if (layout === undefined) return undefined;
  return textBounce(layout.read(splitLines(text), text), text, input, layout.generator);
}

/**
 * Reads a message that no layout recognised but that looks like a bounce (a mailer-daemon or postmaster
 * sender, a bounce subject, X-Failed-Recipients) and says something failed or was delayed. Undefined for
 * anything else.
 */
export function readTextHeuristically(input: TextBounceInput): TextBounce | undefined {
  const text = clip(input.text);
  const looksLikeBounce =
    REPORT_SENDER.test(input.fromAddress ?? '') ||
    BOUNCE_SUBJECT.test(input.subject) ||
    input.failedRecipients.length > 0;
  if (!looksLikeBounce) return undefined;
  const replyLine = splitLines(text).find((line) => (replyCodeIn(line) ?? 0) >= 400);
  const diagnostic =
    replyLine === undefined ? undefined : diagnosticText(replyLine.slice(replyStart(replyLine)));
  if (diagnostic === undefined && !FAILURE_TEXT.test(text) && !DELAY_TEXT.test(text)) return undefined;
  return textBounce(diagnostic === undefined ? {} : { diagnostic }, text, input, undefined);
}

function clip(text: string): string {
  return text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text;
}

/** Completes what a reader found from the whole text. */
function textBounce(
  reading: LayoutReading,
  text: string,
  input: TextBounceInput,
  generator: Generator | undefined,
): TextBounce {
  const recipient = reading.recipient ?? input.failedRecipients[0] ?? guessRecipient(text, input);
  const status = reading.status ?? enhancedStatusIn(reading.diagnostic) ?? enhancedStatusIn(text);
  return {
    ...(generator === undefined ? {} : { generator }),
    delayed: reading.delayed ?? DELAY_TEXT.test(text),
    ...(recipient === undefined ? {} : { recipient }),
    ...(status === undefined ? {} : { status }),
    ...(reading.diagnostic === undefined ? {} : { diagnostic: reading.diagnostic }),
    permanent: PERMANENT_TEXT.test(text),
  };
}

/** The first address in the text that is not the report's own or a role address like postmaster@. */
function guessRecipient(text: string, input: TextBounceInput): string | undefined {
  return findAddresses(text).find(
    (address) => !input.ownAddresses.has(address.toLowerCase()) && !ROLE_ADDRESS.test(address),
  );
}
