import type { AddressInfo } from 'node:net';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerError,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import { ConfigError } from '@mailroom/core';
import {
  FEEDBACK_EVENT_KINDS,
  feedbackEventOf,
  type FeedbackEvent,
  type FeedbackEventKind,
} from './feedback-event.js';
import { inboundRecipientCheck } from './inbound-recipients.js';
import { DEFAULT_MAX_FEEDBACK_BYTES, parseFeedback } from './parse-feedback.js';
import {
  UNSUBSCRIBE_MAIL_OUTCOMES,
  readUnsubscribeMail,
  validateUnsubscribeSecrets,
  type UnsubscribeMailOptions,
  type UnsubscribeMailOutcome,
} from './unsubscribe-mail.js';
import { validateVerpOptions, type VerpOptions } from './verp.js';

/**
 * What recording one event led to (the queue's FeedbackRecorder returns these):
 * - `recorded`: written on the message's ledger record, counted (and the recipient suppressed if due);
 * - `duplicate`: this message already had an event of this kind: counted as a duplicate only;
 * - `unmatched`: the report names a Mailroom id that has no ledger record (retention ran out, or forged);
 * - `unlinked`: a bounce, complaint or delay that names no Mailroom message;
 * - `ignored`: an `unknown` event, counted only.
 */
export const FEEDBACK_RECORD_RESULTS = ['recorded', 'duplicate', 'unmatched', 'unlinked', 'ignored'] as const;
export type FeedbackRecordResult = (typeof FEEDBACK_RECORD_RESULTS)[number];

export interface FeedbackRecordOutcome {
  readonly result: FeedbackRecordResult;
  /** The recipient the event was counted for (the ledger's, else the report's): only its domain is used. */
  readonly recipient?: string | undefined;
}

/** Records one event; rejects when it could not (the report is then answered 451 and sent again later). */
export type RecordFeedback = (event: FeedbackEvent) => Promise<FeedbackRecordOutcome>;

/** The counter of `mailroom_feedback_events_total` (createFeedbackMetrics or createWorkerMetrics has it). */
export interface FeedbackEventMetrics {
  observeFeedback(type: Exclude<FeedbackEventKind, 'unknown'>, to?: string): void;
  /** Counts a mail to the unsubscribe address by outcome (`mailroom_unsubscribe_mails_total`). */
  observeUnsubscribeMail?(outcome: UnsubscribeMailOutcome): void;
}

/** pino's Logger fits. Recipient addresses are only ever logged at debug. */
export interface FeedbackReceiverLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface FeedbackReceiverOptions {
  /**
   * The return-path settings the worker sends with; `verp.domain` is the bounce domain, and every local
   * part there is accepted (VERP return paths, postmaster, return paths whose MAC no longer checks out,
   * which then fall back to the Message-ID).
   */
  readonly verp: VerpOptions;
  /** Addresses given to feedback loops (Microsoft JMRP, Yahoo CFL, ...), accepted besides the bounce domain. */
  readonly complaintsAddresses?: readonly string[];
  /** Records each report; see RecordFeedback. */
  readonly record: RecordFeedback;
  /**
   * Also take mail to the `mailto:` unsubscribe address of List-Unsubscribe (RFC 2369): its token (subject,
   * else the first line of the text) is verified and handed to `unsubscribe.record`. A message without a
   * valid token is answered 250 all the same (the sender must not get a bounce) and only counted.
   */
  readonly unsubscribe?: UnsubscribeMailOptions;
  /** Address to listen on. Default `127.0.0.1`; an MX listens on a public address. */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one (see FeedbackReceiver.port). Default 0. */
  readonly port?: number;
  /** Name in the greeting and the EHLO reply. Default: the OS host name. */
  readonly serverName?: string;
  /**
   * Largest message taken, in bytes, announced in EHLO (SIZE); larger ones are refused with 552 5.3.4.
   * Default 25 MiB: a DSN that returns a whole large message must still get in, or its bounce is lost.
   */
  readonly maxMessageBytes?: number;
  /**
   * Bytes of each message kept and parsed, default DEFAULT_MAX_FEEDBACK_BYTES (1 MiB): reports put what is
   * read before the returned message, so the rest is read off the socket and dropped.
   */
  readonly maxParseBytes?: number;
  /** Simultaneous connections, default 100; more are refused by smtp-server with 421. */
  readonly maxConnections?: number;
  /** Idle time after which a connection is closed, in ms. Default 60000. */
  readonly socketTimeoutMs?: number;
  /** How long one report may take to record before it is answered 451 (sent again later), in ms. Default 30000. */
  readonly recordTimeoutMs?: number;
  /** How long close() waits for reports being recorded before it closes every connection, in ms. Default 10000. */
  readonly closeTimeoutMs?: number;
  /** Certificate to offer STARTTLS with (opportunistic: plaintext stays allowed, as on any MX). Default: none. */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /** Counts recorded events (duplicates, unmatched and unlinked ones are not). */
  readonly metrics?: FeedbackEventMetrics;
  readonly logger?: FeedbackReceiverLogger;
}

