import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { SmtpSendError } from '../relay-transport.js';
import { isResolverFailure, isTlsFailure, smtpFailure } from './smtp-failure.js';
import { SmtpReplyReader, SmtpReplyTooLargeError } from './smtp-reply-reader.js';

/** How to reach a relay and how long each step may take. */
export interface SmtpChannelOptions {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (implicit TLS); without it the connection starts in plaintext. */
  readonly implicitTls?: ConnectionOptions;
  /** Time to establish the connection (TCP, and the TLS handshake for implicit TLS). */
  readonly connectionTimeoutMs: number;
  /** Time to wait for the 220 greeting, and for a STARTTLS handshake. */
  readonly greetingTimeoutMs: number;
  /** Inactivity limit while a reply is awaited. */
  readonly socketTimeoutMs: number;
}

interface ReplyWaiter {
  readonly resolve: (reply: string) => void;
  readonly reject: (err: SmtpSendError) => void;
}

/** Idle time before TCP keepalive probes start: keeps NAT mappings of idle pooled connections alive. */
const KEEPALIVE_DELAY_MS = 30_000;
/** After QUIT, how long the relay gets to close its side before the socket is destroyed. */
const QUIT_GRACE_MS = 2_000;
const UNEXPECTED_CLOSE = 'Connection closed unexpectedly';

const ignore = (): void => undefined;

/**
 * One connection to a relay, as an ordered stream of replies: every command that expects a reply registers a
 * waiter (`expectReply`) before it is written, and replies settle the waiters in order, which is all that
 * PIPELINING needs (RFC 2920 section 3.1: replies come in the order of the commands).
 *
 * Whatever ends the connection (a socket error, a timeout, the relay closing, a reply that answers nothing)
 * rejects every waiter with the same SmtpSendError, shaped like nodemailer's for the same event, and the
 * channel stays failed: later waiters are rejected at once.
 */
export class SmtpChannel {
  #socket: Socket | TLSSocket;
  /** The TCP socket under a STARTTLS session, kept to absorb its errors. */
  #plainSocket: Socket | undefined;
  readonly #reader = new SmtpReplyReader();
  readonly #waiters: ReplyWaiter[] = [];
  #phaseTimer: NodeJS.Timeout | undefined;
  #quitTimer: NodeJS.Timeout | undefined;
  #failure: SmtpSendError | undefined;
  #upgrade: { resolve: () => void; reject: (err: SmtpSendError) => void } | undefined;
  #closed = false;
  #quitting = false;
  readonly #closedPromise: Promise<void>;
  #markClosed: () => void = ignore;
  /** Resolves with the 220 greeting (or any first reply); rejects if the connection fails first. */
  readonly greeting: Promise<string>;

  /**
   * Set while the owner has work on this connection: the relay closing it then is a failure even between
   * two replies. While it is unset and no reply is awaited, a close or an inactivity timeout is quiet.
   */
  inUse = true;
  /** Called once (in a microtask) when the connection can no longer be used: failed, aborted or closed. */
  onClose: (() => void) | undefined;

