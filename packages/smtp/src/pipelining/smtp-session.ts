import type { RelayAcceptance, SmtpSendError } from '../relay-transport.js';
import type { EhloCapabilities } from './ehlo-capabilities.js';
import type { SenderHooks, SmtpEnvelope } from './sender.js';
import type { SmtpChannel } from './smtp-channel.js';
import { afterBodyWritten, asSmtpSendError, smtpFailure, type SmtpFailureCommand } from './smtp-failure.js';
import { END_OF_DATA, type StuffedMessage } from './stuff-message.js';

/** One message to send on a session. */
export interface SmtpTransaction {
  readonly envelope: SmtpEnvelope;
  readonly message: StuffedMessage;
  readonly hooks: SenderHooks | undefined;
}

interface Step {
  readonly line: string;
  readonly command: SmtpFailureCommand;
}

/** An address that would break the command line it goes into (core validation never lets one through). */
const UNSAFE_ADDRESS = /[\r\n<>\0]/;
const NON_ASCII = /[^\u0000-\u007f]/; // eslint-disable-line no-control-regex

const ignore = (): void => undefined;

/**
 * An SMTP session that is set up (greeting, EHLO, STARTTLS, AUTH done) and sends messages, one transaction
 * after the other. With PIPELINING (RFC 2920) the envelope goes out in one group, `RSET` (after a failed
 * transaction) `MAIL FROM`, `RCPT TO`, `DATA`, and the next message's group may follow the final dot of the
 * previous one in the same write (`onBodyQueued`), so a message costs one round trip. Without PIPELINING
 * the same steps run with a window of one command.
 */
export class SmtpSession {
  /** Transactions begun on this connection (counted against maxMessagesPerConnection). */
  transactionsStarted = 0;
  /** Transactions not settled yet: at most two, the one awaiting its final reply and the next. */
  active = 0;
  /** A failed transaction may have left MAIL FROM accepted: send RSET before the next. */
  #needsReset = false;
  /** The session can no longer be trusted to be in step with the relay (or the relay is closing it). */
  #broken = false;
  /**
   * Called right after a body and its final dot were queued for the socket (still corked): a transaction
   * started from here is written in the same segment, behind the dot.
   */
  onBodyQueued: ((session: SmtpSession) => void) | undefined;

  constructor(
    readonly channel: SmtpChannel,
    readonly capabilities: EhloCapabilities,
  ) {}

  /** Whether another transaction may be started on this session. */
  get usable(): boolean {
    return !this.#broken && !this.channel.closed;
  }

  /** Whether a transaction started now would be pipelined behind the one awaiting its final reply. */
  get canPipelineNext(): boolean {
    return this.capabilities.pipelining && this.usable && !this.#needsReset;
  }