/** Counters since start. */
export interface FeedbackReceiverStats {
  connections: number;
  /** Messages answered 250. */
  accepted: number;
  /** RCPT TO refused with 550 5.7.1 (not the bounce domain, a complaints or the unsubscribe address). */
  refusedRecipients: number;
  /** Messages refused with 552 5.3.4 for their size. */
  tooBig: number;
  /** Messages answered 451 because recording failed or took too long (the sender retries). */
  deferred: number;
  /** Accepted messages by event kind. */
  readonly kinds: Record<FeedbackEventKind, number>;
  /** Accepted messages by what recording them led to. */
  readonly results: Record<FeedbackRecordResult, number>;
  /** Accepted mails to the unsubscribe address by outcome. */
  readonly unsubscribes: Record<UnsubscribeMailOutcome, number>;
}

export interface FeedbackReceiver {
  readonly host: string;
  readonly port: number;
  /** Live counters. */
  readonly stats: Readonly<FeedbackReceiverStats>;
  /**
   * Stops listening, waits (up to closeTimeoutMs) for the reports being recorded to be answered, then closes
   * every connection. Idempotent.
   */
  close(): Promise<void>;
}

export const DEFAULT_FEEDBACK_MAX_MESSAGE_BYTES = 25 * 1024 * 1024;
/** Envelope recipients per transaction: a report goes to one return path; parseFeedback reads 10. */
const MAX_RCPT_PER_MESSAGE = 10;

function reply(responseCode: number, text: string): SMTPServerError {
  const err: SMTPServerError = new Error(text);
  err.responseCode = responseCode;
  return err;
}

const NO_LOG: FeedbackReceiverLogger = { debug() {}, info() {}, warn() {} };

function positiveInteger(value: number | undefined, fallback: number, field: string): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError([{ field, message: 'must be a positive integer' }]);
  }
  return n;
}

/**
 * The inbound SMTP receiver of bounces and complaints: the MX of the bounce domain. It takes mail for the
 * bounce domain, the complaints addresses and (with `unsubscribe`) the unsubscribe address only (any other
 * RCPT TO is refused with 550 5.7.1: it relays nothing), reads each report with parseFeedback (VERP return
 * path from the envelope first), and hands the event to `record`; an unsubscribe mail's verified token goes
 * to `unsubscribe.record`. Every readable or unreadable message is answered 250 once recorded, so a remote
 * MTA never retries a report Mailroom cannot use; only a failure to record is answered 451, so the report
 * comes again.
 * It never sends mail itself, so it cannot loop. Throws ConfigError for unusable options.
 */
