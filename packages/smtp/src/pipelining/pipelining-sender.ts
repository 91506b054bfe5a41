import type { RelayConfig } from '../relay-config.js';
import { SmtpSendError, type RelayAcceptance } from '../relay-transport.js';
import { openSmtpSession } from './open-smtp-session.js';
import type { Sender, SenderHooks, SmtpEnvelope } from './sender.js';
import { asSmtpSendError, smtpFailure } from './smtp-failure.js';
import type { SmtpSession, SmtpTransaction } from './smtp-session.js';
import { stuffMessage } from './stuff-message.js';

/** Options of the pipelining sender beyond the relay's configuration. */
export interface PipeliningSenderOptions {
  /**
   * A pooled connection with nothing to send for this long is closed with QUIT, in milliseconds.
   * Default: 30 000, and never more than the relay's socketTimeoutMs.
   */
  readonly idleTimeoutMs?: number;
  /**
   * Write the next message's envelope right behind the final dot of the previous one on the same
   * connection, when the relay offers PIPELINING (RFC 2920 allows the message content to start a command
   * group). Saves one round trip per message. Default: true.
   */
  readonly pipelineTransactions?: boolean;
}

interface QueuedSend extends SmtpTransaction {
  readonly resolve: (acceptance: RelayAcceptance) => void;
  readonly reject: (err: SmtpSendError) => void;
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/**
 * A pool of up to `maxConnections` SMTP connections to one relay, each reused for up to
 * `maxMessagesPerConnection` messages, sending with PIPELINING when the relay offers it (RFC 2920).
 *
 * What it never does: send in plaintext when STARTTLS is required, send unauthenticated when credentials
 * are configured, re-send a message on its own (retrying is the queue's decision), or leave a send
 * unsettled: a message waiting when the pool is closed is rejected.
 *
 * Failures reject with SmtpSendError carrying an observation shaped like nodemailer's for the same relay
 * behaviour (code, command, reply, message), so `classifySmtpOutcome` gives both senders the same outcome.
 * A failed connection fails only the messages on it: the next message gets a new connection.
 */
export class PipeliningSender implements Sender {
  readonly #queue: QueuedSend[] = [];
  /** Every open session, idle or not. */
  readonly #sessions = new Set<SmtpSession>();
  /** Sessions with nothing to do, most recently used last. */
  readonly #idle: SmtpSession[] = [];
  readonly #idleTimers = new Map<SmtpSession, NodeJS.Timeout>();
  #opening = 0;
  #unsettled = 0;
  #closed = false;
  readonly #idleTimeoutMs: number;
  readonly #pipelineTransactions: boolean;

  constructor(
    readonly config: RelayConfig,
    options: PipeliningSenderOptions = {},
  ) {
    this.#idleTimeoutMs = Math.min(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, config.socketTimeoutMs);
    this.#pipelineTransactions = options.pipelineTransactions ?? true;
  }

  send(envelope: SmtpEnvelope, raw: Buffer, hooks?: SenderHooks): Promise<RelayAcceptance> {
    if (this.#closed) return Promise.reject(poolClosed());
    const message = stuffMessage(raw);
    this.#unsettled++;
    return new Promise<RelayAcceptance>((resolve, reject) => {
      this.#queue.push({
        envelope: { from: envelope.from, to: envelope.to },
        message,
        hooks,
        resolve: (acceptance) => {
          this.#unsettled--;
          resolve(acceptance);
        },
        reject: (err) => {
          this.#unsettled--;
          reject(err);
        },
      });
      this.#pump();
    });
  }

  /** Messages handed to `send` and not settled yet (queued or on the wire). */
  get sending(): number {
    return this.#unsettled;
  }

  /** Connections open right now (idle or busy), not counting ones being set up. */
  get connections(): number {
    return this.#sessions.size;
  }

  /**
   * Opens a connection of its own, sets the session up (STARTTLS, AUTH), then QUITs.
   * Rejects with SmtpSendError.
   */
  async verify(): Promise<void> {
    const session = await openSmtpSession(this.config);
    await session.quit();
  }

