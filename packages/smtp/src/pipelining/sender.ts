import type { RelayAcceptance } from '../relay-transport.js';

/** The SMTP envelope of one message: one sender, one recipient (Mailroom sends one recipient a message). */
export interface SmtpEnvelope {
  readonly from: string;
  readonly to: string;
}

/** Callbacks into one send, around the final dot (the RFC 1047 window). */
export interface SenderHooks {
  /**
   * Awaited once the whole body has been handed to the connection and before the final dot is written:
   * the moment after which the relay may have the message. If it rejects, the transaction is abandoned
   * without its final dot and the connection closed, so the relay discards the message; the send rejects
   * with code `ESTREAM`. (The same contract as RelayTransport's `beforeFinalDot`.)
   */
  readonly beforeFinalDot?: () => Promise<void>;
  /**
   * Called once the final dot has been handed to the socket (or the relay answered it, whichever is
   * first). From then on a lost connection leaves it unknown whether the relay queued the message.
   * Must not throw.
   */
  readonly onBodyWritten?: () => void;
}

/**
 * What the worker needs from a relay connection pool. Implemented over nodemailer (`NodemailerSender`) and by
 * Mailroom's own pipelining sender (`PipeliningSender`); both reject with `SmtpSendError` carrying an
 * observation that `classifySmtpOutcome` reads the same way for the same relay behaviour.
 */
export interface Sender {
  /** Sends already-composed MIME to exactly this envelope. Rejects with `SmtpSendError`. */
  send(envelope: SmtpEnvelope, raw: Buffer, hooks?: SenderHooks): Promise<RelayAcceptance>;
  /** Messages handed to `send` and not settled yet (queued or on the wire). */
  readonly sending: number;
  /** Opens a connection, runs EHLO/STARTTLS/AUTH and closes it. Rejects with `SmtpSendError`. */
  verify(): Promise<void>;
  /**
   * Opens pooled connections ahead of need, up to `count` (never past the pool's size), so that a send
   * known to be coming does not wait for a connection to be set up. Never fails: a connection that cannot
   * be opened is left to the next send. Optional: a pool that opens connections on demand only has none.
   */
  warm?(count: number): void;
  /** Stops taking messages: queued ones are rejected, the ones on the wire finish, connections close. */
  close(): void;
}

/** The senders a relay can be configured with. */
export type SenderKind = 'nodemailer' | 'pipelining';

export const SENDER_KINDS: readonly SenderKind[] = ['nodemailer', 'pipelining'];