export async function startFeedbackReceiver(options: FeedbackReceiverOptions): Promise<FeedbackReceiver> {
  validateVerpOptions(options.verp);
  const unsubscribe = options.unsubscribe;
  if (unsubscribe !== undefined) validateUnsubscribeSecrets(unsubscribe.secrets);
  const mailboxOf = inboundRecipientCheck(
    options.verp.domain,
    options.complaintsAddresses ?? [],
    unsubscribe?.address,
  );
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes,
    DEFAULT_FEEDBACK_MAX_MESSAGE_BYTES,
    'maxMessageBytes',
  );
  const maxParseBytes = Math.min(
    positiveInteger(options.maxParseBytes, DEFAULT_MAX_FEEDBACK_BYTES, 'maxParseBytes'),
    maxMessageBytes,
  );
  const recordTimeoutMs = positiveInteger(options.recordTimeoutMs, 30_000, 'recordTimeoutMs');
  const closeTimeoutMs = positiveInteger(options.closeTimeoutMs, 10_000, 'closeTimeoutMs');
  const log = options.logger ?? NO_LOG;
  const stats: FeedbackReceiverStats = {
    connections: 0,
    accepted: 0,
    refusedRecipients: 0,
    tooBig: 0,
    deferred: 0,
    kinds: Object.fromEntries(FEEDBACK_EVENT_KINDS.map((kind) => [kind, 0])) as Record<
      FeedbackEventKind,
      number
    >,
    results: Object.fromEntries(FEEDBACK_RECORD_RESULTS.map((result) => [result, 0])) as Record<
      FeedbackRecordResult,
      number
    >,
    unsubscribes: Object.fromEntries(UNSUBSCRIBE_MAIL_OUTCOMES.map((outcome) => [outcome, 0])) as Record<
      UnsubscribeMailOutcome,
      number
    >,
  };
  const inFlight = new Set<Promise<unknown>>();
  const timers = new Set<NodeJS.Timeout>();

  /** Resolves with what `recording` resolves with, or rejects after recordTimeoutMs. */
  const recordWithin = <T>(recording: () => Promise<T>): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        reject(new Error(`recording took longer than ${recordTimeoutMs} ms`));
      }, recordTimeoutMs);
      timers.add(timer);
      recording().then(
        (outcome) => {
          clearTimeout(timer);
          timers.delete(timer);
          resolve(outcome);
        },
        (err: unknown) => {
          clearTimeout(timer);
          timers.delete(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });

  /** A mail to the unsubscribe address: its token verified, then acted on. No address is logged at info. */
  const handleUnsubscribe = async (raw: Buffer, mailbox: UnsubscribeMailOptions): Promise<void> => {
    const reading = await readUnsubscribeMail(raw, { secrets: mailbox.secrets });
    let outcome: UnsubscribeMailOutcome;
    if (reading.outcome === 'token') {
      const token = reading.token;
      outcome = await recordWithin(() => mailbox.record(token));
      log.info({ outcome, list: token.list, scope: token.scope }, 'unsubscribe mail received');
      log.debug({ rcpt: token.address, list: token.list, scope: token.scope }, 'unsubscribe mail recipient');
    } else {
      outcome = reading.outcome;
      log.info(
        reading.outcome === 'invalid_token' ? { outcome, problem: reading.problem } : { outcome },
        'unsubscribe mail without a valid token: nothing done',
      );
    }
    stats.unsubscribes[outcome] += 1;
    options.metrics?.observeUnsubscribeMail?.(outcome);
  };

  const handleFeedback = async (raw: Buffer, rcptTo: readonly string[]): Promise<void> => {
    const toComplaintsAddress = rcptTo.some((address) => mailboxOf(address) === 'complaints');
    const report = await parseFeedback(raw, { verp: options.verp, rcptTo, maxBytes: maxParseBytes });
    const event = feedbackEventOf(report, { toComplaintsAddress });
    const outcome = await recordWithin(() => options.record(event));
    stats.kinds[event.kind] += 1;
    stats.results[outcome.result] += 1;
    if (outcome.result === 'recorded' && event.kind !== 'unknown') {
      options.metrics?.observeFeedback(event.kind, outcome.recipient ?? event.recipient);
    }
    log.info(
      {
        kind: event.kind,
        result: outcome.result,
        source: event.source,
        msgId: event.mailroomId,
        linkedBy: event.linkedBy,
        status: event.status,
      },
      'feedback received',
    );
    log.debug({ msgId: event.mailroomId, rcpt: event.recipient }, 'feedback recipient');
  };

  /**
   * One accepted message: an unsubscribe request when it came to the unsubscribe address, a report when it
   * came to the bounce domain or a complaints address (both, for a message sent to both). Resolves with the
   * reply text.
   */
  const handle = async (raw: Buffer, rcptTo: readonly string[]): Promise<string> => {
    const reportRcptTo = rcptTo.filter((address) => mailboxOf(address) !== 'unsubscribe');
    const toUnsubscribe = unsubscribe !== undefined && reportRcptTo.length < rcptTo.length;
    if (toUnsubscribe) await handleUnsubscribe(raw, unsubscribe);
    if (reportRcptTo.length > 0) await handleFeedback(raw, reportRcptTo);
    stats.accepted += 1;
    return reportRcptTo.length > 0 ? '2.0.0 Report received' : '2.0.0 Unsubscribe request received';
  };

  const refusal =
    unsubscribe === undefined
      ? '5.7.1 Relaying denied: this server only takes bounces and complaints'
      : '5.7.1 Relaying denied: this server only takes bounces, complaints and unsubscribe requests';

  const onRcptTo = (
    address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void => {
    if (session.envelope.rcptTo.length >= MAX_RCPT_PER_MESSAGE) {
      callback(reply(452, '4.5.3 Too many recipients'));
      return;
    }
    if (mailboxOf(address.address) === undefined) {
      stats.refusedRecipients += 1;
      log.debug(
        { rcpt: address.address },
        'recipient refused: not a bounce, complaints or unsubscribe address',
      );
      callback(reply(550, refusal));
      return;
    }
    callback();
  };

  const onData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void,
  ): void => {
    const chunks: Buffer[] = [];
    let kept = 0;
    stream.on('data', (chunk: Buffer) => {
      if (kept >= maxParseBytes) return;
      const part = chunk.subarray(0, maxParseBytes - kept);
      chunks.push(part);
      kept += part.length;
    });
    // A client leaving mid-DATA destroys the stream; nothing is recorded for that message.
    stream.on('error', () => undefined);
    stream.once('end', () => {
      if (stream.sizeExceeded) {
        stats.tooBig += 1;
        callback(reply(552, `5.3.4 Message too big: at most ${maxMessageBytes} bytes`));
        return;
      }
      const rcptTo = session.envelope.rcptTo.map((rcpt) => rcpt.address);
      const work = handle(Buffer.concat(chunks, kept), rcptTo).then(
        (text) => callback(null, text),
        (err: unknown) => {
          stats.deferred += 1;
          log.warn({ err: { message: (err as Error).message } }, 'feedback not recorded: answered 451');
          callback(reply(451, '4.3.0 Report not recorded, try again later'));
        },
      );
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    });
  };

  const serverOptions: SMTPServerOptions = {
    logger: false,
    banner: 'Mailroom feedback receiver',
    size: maxMessageBytes,
    authOptional: true,
    disabledCommands: options.tls === undefined ? ['AUTH', 'STARTTLS'] : ['AUTH'],
    // A reverse lookup per connection costs a DNS round trip and decides nothing here.
    disableReverseLookup: true,
    maxClients: positiveInteger(options.maxConnections, 100, 'maxConnections'),
    socketTimeout: positiveInteger(options.socketTimeoutMs, 60_000, 'socketTimeoutMs'),
    closeTimeout: closeTimeoutMs,
    onConnect(_session, callback) {
      stats.connections += 1;
      callback();
    },
    onRcptTo,
    onData,
  };
  if (options.serverName !== undefined) serverOptions.name = options.serverName;
  if (options.tls !== undefined) {
    serverOptions.key = options.tls.key;
    serverOptions.cert = options.tls.cert;
  }
  const smtp = new SMTPServer(serverOptions);
  // Connection-level failures (a reset mid-transaction, an aborted TLS handshake) are the remote's business;
  // without a listener they would end the process.
  smtp.on('error', (err: Error) => log.debug({ err: { message: err.message } }, 'smtp connection error'));
  await new Promise<void>((resolve, reject) => {
    smtp.server.once('error', reject);
    smtp.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      smtp.server.off('error', reject);
      resolve();
    });
  });
  const address = smtp.server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => smtp.close(() => resolve()));
      let waitTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise<void>((resolve) => {
          waitTimer = setTimeout(resolve, closeTimeoutMs);
        }),
      ]);
      clearTimeout(waitTimer);
      // Whoever is still connected is idle or mid-message: a message cut off here was never answered, so its
      // sender tries again later.
      for (const connection of smtp.connections) connection.close();
      await closed;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    })();
    return closing;
  };

  return { host: address.address, port: address.port, stats, close };
}