  constructor(private readonly options: SmtpChannelOptions) {
    this.#closedPromise = new Promise<void>((resolve) => {
      this.#markClosed = resolve;
    });
    const socket = options.implicitTls
      ? connectTls({ ...options.implicitTls, host: options.host, port: options.port })
      : connectTcp({ host: options.host, port: options.port });
    this.#socket = socket;
    this.#listen(socket);
    this.#startPhase(options.connectionTimeoutMs, 'Connection timeout');
    socket.once(options.implicitTls ? 'secureConnect' : 'connect', () => this.#onConnected());
    this.greeting = this.expectReply();
    this.greeting.then(() => this.#clearPhase(), ignore);
  }

  /** Whether the connection has failed, closed or is being closed (QUIT sent): nothing more may be sent. */
  get closed(): boolean {
    return this.#closed || this.#quitting || this.#failure !== undefined;
  }

  /** Why the connection ended, once it has failed or closed. */
  get failure(): SmtpSendError | undefined {
    return this.#failure;
  }

  /** Whether the session is under TLS (implicit, or after STARTTLS). */
  get secure(): boolean {
    return 'encrypted' in this.#socket && this.#socket.encrypted;
  }

  /** Resolves when the socket has closed. */
  get whenClosed(): Promise<void> {
    return this.#closedPromise;
  }

  /** Waits for the next reply in order. Register it before writing the command it answers. */
  expectReply(): Promise<string> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(smtpFailure(UNEXPECTED_CLOSE, 'ECONNECTION', 'CONN'));
    return new Promise<string>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  /** Writes to the relay; `callback` runs once the bytes are handed to the kernel (or with the error). */
  write(data: string | Buffer, callback?: (err?: Error | null) => void): void {
    if (this.closed) {
      callback?.(this.#failure ?? new Error(UNEXPECTED_CLOSE));
      return;
    }
    this.#socket.write(data, callback);
  }

  /** Groups the writes until `uncork` into as few segments as possible. */
  cork(): void {
    this.#socket.cork();
  }

  uncork(): void {
    this.#socket.uncork();
  }

  /**
   * Runs the TLS handshake over the connection after the relay accepted STARTTLS. Whatever the relay sent in
   * plaintext after its reply is discarded (RFC 3207 section 6: a man in the middle could have injected it).
   */
  upgradeToTls(tls: ConnectionOptions): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const plain = this.#socket;
    this.#unlisten(plain);
    plain.setTimeout(0);
    plain.on('error', ignore);
    this.#plainSocket = plain;
    this.#reader.reset();
    const secure = connectTls({ ...tls, socket: plain });
    this.#socket = secure;
    this.#listen(secure);
    this.#startPhase(this.options.greetingTimeoutMs, 'TLS handshake timed out');
    return new Promise<void>((resolve, reject) => {
      this.#upgrade = { resolve, reject };
      secure.once('secureConnect', () => {
        this.#clearPhase();
        this.#upgrade = undefined;
        secure.setTimeout(this.options.socketTimeoutMs);
        resolve();
      });
    });
  }

  /**
   * Sends QUIT and closes politely; the socket is destroyed if the relay has not closed within a grace
   * period. Resolves when the socket has closed. Never rejects.
   */
  quit(): Promise<void> {
    if (!this.closed && this.#upgrade === undefined) {
      this.inUse = false;
      this.expectReply().catch(ignore);
      this.#quitting = true;
      this.#socket.end('QUIT\r\n');
      this.#quitTimer = setTimeout(() => this.abort(), QUIT_GRACE_MS);
      this.#quitTimer.unref();
    } else {
      this.abort();
    }
    return this.#closedPromise;
  }

  /**
   * Ends the connection at once. Waiting replies are rejected with `reason` (default: ECONNECTION, the
   * connection was closed).
   */
  abort(reason?: SmtpSendError): void {
    this.#fail(reason ?? smtpFailure('Connection closed', 'ECONNECTION', 'CONN'));
  }

  #onConnected(): void {
    this.#clearPhase();
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    socket.setTimeout(this.options.socketTimeoutMs);
    this.#startPhase(this.options.greetingTimeoutMs, 'Greeting never received');
  }

  #listen(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onSocketClose);
    socket.on('timeout', this.#onTimeout);
  }

  #unlisten(socket: Socket): void {
    socket.off('data', this.#onData);
    socket.off('error', this.#onError);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onSocketClose);
    socket.off('timeout', this.#onTimeout);
  }

  readonly #onData = (chunk: Buffer): void => {
    let replies: string[];
    try {
      replies = this.#reader.push(chunk);
    } catch (err) {
      if (!(err instanceof SmtpReplyTooLargeError)) throw err;
      this.#fail(smtpFailure(err.message, 'EPROTOCOL', 'CONN'));
      return;
    }
    for (const reply of replies) {
      const waiter = this.#waiters.shift();
      if (waiter) {
        waiter.resolve(reply);
      } else if (/^421[ -]/.test(reply)) {
        // RFC 5321 section 4.2: a relay may announce at any time that it is closing.
        this.#fail(smtpFailure('Server closed the connection', 'ECONNECTION', 'CONN', reply));
        return;
      } else {
        this.#fail(smtpFailure('Unexpected Response', 'EPROTOCOL', 'CONN', reply));
        return;
      }
    }
  };

  readonly #onError = (err: Error): void => {
    if (isResolverFailure(err)) {
      this.#fail(smtpFailure(err.message, 'EDNS', 'CONN', undefined, err));
    } else if (isTlsFailure(err)) {
      const command = this.#plainSocket ? 'STARTTLS' : 'CONN';
      this.#fail(smtpFailure(`Error initiating TLS - ${err.message}`, 'ETLS', command, undefined, err));
    } else {
      this.#fail(smtpFailure(err.message, 'ESOCKET', 'CONN', undefined, err));
    }
  };

  /** The relay closed its side (FIN), or the socket closed without an error event. */
  readonly #onEnd = (): void => {
    if (this.#failure) return;
    // The unfinished rest of a reply counts as the reply when it looks like a complete failure reply.
    const partial = this.#reader.partial;
    const response = /^[45]\d{2}[ -]/.test(partial) ? partial : undefined;
    if (this.#upgrade) {
      this.#fail(smtpFailure(UNEXPECTED_CLOSE, 'ETLS', 'STARTTLS', response));
    } else if (this.#waiters.length > 0 || this.inUse || response !== undefined) {
      this.#fail(smtpFailure(UNEXPECTED_CLOSE, 'ECONNECTION', 'CONN', response));
    } else {
      this.abort();
    }
  };

  readonly #onSocketClose = (): void => {
    this.#onEnd();
    this.#closed = true;
    this.#clearPhase();
    clearTimeout(this.#quitTimer);
    this.#markClosed();
  };

  readonly #onTimeout = (): void => {
    if (this.#waiters.length > 0 || this.inUse || this.#upgrade) {
      this.#fail(smtpFailure('Timeout', 'ETIMEDOUT', 'CONN'));
    } else {
      void this.quit();
    }
  };

  #fail(err: SmtpSendError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#clearPhase();
    const waiters = this.#waiters.splice(0);
    for (const waiter of waiters) waiter.reject(err);
    const upgrade = this.#upgrade;
    this.#upgrade = undefined;
    upgrade?.reject(err);
    this.#socket.destroy();
    this.#plainSocket?.destroy();
    queueMicrotask(() => {
      const onClose = this.onClose;
      this.onClose = undefined;
      onClose?.();
    });
  }

  #startPhase(timeoutMs: number, message: string): void {
    this.#clearPhase();
    this.#phaseTimer = setTimeout(() => {
      this.#phaseTimer = undefined;
      this.#fail(smtpFailure(message, 'ETIMEDOUT', 'CONN'));
    }, timeoutMs);
  }

  #clearPhase(): void {
    clearTimeout(this.#phaseTimer);
    this.#phaseTimer = undefined;
  }
}
