/**
 * The life of a message in the delivery ledger.
 *
 *   accepted -> queued -> sending -> delivered | bounced | expired | failed | ambiguous
 *                  ^         |
 *                  +---------+ deferred (a transient failure: back to queued, retried later)
 *
 * plus `cancelled` and `suppressed` from any non-terminal state. Terminal states are written once.
 * - accepted: recorded, job not yet confirmed in the queue (a producer is told "yes" only after `queued`);
 * - queued: waiting for an attempt (first or next);
 * - sending: claimed by one worker attempt, fenced by its token;
 * - delivered: the relay answered 250 to the final dot;
 * - bounced: a permanent refusal;
 * - expired: still not delivered at its max age;
 * - failed: could never be sent (content missing, enqueue never completed, unrecoverable error);
 * - ambiguous: the body was sent and no reply came (RFC 1047), under the at-most-once policy;
 * - cancelled: withdrawn before it was sent;
 * - suppressed: the recipient is on the suppression list.
 */
export const MESSAGE_STATES = [
  'accepted',
  'queued',
  'sending',
  'delivered',
  'bounced',
  'expired',
  'failed',
  'ambiguous',
  'cancelled',
  'suppressed',
] as const;
export type MessageState = (typeof MESSAGE_STATES)[number];

export const TERMINAL_STATES = [
  'delivered',
  'bounced',
  'expired',
  'failed',
  'ambiguous',
  'cancelled',
  'suppressed',
] as const satisfies readonly MessageState[];
export type TerminalState = (typeof TERMINAL_STATES)[number];

export function isTerminalState(state: string): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

/**
 * What to do when a message's body was sent and no reply came (the RFC 1047 window):
 * - `resend` (default, at-least-once): send again with the same Message-ID; counted;
 * - `stop` (at-most-once): end as `ambiguous`; counted.
 */
export type AmbiguityPolicy = 'resend' | 'stop';
