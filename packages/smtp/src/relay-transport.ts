import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { MailroomError, type SmtpObservation } from '@mailroom/core';
import type { RelayConfig } from './relay-config.js';

/** The relay's answer to a message it accepted. */
export interface RelayAcceptance {
  /** Full reply text to the final dot, e.g. `250 2.0.0 Ok: queued as 4Xyz`. */
  readonly response: string;
  readonly responseCode: number;
}

/** Hooks into one SMTP transaction. */
export interface SendHooks {
  /**
   * Awaited after the body has been handed to the connection and before the final dot is written: the
   * moment after which the relay may have the message (RFC 1047). If it rejects, the transaction is
   * abandoned without its final dot and the connection closed, so the relay discards the message.
   */
  readonly beforeFinalDot?: () => Promise<void>;
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

/** Pieces the body is handed over in, so that the last one is only taken once the socket took the rest. */
const BODY_PIECE_BYTES = 16 * 1024;

/**
 * A stream of `raw` whose end (after which the SMTP client writes the final dot) waits for `beforeEnd`.
 * It buffers nothing ahead of its reader (highWaterMark 0) and hands the body over in pieces, so `beforeEnd`
 * runs when the reader, under the socket's backpressure, has taken the whole body. If `beforeEnd` fails,
 * the stream fails and the transaction is abandoned without its final dot.
 */
export function bodyEndingAfter(raw: Buffer, beforeEnd: () => Promise<void>): Readable {
  let at = 0;
  return new Readable({
    highWaterMark: 0,
    read() {
      if (at < raw.length) {
        const piece = raw.subarray(at, at + BODY_PIECE_BYTES);
        at += piece.length;
        this.push(piece);
        return;
      }
      beforeEnd().then(
        () => this.push(null),
        (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    },
  });
}

/** What a send that can no longer run reports: no reply, nothing sent (transient, retried elsewhere). */
function transportClosed(): SmtpSendError {
  return new SmtpSendError({ code: 'ECONNECTION', command: 'API', message: 'the relay transport is closed' });
}

interface PooledConnection {
  readonly connection: SMTPConnection;
  /** Messages sent (or attempted) on it. */
  sent: number;
  /** False once the server or the network ended it. */
  alive: boolean;
}

interface Waiter {
  readonly resolve: (c: PooledConnection) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * A pool of SMTP connections to one relay, each a nodemailer SMTPConnection (nodemailer's own SMTP client:
 * STARTTLS, implicit TLS, AUTH, SIZE, dot-stuffing). The pool is Mailroom's own, for two reasons nodemailer's
 * pooled transport cannot serve: it reads the whole message into its buffers before the transaction starts,
 * so the moment of the final dot (the RFC 1047 window) is invisible; and it re-words a 421 that closes the
 * connection as "Reached maximum number of retries", hiding the reply that rate limiting needs.
 *
 * What it never does: fall back to plaintext (STARTTLS is required unless TLS is explicitly off), send
 * without AUTH when credentials are configured, re-send a message on its own (retrying is the queue's
 * decision), read files or URLs.
 */
export class RelayTransport {
  private readonly idle: PooledConnection[] = [];
  private readonly waiting: Waiter[] = [];
  /** Connections open or being opened. */
  private total = 0;
  private inFlight = 0;
  private closed = false;

  constructor(readonly config: RelayConfig) {}

  private connectionOptions(): SMTPConnection.Options {
    const { config } = this;
    return {
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
      ...(config.clientName === undefined ? {} : { name: config.clientName }),
      connectionTimeout: config.connectionTimeoutMs,
      greetingTimeout: config.greetingTimeoutMs,
      socketTimeout: config.socketTimeoutMs,
      dnsTimeout: Math.min(config.connectionTimeoutMs, 10_000),
      logger: false,
      debug: false,
    };
  }

  /** Connects, secures and authenticates one connection. Rejects with nodemailer's error. */
  private async open(): Promise<PooledConnection> {
    const connection = new SMTPConnection(this.connectionOptions());
    const pooled: PooledConnection = { connection, sent: 0, alive: true };
    // Errors of an idle connection (the server hung up) only retire it; a send reports its own errors.
    connection.on('error', () => {
      pooled.alive = false;
    });
    connection.on('end', () => {
      pooled.alive = false;
    });
    // During set-up nodemailer reports socket, TLS and timeout failures as 'error' events, not callbacks.
    let failSetUp: (err: unknown) => void = () => undefined;
    const setUpFailed = new Promise<never>((_, reject) => {
      failSetUp = reject;
    });
    setUpFailed.catch(() => undefined);
    const onError = (err: unknown): void => failSetUp(err);
    const onEnd = (): void =>
      failSetUp(Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' }));
    connection.once('error', onError);
    connection.once('end', onEnd);
    try {
      await Promise.race([
        setUpFailed,
        new Promise<void>((resolve, reject) => {
          connection.connect((err) => (err ? reject(err) : resolve()));
        }),
      ]);
      const { auth } = this.config;
      if (auth !== undefined) {
        // Never unauthenticated when credentials are configured, even if the relay does not offer AUTH.
        await Promise.race([
          setUpFailed,
          new Promise<void>((resolve, reject) => {
            connection.login({ user: auth.user, pass: auth.pass }, (err) => (err ? reject(err) : resolve()));
          }),
        ]);
      }
      return pooled;
    } catch (err) {
      pooled.alive = false;
      connection.close();
      throw err;
    } finally {
      connection.removeListener('error', onError);
      connection.removeListener('end', onEnd);
    }
  }

  private async acquire(): Promise<PooledConnection> {
    if (this.closed) throw transportClosed();
    for (let p = this.idle.pop(); p !== undefined; p = this.idle.pop()) {
      if (p.alive) return p;
      this.total -= 1;
    }
    if (this.total < this.config.maxConnections) {
      this.total += 1;
      try {
        return await this.open();
      } catch (err) {
        this.total -= 1;
        this.serveWaiter();
        throw err;
      }
    }
    return new Promise<PooledConnection>((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /**
   * Gives a connection back: to a waiting send, to the idle list, or retired when spent (QUIT) or broken
   * (closed at once: a transaction cut short must never be completed by what is written next).
   */
  private release(p: PooledConnection, reusable: boolean): void {
    if (reusable && p.alive && !this.closed && p.sent < this.config.maxMessagesPerConnection) {
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(p);
      else this.idle.push(p);
      return;
    }
    this.retire(p, reusable);
    this.serveWaiter();
  }

  private retire(p: PooledConnection, graceful: boolean): void {
    this.total -= 1;
    const wasAlive = p.alive;
    p.alive = false;
    if (graceful && wasAlive) p.connection.quit();
    else p.connection.close();
  }

  /** A slot freed up: open a connection for the longest-waiting send. */
  private serveWaiter(): void {
    if (this.closed || this.total >= this.config.maxConnections) return;
    const waiter = this.waiting.shift();
    if (!waiter) return;
    this.total += 1;
    this.open().then(waiter.resolve, (err: unknown) => {
      this.total -= 1;
      waiter.reject(err);
      this.serveWaiter();
    });
  }

  /**
   * Sends already-composed MIME to exactly the given envelope. Rejects with SmtpSendError. `hooks` see the
   * moment between the body and the final dot.
   */
  async send(
    envelope: { from: string; to: string },
    raw: Buffer,
    hooks: SendHooks = {},
  ): Promise<RelayAcceptance> {
    this.inFlight += 1;
    let pooled: PooledConnection | undefined;
    try {
      pooled = await this.acquire();
      pooled.sent += 1;
      const message = hooks.beforeFinalDot ? bodyEndingAfter(raw, hooks.beforeFinalDot) : raw;
      const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        pooled!.connection.send(
          { from: envelope.from, to: [envelope.to], size: raw.length },
          message,
          (err, result) => (err ? reject(err) : resolve(result)),
        );
      });
      if (info.rejected.length > 0 || info.accepted.length !== 1) {
        throw new SmtpSendError({ message: 'relay did not accept the recipient', response: info.response });
      }
      this.release(pooled, true);
      const responseCode = Number.parseInt(info.response.slice(0, 3), 10);
      return { response: info.response, responseCode: Number.isNaN(responseCode) ? 250 : responseCode };
    } catch (err) {
      if (pooled) await this.afterFailure(pooled, err);
      if (err instanceof SmtpSendError) throw err;
      // No connection was obtained: opening one failed (the pool being closed is not the relay's fault).
      const connecting = pooled === undefined && !this.closed;
      throw new SmtpSendError({ ...observe(err), ...(connecting ? { connecting } : {}) }, { cause: err });
    } finally {
      this.inFlight -= 1;
    }
  }

  /** After a refused envelope or message the session is reset (RSET) and kept; anything else closes it. */
  private async afterFailure(p: PooledConnection, err: unknown): Promise<void> {
    const e = err as NodemailerError;
    const refused = (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421;
    if (!refused || !p.alive) {
      this.release(p, false);
      return;
    }
    const reset = await new Promise<boolean>((resolve) => {
      p.connection.reset((resetErr) => resolve(!resetErr));
    });
    this.release(p, reset);
  }

  /** Messages being sent on this relay right now. */
  get sending(): number {
    return this.inFlight;
  }

  /** Opens a connection, runs EHLO/STARTTLS/AUTH and closes it. Rejects with SmtpSendError. */
  async verify(): Promise<void> {
    let p: PooledConnection;
    try {
      p = await this.open();
    } catch (err) {
      throw new SmtpSendError(observe(err), { cause: err });
    }
    p.alive = false;
    p.connection.quit();
  }

  /** Closes idle connections now and busy ones as their sends finish; pending sends are rejected. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(transportClosed());
    for (const p of this.idle.splice(0)) this.retire(p, true);
  }
}