  /** Opens connections into the pool, idle, until it has `count` open or opening (at most its size). */
  warm(count: number): void {
    const target = Math.min(count, this.config.maxConnections);
    while (!this.#closed && this.#sessions.size + this.#opening < target) {
      this.#opening++;
      openSmtpSession(this.config).then(
        (session) => {
          this.#opening--;
          this.#sessions.add(session);
          session.channel.onClose = () => this.#forget(session);
          if (this.#pipelineTransactions) session.onBodyQueued = (s) => this.#pipelineNext(s);
          // Idle, or straight to a message queued meanwhile (closed if the pool was closed meanwhile).
          this.#afterTransaction(session);
        },
        () => {
          this.#opening--;
          this.#pump();
        },
      );
    }
  }

  /**
   * Stops taking messages. Queued messages are rejected (ECONNECTION, 'Connection pool was closed'); the
   * transactions on the wire finish, then their connections close with QUIT, as idle ones do at once.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const queued of this.#queue.splice(0)) queued.reject(poolClosed());
    for (const session of this.#idle.splice(0)) this.#retire(session);
  }

  /** Hands queued messages to idle sessions, and opens sessions while the pool has room. */
  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const session = this.#idle.pop();
      if (session && !session.usable) {
        // Closed by the relay while idle, and not forgotten yet.
        this.#forget(session);
      } else if (session) {
        this.#stopIdleTimer(session);
        this.#start(session, this.#queue.shift() as QueuedSend);
      } else if (this.#sessions.size + this.#opening < this.config.maxConnections) {
        this.#open(this.#queue.shift() as QueuedSend);
      } else {
        return;
      }
    }
  }

  /** Opens a session for `first`: if it cannot be opened, `first` fails with the reason (and only it). */
  #open(first: QueuedSend): void {
    this.#opening++;
    openSmtpSession(this.config).then(
      (session) => {
        this.#opening--;
        this.#sessions.add(session);
        session.channel.onClose = () => this.#forget(session);
        if (this.#pipelineTransactions) session.onBodyQueued = (s) => this.#pipelineNext(s);
        // Even if the pool was closed meanwhile: this message was on its way, and close() lets those finish.
        this.#start(session, first);
      },
      (err: unknown) => {
        this.#opening--;
        const failure = asSmtpSendError(err);
        first.reject(new SmtpSendError({ ...failure.observation, connecting: true }, { cause: failure }));
        this.#pump();
      },
    );
  }

  #start(session: SmtpSession, queued: QueuedSend): void {
    session.run(queued).then(
      (acceptance) => {
        queued.resolve(acceptance);
        this.#afterTransaction(session);
      },
      (err: SmtpSendError) => {
        queued.reject(err);
        this.#afterTransaction(session);
      },
    );
  }

  /** Called (synchronously, the socket corked) when a session has queued a final dot. */
  #pipelineNext(session: SmtpSession): void {
    if (this.#closed || this.#queue.length === 0) return;
    if (!session.canPipelineNext) return;
    if (session.transactionsStarted >= this.config.maxMessagesPerConnection) return;
    this.#start(session, this.#queue.shift() as QueuedSend);
  }

  #afterTransaction(session: SmtpSession): void {
    if (session.active > 0) return;
    if (!session.usable) {
      this.#retire(session);
    } else if (this.#closed || session.transactionsStarted >= this.config.maxMessagesPerConnection) {
      this.#retire(session);
    } else if (this.#queue.length > 0) {
      this.#start(session, this.#queue.shift() as QueuedSend);
      return;
    } else {
      this.#idle.push(session);
      this.#startIdleTimer(session);
      return;
    }
    this.#pump();
  }

  /** Takes a session out of the pool and closes it (QUIT when it is still in step with the relay). */
  #retire(session: SmtpSession): void {
    this.#forget(session);
    void session.quit();
  }

  /** Removes a session from the pool's books; called again when its connection closes (no-op then). */
  #forget(session: SmtpSession): void {
    if (!this.#sessions.delete(session)) return;
    this.#stopIdleTimer(session);
    const at = this.#idle.indexOf(session);
    if (at !== -1) this.#idle.splice(at, 1);
    // A slot is free: a queued message may open a new connection.
    this.#pump();
  }

  #startIdleTimer(session: SmtpSession): void {
    const timer = setTimeout(() => {
      this.#idleTimers.delete(session);
      const at = this.#idle.indexOf(session);
      if (at === -1) return;
      this.#idle.splice(at, 1);
      this.#retire(session);
    }, this.#idleTimeoutMs);
    // An idle pool must not keep the process alive.
    timer.unref();
    this.#idleTimers.set(session, timer);
  }

  #stopIdleTimer(session: SmtpSession): void {
    const timer = this.#idleTimers.get(session);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#idleTimers.delete(session);
  }
}

function poolClosed(): SmtpSendError {
  return smtpFailure('Connection pool was closed', 'ECONNECTION', 'API');
}