  /**
   * Sends one message. Everything up to the first wait is written synchronously, which is what lets the
   * pool pipeline a transaction from `onBodyQueued`. Rejects with SmtpSendError.
   */
  run(transaction: SmtpTransaction): Promise<RelayAcceptance> {
    this.active++;
    this.transactionsStarted++;
    this.channel.inUse = true;
    const settled = (): void => {
      this.active--;
      if (this.active === 0) this.channel.inUse = false;
    };
    return this.#transact(transaction).then(
      (acceptance) => {
        settled();
        return acceptance;
      },
      (err: unknown) => {
        settled();
        throw asSmtpSendError(err);
      },
    );
  }

  /** Closes with QUIT; resolves when closed. */
  quit(): Promise<void> {
    return this.channel.quit();
  }

  async #transact({ envelope, message, hooks }: SmtpTransaction): Promise<RelayAcceptance> {
    const { maxSizeBytes } = this.capabilities;
    if (maxSizeBytes > 0 && message.sizeBytes > maxSizeBytes) {
      // Refused before a byte is sent, as nodemailer refuses a message over the advertised SIZE.
      throw smtpFailure(`Message size larger than allowed ${maxSizeBytes}`, 'EMESSAGE', 'MAIL FROM');
    }
    if (UNSAFE_ADDRESS.test(envelope.from)) throw smtpFailure('Invalid sender', 'EENVELOPE', 'API');
    if (envelope.to === '' || UNSAFE_ADDRESS.test(envelope.to)) {
      throw smtpFailure('Invalid recipient', 'EENVELOPE', 'API');
    }
    if (!this.usable) throw smtpFailure('Connection closed unexpectedly', 'ECONNECTION', 'CONN');

    const steps = this.#envelopeSteps(envelope, message);
    const window = this.capabilities.pipelining ? steps.length : 1;
    const replies: Promise<string>[] = [];
    const sendFrom = (first: number): number => {
      const group = steps.slice(first, first + window);
      for (let i = 0; i < group.length; i++) {
        const reply = this.channel.expectReply();
        reply.catch(ignore); // awaited below in order; a failure rejects them all at once
        replies.push(reply);
      }
      this.channel.write(group.map((step) => `${step.line}\r\n`).join(''));
      return first + group.length;
    };

    let sent = sendFrom(0);
    let refusal: SmtpSendError | undefined;
    for (let i = 0; i < steps.length; i++) {
      if (i === sent) {
        // Without PIPELINING nothing more goes out after a refusal.
        if (refusal) break;
        sent = sendFrom(i);
      }
      const step = steps[i] as Step;
      const reply = await (replies[i] as Promise<string>);
      const closing = /^421[ -]/.test(reply);
      if (closing) this.#broken = true;
      switch (step.command) {
        case 'RSET':
          if (!reply.startsWith('2')) {
            this.#break();
            throw smtpFailure(`Could not reset session state. response=${reply}`, 'EPROTOCOL', 'RSET', reply);
          }
          this.#needsReset = false;
          break;
        case 'MAIL FROM':
          if (!reply.startsWith('2'))
            refusal ??= smtpFailure('Mail command failed', 'EENVELOPE', 'MAIL FROM', reply);
          break;
        case 'RCPT TO':
          // A 421 here is reported as the relay closing the session, as nodemailer does with PIPELINING.
          if (!reply.startsWith('2') && !closing) {
            refusal ??= smtpFailure(
              "Can't send mail - all recipients were rejected",
              'EENVELOPE',
              'RCPT TO',
              reply,
            );
          }
          break;
        case 'DATA':
          if (refusal) {
            // A relay that answers 354 to a refused envelope waits for a body nobody will send.
            if (reply.startsWith('3')) this.#break();
            break;
          }
          if (!/^[23]/.test(reply)) refusal = smtpFailure('Data command failed', 'EENVELOPE', 'DATA', reply);
          break;
        default:
          break;
      }
      if (closing) {
        this.#break();
        throw refusal ?? smtpFailure('Server closed the connection', 'ECONNECTION', 'CONN', reply);
      }
    }
    if (refusal) {
      this.#needsReset = true;
      throw refusal;
    }
    return this.#sendBody(message, hooks);
  }

  #envelopeSteps(envelope: SmtpEnvelope, message: StuffedMessage): Step[] {
    const params: string[] = [];
    if (this.capabilities.smtpUtf8 && (NON_ASCII.test(envelope.from) || NON_ASCII.test(envelope.to))) {
      params.push('SMTPUTF8');
    }
    if (this.capabilities.size) params.push(`SIZE=${message.sizeBytes}`);
    const steps: Step[] = [];
    if (this.#needsReset) steps.push({ line: 'RSET', command: 'RSET' });
    steps.push(
      { line: `MAIL FROM:<${envelope.from}>${params.map((p) => ` ${p}`).join('')}`, command: 'MAIL FROM' },
      { line: `RCPT TO:<${envelope.to}>`, command: 'RCPT TO' },
      { line: 'DATA', command: 'DATA' },
    );
    return steps;
  }

  async #sendBody(message: StuffedMessage, hooks: SenderHooks | undefined): Promise<RelayAcceptance> {
    let written = false;
    const markWritten = (): void => {
      if (written) return;
      written = true;
      hooks?.onBodyWritten?.();
    };
    const beforeFinalDot = hooks?.beforeFinalDot;
    if (beforeFinalDot !== undefined) {
      // The hook runs once the kernel has the whole body: only the final dot is left to send.
      await this.#write(message.body);
      try {
        await beforeFinalDot();
      } catch (err) {
        // Abandoned without its final dot: the relay discards the message when the connection closes.
        this.#break();
        throw smtpFailure(err instanceof Error ? err.message : String(err), 'ESTREAM', 'API', undefined, err);
      }
      const failure = this.channel.failure;
      if (failure) throw failure;
    }
    const reply = this.channel.expectReply();
    reply.catch(ignore);
    this.channel.cork();
    if (beforeFinalDot === undefined) this.channel.write(message.body);
    this.channel.write(END_OF_DATA, (err) => {
      if (!err) markWritten();
    });
    this.onBodyQueued?.(this);
    this.channel.uncork();

    let answer: string;
    try {
      answer = await reply;
    } catch (err) {
      const failure = asSmtpSendError(err);
      throw written ? afterBodyWritten(failure) : failure;
    }
    // An answer to the final dot means the relay read the whole body.
    markWritten();
    if (/^421[ -]/.test(answer)) this.#break();
    if (!answer.startsWith('2')) throw smtpFailure('Message failed', 'EMESSAGE', 'DATA', answer);
    const responseCode = Number(answer.slice(0, 3));
    return { response: answer, responseCode: Number.isNaN(responseCode) ? 250 : responseCode };
  }

  /** Writes and resolves once the kernel has the bytes; rejects with the connection's failure. */
  #write(data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.channel.write(data, (err) => {
        if (!err) resolve();
        else reject(this.channel.failure ?? smtpFailure(err.message, 'ESOCKET', 'CONN', undefined, err));
      });
    });
  }

  /** Out of step with the relay or told it is closing: no more transactions, close the connection. */
  #break(): void {
    this.#broken = true;
    this.channel.abort();
  }
}
