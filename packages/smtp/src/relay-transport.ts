import type { Readable } from 'node:stream';
import nodemailer, { type Mail } from 'nodemailer';
import type { SMTPPoolOptions, SMTPPoolSentMessageInfo } from 'nodemailer/lib/smtp-pool';
import { MailroomError, type SmtpObservation } from '@mailroom/core';
import type { RelayConfig } from './relay-config.js';

/** The relay's answer to a message it accepted. */
export interface RelayAcceptance {
  /** Full reply text to the final dot, e.g. `250 2.0.0 Ok: queued as 4Xyz`. */
  readonly response: string;
  readonly responseCode: number;
}

/** A failed SMTP transaction, with the facts classification needs (as nodemailer reports them). */
export class SmtpSendError extends MailroomError {
  override readonly name = 'SmtpSendError';
  constructor(
    readonly observation: SmtpObservation,
    options?: { cause?: unknown },
  ) {
    super('ERR_SMTP', observation.response ?? observation.message ?? 'SMTP transaction failed', options);
  }
}

interface NodemailerError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  cause?: unknown;
}

/** Extracts the observation from whatever nodemailer rejected with. */
export function observe(err: unknown): SmtpObservation {
  const e = (err ?? {}) as NodemailerError;
  const cause = e.cause as NodemailerError | undefined;
  const code = typeof e.code === 'string' ? e.code : typeof cause?.code === 'string' ? cause.code : undefined;
  return {
    ...(typeof e.responseCode === 'number' ? { responseCode: e.responseCode } : {}),
    ...(typeof e.response === 'string' ? { response: e.response } : {}),
    ...(code === undefined ? {} : { code }),
    ...(typeof e.command === 'string' ? { command: e.command } : {}),
    ...(typeof e.message === 'string' ? { message: e.message } : {}),
  };
}

/**
 * A pooled SMTP connection set to one relay, over nodemailer. What it never does: fall back to plaintext
 * (STARTTLS is required unless TLS is explicitly off), re-send a message on its own (`maxRequeues: 0`: a
 * message whose connection drops is reported, and retrying is the queue's decision), read files or URLs.
 */
export class RelayTransport {
  private readonly transport: Mail<SMTPPoolSentMessageInfo, SMTPPoolOptions>;
  private inFlight = 0;

  constructor(readonly config: RelayConfig) {
    const options: SMTPPoolOptions & { pool: true } = {
      pool: true,
      host: config.host,
      port: config.port,
      secure: config.tlsMode === 'tls',
      requireTLS: config.tlsMode === 'starttls',
      ignoreTLS: config.tlsMode === 'none',
      tls: {
        rejectUnauthorized: config.verifyCertificates,
        minVersion: 'TLSv1.2',
        ...(config.ca === undefined ? {} : { ca: [config.ca] }),
        ...(config.tlsServername === undefined ? {} : { servername: config.tlsServername }),
      },
      // forceAuth: never send unauthenticated when credentials are configured and the relay does not offer AUTH.
      ...(config.auth === undefined
        ? {}
        : { auth: { user: config.auth.user, pass: config.auth.pass }, forceAuth: true }),
      ...(config.clientName === undefined ? {} : { name: config.clientName }),
      maxConnections: config.maxConnections,
      maxMessages: config.maxMessagesPerConnection,
      maxRequeues: 0,
      connectionTimeout: config.connectionTimeoutMs,
      greetingTimeout: config.greetingTimeoutMs,
      socketTimeout: config.socketTimeoutMs,
      dnsTimeout: Math.min(config.connectionTimeoutMs, 10_000),
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
      debug: false,
    };
    this.transport = nodemailer.createTransport(options);
  }

  /**
   * Sends already-composed MIME to exactly the given envelope. Pass a stream to learn (from its 'end') when
   * the whole body has been handed over. Rejects with SmtpSendError.
   */
  async send(envelope: { from: string; to: string }, raw: Buffer | Readable): Promise<RelayAcceptance> {
    this.inFlight += 1;
    try {
      const info = await this.transport.sendMail({
        envelope: { from: envelope.from, to: [envelope.to] },
        raw,
      });
      if (info.rejected.length > 0 || info.accepted.length !== 1) {
        throw new SmtpSendError({ message: 'relay did not accept the recipient', response: info.response });
      }
      const responseCode = Number.parseInt(info.response.slice(0, 3), 10);
      return { response: info.response, responseCode: Number.isNaN(responseCode) ? 250 : responseCode };
    } catch (err) {
      if (err instanceof SmtpSendError) throw err;
      throw new SmtpSendError(observe(err), { cause: err });
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Messages being sent on this relay right now. */
  get sending(): number {
    return this.inFlight;
  }

  /** Opens a connection, runs EHLO/STARTTLS/AUTH and closes it. Rejects with SmtpSendError. */
  async verify(): Promise<void> {
    try {
      await this.transport.verify();
    } catch (err) {
      throw new SmtpSendError(observe(err), { cause: err });
    }
  }

  close(): void {
    this.transport.close();
  }
}
