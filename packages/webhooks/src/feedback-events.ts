import type { FeedbackInput, FeedbackRecording } from '@mailroom/queue';
import type { WebhookEventInput } from './webhook-event.js';

/** Longest recipient an event carries (the schema's bound). */
const MAX_RECIPIENT_CHARS = 320;

function smtpOf(input: FeedbackInput): WebhookEventInput['smtp'] {
  if (input.replyCode === undefined && input.status === undefined && input.diagnostic === undefined) {
    return undefined;
  }
  return {
    code:
      input.replyCode !== undefined && input.replyCode >= 100 && input.replyCode <= 999
        ? input.replyCode
        : undefined,
    enhanced: input.status?.slice(0, 32),
    response: input.diagnostic,
  };
}

/**
 * The webhook event of a report that came back after sending (`mailroom inbound`), or undefined when it
 * gets none:
 * - a hard or soft bounce recorded on its message: `bounced` (reason `hard_bounce` or `soft_bounce`, the
 *   report's status and diagnostic in `smtp`), unless the message already ended `bounced` (the worker
 *   reported that bounce itself);
 * - a complaint recorded on its message: `complained` (reason `complaint`); a complaint sent to a complaints
 *   address whose message is not known (any more) still gives one, without `messageId`;
 * - delays, unknown reports, duplicates (a report sent twice) and reports whose recipient cannot be trusted
 *   (FeedbackRecording.attributedTo): none.
 */
export function feedbackWebhookEvent(
  input: FeedbackInput,
  recording: FeedbackRecording,
): WebhookEventInput | undefined {
  const type =
    input.kind === 'complaint'
      ? 'complained'
      : input.kind === 'hard_bounce' || input.kind === 'soft_bounce'
        ? 'bounced'
        : undefined;
  if (type === undefined) return undefined;
  if (recording.result === 'recorded') {
    const recipient = recording.attributedTo?.address;
    if (recipient === undefined || recipient.length > MAX_RECIPIENT_CHARS) return undefined;
    if (type === 'bounced' && recording.state === 'bounced') return undefined;
    return {
      type,
      messageId: input.mailroomId,
      messageIdHeader: recording.messageIdHeader,
      campaign: recording.campaign,
      recipient,
      smtp: smtpOf(input),
      reason: input.kind,
    };
  }
  const unknownMessage = recording.result === 'unmatched' || recording.result === 'unlinked';
  const recipient = input.recipient?.trim();
  if (
    type === 'complained' &&
    unknownMessage &&
    input.toComplaintsAddress === true &&
    recipient !== undefined &&
    recipient !== '' &&
    recipient.length <= MAX_RECIPIENT_CHARS
  ) {
    return { type, recipient, smtp: smtpOf(input), reason: input.kind };
  }
  return undefined;
}

/** What a verified unsubscribe token says (core's VerifiedUnsubscribeToken fits). */
export interface UnsubscribeFacts {
  readonly address: string;
  readonly list: string;
}

/**
 * The `unsubscribed` event of an unsubscribe by its signed token: the token's recipient and list, reason
 * `one_click` for the API's /u/:token (RFC 8058), `mailto` for a mail to the List-Unsubscribe address that
 * `mailroom inbound` took (RFC 2369). The token names no message, so the event has no `messageId`.
 */
export function unsubscribeWebhookEvent(
  token: UnsubscribeFacts,
  via: 'one_click' | 'mailto' = 'one_click',
): WebhookEventInput {
  return { type: 'unsubscribed', recipient: token.address, list: token.list, reason: via };
}
