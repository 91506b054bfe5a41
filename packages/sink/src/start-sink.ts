import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerError,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import { MessageRecorder, type RecordedContent } from './message-recorder.js';
import { parseScript, type SinkBehaviour } from './parse-script.js';
import type { ReceivedMessage } from './received-message.js';
import { SinkClosedError, SinkOptionsError, SinkWaitTimeoutError } from './sink-error.js';
import type { SinkOptions } from './sink-options.js';

/** Counters over the sink's whole life (`reset` does not clear them). */
export interface SinkStats {
  /** TCP connections accepted. */
  readonly connections: number;
  /** Sessions that went under TLS (implicit TLS or a completed STARTTLS). */
  readonly secureConnections: number;
  /** AUTH attempts with wrong credentials. */
  readonly authFailures: number;
  /** RCPT commands not accepted (scripted rejections and drops). */
  readonly rejectedRcpts: number;
  /** TCP connections open right now. */
  readonly openConnections: number;
}

/** A running sink. */
export interface Sink {
  readonly host: string;
  readonly port: number;
  /** Every message the sink stored, in order (since start or the last `reset`). */
  readonly messages: readonly ReceivedMessage[];
  readonly stats: SinkStats;
  /** RCPT attempts seen for this exact address (since start or the last `reset`). */
  attempts(address: string): number;
  /**
   * Whole bodies received for this exact address and never answered (the `stalldata` script): each is an
   * attempt whose sender wrote the final dot and got no reply (since start or the last `reset`).
   */
  unanswered(address: string): number;
  /**
   * Resolves once `messages.length >= count`. Event-driven, no polling. Rejects with
   * `SinkWaitTimeoutError` after `timeoutMs` (default 10 000 ms), with `SinkClosedError` on `close()`.
   */
  waitForMessages(count: number, timeoutMs?: number): Promise<void>;
  /** Forgets the stored records and the attempt counters. */
  reset(): void;
  /** Stops listening and destroys every open connection, stalled ones too; resolves when all are closed. */
  close(): Promise<void>;
}

const DEFAULT_WAIT_MS = 10_000;
const SERVER_NAME = 'mailroom-sink';

/** The connection object smtp-server keeps per session; its socket is the topmost one (TLS after STARTTLS). */
interface SessionConnection {
  readonly id: string;
  readonly _socket: Socket | TLSSocket;
}

interface SessionState {
  connection?: SessionConnection;
  /** The accepted TCP socket, while it is the session's own (before any STARTTLS). */
  rawSocket?: Socket;
  tlsProtocol?: string;
}

interface Waiter {
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** A reply for smtp-server: it writes `${responseCode} ${message}`, so the enhanced code leads the message. */
function reply(responseCode: number, text: string): SMTPServerError {
  const err: SMTPServerError = new Error(text);
  err.responseCode = responseCode;
  return err;
}

const REPLY = {
  temp421: () => reply(421, '4.4.2 Service temporarily unavailable'),
  temp451: () => reply(451, '4.3.0 Temporary local problem'),
  throttle: () => reply(450, '4.7.28 Rate limited, try again later'),
  busy421: () => reply(421, '4.7.28 Too many messages from your address, try again later'),
  bounce: () => reply(550, '5.1.1 User unknown'),
  full: () => reply(452, '4.2.2 Mailbox full'),
  tooBig: () => reply(552, '5.3.4 Message too big'),
  dataFail: () => reply(451, '4.3.0 Temporary local problem'),
};

function isDataPhase(behaviour: SinkBehaviour): boolean {
  switch (behaviour.kind) {
    case 'toobig':
    case 'datafail451':
    case 'slow':
    case 'stalldata':
    case 'acceptdrop':
      return true;
    default:
      return false;
  }
}

function nonNegative(name: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isFinite(value) || value < 0) throw new SinkOptionsError(`sink: ${name} must be a number >= 0`);
  return value;
}

/**
 * Starts a scriptable SMTP sink (see `parseScript` for the recipient scripts) and resolves once it
 * listens. Recording is cheap (hash and header block only), so it can take thousands of messages
 * per second over pooled, pipelined connections.
 */
export async function startSink(options: SinkOptions = {}): Promise<Sink> {
  const host = options.host ?? '127.0.0.1';
  const greetingDelayMs = nonNegative('greetingDelayMs', options.greetingDelayMs);
  const maxMessageBytes = nonNegative('maxMessageBytes', options.maxMessageBytes);
  const port = nonNegative('port', options.port);
  if (options.secure && !options.tls) throw new SinkOptionsError('sink: secure needs tls (key and cert)');
  const keepRawUpTo = options.keepRaw ? maxMessageBytes || Number.MAX_SAFE_INTEGER : 0;

  let messages: ReceivedMessage[] = [];
  let attempts = new Map<string, number>();
  let dataAttempts = new Map<string, number>();
  let unanswered = new Map<string, number>();
  let seq = 0;
  const stats = {
    connections: 0,
    secureConnections: 0,
    authFailures: 0,
    rejectedRcpts: 0,
    openConnections: 0,
  };
  const sessions = new Map<string, SessionState>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<Waiter>();
  const rawSockets = new Set<Socket>();
  const tlsSockets = new Set<TLSSocket>();
  let closing: Promise<void> | undefined;
  /** Set by close(): called when the last open connection has closed. */
  let onDrained: (() => void) | undefined;

  /** Counts a TCP connection as closed, once. */
  const forgetSocket = (socket: Socket): void => {
    if (!rawSockets.delete(socket)) return;
    stats.openConnections--;
    if (rawSockets.size === 0) onDrained?.();
  };

  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const stateOf = (session: SMTPServerSession): SessionState => {
    let state = sessions.get(session.id);
    if (!state) {
      state = {};
      sessions.set(session.id, state);
    }
    if (!state.connection) {
      for (const connection of smtp.connections) {
        if (connection.id === session.id) {
          state.connection = connection;
          break;
        }
      }
    }
    return state;
  };

  /** Ends the session's connection at once, without a reply. */
  const destroySession = (session: SMTPServerSession): void => {
    stateOf(session).connection?._socket.destroy();
  };

  const isAnswerable = (session: SMTPServerSession): boolean => {
    const socket = sessions.get(session.id)?.connection?._socket;
    return socket !== undefined && !socket.destroyed && socket.writable;
  };

  const store = (
    session: SMTPServerSession,
    envelope: { mailFrom: string; rcptTo: string[] },
    content: RecordedContent,
    replied: boolean,
  ): ReceivedMessage => {
    const state = sessions.get(session.id);
    let messageId: string | undefined;
    let subject: string | undefined;
    for (const [name, value] of content.headers) {
      const lower = name.toLowerCase();
      if (messageId === undefined && lower === 'message-id') messageId = value.trim();
      else if (subject === undefined && lower === 'subject') subject = value;
    }
    const user: unknown = session.user;
    const record: ReceivedMessage = {
      seq: ++seq,
      receivedAt: Date.now(),
      sessionId: session.id,
      secure: session.secure,
      ...(session.secure && state?.tlsProtocol !== undefined ? { tlsProtocol: state.tlsProtocol } : {}),
      ...(typeof user === 'string' ? { authUser: user } : {}),
      mailFrom: envelope.mailFrom,
      rcptTo: envelope.rcptTo,
      ...(messageId === undefined ? {} : { messageId }),
      ...(subject === undefined ? {} : { subject }),
      headers: content.headers,
      sizeBytes: content.sizeBytes,
      sha256: content.sha256,
      ...(content.raw === undefined ? {} : { raw: content.raw }),
      replied,
    };
    messages.push(record);
    for (const waiter of waiters) {
      if (messages.length >= waiter.count) {
        waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve();
      }
    }
    return record;
  };

  const onRcptTo = (
    address: SMTPServerAddress,
    _session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void => {
    const rcpt = address.address;
    const attempt = (attempts.get(rcpt) ?? 0) + 1;
    attempts.set(rcpt, attempt);
    const behaviour = parseScript(rcpt);
    const policy = options.rcptPolicy?.(rcpt);
    if (policy) {
      stats.rejectedRcpts++;
      callback(reply(policy.code, policy.message));
      return;
    }
    let refusal: SMTPServerError | undefined;
    switch (behaviour.kind) {
      case 'temp421':
        // smtp-server closes the connection after any 421 reply, as RFC 5321 says it must.
        if (attempt <= behaviour.times) refusal = REPLY.temp421();
        break;
      case 'temp451':
        if (attempt <= behaviour.times) refusal = REPLY.temp451();
        break;
      case 'throttle':
        if (attempt <= behaviour.times) refusal = REPLY.throttle();
        break;
      case 'busy421':
        if (attempt <= behaviour.times) refusal = REPLY.busy421();
        break;
      case 'bounce':
        refusal = REPLY.bounce();
        break;
      case 'full':
        refusal = REPLY.full();
        break;
      case 'drop':
        stats.rejectedRcpts++;
        // No callback: the command is never answered, the connection just goes away.
        destroySession(_session);
        return;
      default:
        break;
    }
    if (refusal) stats.rejectedRcpts++;
    callback(refusal);
  };

  const onData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void,
  ): void => {
    const recorder = new MessageRecorder(keepRawUpTo);
    stream.on('data', (chunk: Buffer) => recorder.write(chunk));
    // A client that leaves mid-DATA destroys the stream; with a listener smtp-server passes the
    // reason here instead of nowhere. Nothing is stored for such a message.
    stream.on('error', () => undefined);
    stream.once('end', () => {
      const mailFrom = session.envelope.mailFrom;
      const envelope = {
        mailFrom: mailFrom ? mailFrom.address : '',
        rcptTo: session.envelope.rcptTo.map((rcpt) => rcpt.address),
      };
      if (stream.sizeExceeded) {
        callback(REPLY.tooBig());
        return;
      }
      // With several recipients the first one that scripts the DATA phase decides it.
      let rcpt: string | undefined;
      let behaviour: SinkBehaviour = { kind: 'accept' };
      for (const address of envelope.rcptTo) {
        const scripted = parseScript(address);
        if (isDataPhase(scripted)) {
          rcpt = address;
          behaviour = scripted;
          break;
        }
      }
      switch (behaviour.kind) {
        case 'toobig':
          callback(REPLY.tooBig());
          return;
        case 'datafail451': {
          const key = rcpt ?? '';
          const attempt = (dataAttempts.get(key) ?? 0) + 1;
          dataAttempts.set(key, attempt);
          if (attempt <= behaviour.times) {
            callback(REPLY.dataFail());
            return;
          }
          break;
        }
        case 'stalldata':
          // Never answered: the client's timeout or close() ends the connection.
          if (rcpt !== undefined) unanswered.set(rcpt, (unanswered.get(rcpt) ?? 0) + 1);
          return;
        case 'acceptdrop':
          store(session, envelope, recorder.finish(), false);
          destroySession(session);
          return;
        case 'slow': {
          const content = recorder.finish();
          later(behaviour.delayMs, () => {
            // A client that gave up meanwhile never hears the reply, but the message was taken.
            const answerable = isAnswerable(session);
            const record = store(session, envelope, content, answerable);
            if (answerable) callback(null, `Ok: queued as ${record.seq}`);
          });
          return;
        }
        default:
          break;
      }
      const record = store(session, envelope, recorder.finish(), true);
      callback(null, `Ok: queued as ${record.seq}`);
    });
  };

  const onAuth = (
    auth: SMTPServerAuthentication,
    _session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void => {
    const expected = options.auth;
    if (
      expected &&
      (auth.method === 'PLAIN' || auth.method === 'LOGIN') &&
      auth.username === expected.user &&
      auth.password === expected.pass
    ) {
      callback(null, { user: auth.username });
      return;
    }
    stats.authFailures++;
    callback(null, { responseCode: 535, message: '5.7.8 Authentication credentials invalid' });
  };

  const disabledCommands: string[] = [];
  if (!options.auth) disabledCommands.push('AUTH');
  // Without a certificate of our own smtp-server would offer STARTTLS with its built-in one. A hidden
  // STARTTLS is refused too: nodemailer's requireTLS tries STARTTLS even when it is not advertised,
  // and smtp-server's own hideSTARTTLS still accepts the command, which strips nothing.
  if (!options.tls || options.hideStartTls) disabledCommands.push('STARTTLS');

  const serverOptions: SMTPServerOptions = {
    name: SERVER_NAME,
    logger: false,
    secure: options.secure ?? false,
    hideSTARTTLS: options.hideStartTls ?? false,
    disabledCommands,
    authOptional: !options.auth,
    authMethods: ['PLAIN', 'LOGIN'],
    // Without STARTTLS on offer, AUTH in the clear is the only AUTH there is (loopback tests).
    allowInsecureAuth: !options.tls || options.hideStartTls === true,
    // Loopback only, and a reverse lookup per connection would cost more than the whole session.
    disableReverseLookup: true,
    onConnect(session, callback) {
      const state = stateOf(session);
      // STARTTLS makes smtp-server strip every listener off the TCP socket, our 'close' one too;
      // onClose then stands in for it.
      const socket = state.connection?._socket;
      if (socket && rawSockets.has(socket)) state.rawSocket = socket;
      if (greetingDelayMs > 0) later(greetingDelayMs, () => callback());
      else callback();
    },
    onSecure(socket, session, callback) {
      stats.secureConnections++;
      const tlsSocket = socket as TLSSocket;
      tlsSockets.add(tlsSocket);
      tlsSocket.once('close', () => tlsSockets.delete(tlsSocket));
      const protocol = typeof tlsSocket.getProtocol === 'function' ? tlsSocket.getProtocol() : null;
      const state = stateOf(session);
      if (protocol) state.tlsProtocol = protocol;
      callback();
    },
    onAuth,
    onRcptTo,
    onData,
    onClose(session) {
      const socket = sessions.get(session.id)?.rawSocket;
      if (socket) forgetSocket(socket);
      sessions.delete(session.id);
    },
  };
  if (options.tls) {
    serverOptions.key = options.tls.key;
    serverOptions.cert = options.tls.cert;
  }
  if (maxMessageBytes > 0) serverOptions.size = maxMessageBytes;
  if (options.banner !== undefined) serverOptions.banner = options.banner;

  const smtp = new SMTPServer(serverOptions);
  // Connection-level failures (a client aborting a TLS handshake, a reset mid-transaction) are
  // part of what the sink is for; without a listener they would crash the process.
  smtp.on('error', () => undefined);
  smtp.server.on('connection', (socket: Socket) => {
    stats.connections++;
    stats.openConnections++;
    rawSockets.add(socket);
    socket.once('close', () => forgetSocket(socket));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    smtp.server.once('error', onError);
    smtp.listen(port, host, () => {
      smtp.server.removeListener('error', onError);
      resolve();
    });
  });
  const address = smtp.server.address() as AddressInfo;

  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // Resolve once the listener is closed and every socket has emitted 'close' (the server's
      // 'close' can come before the last socket's, and stats must read 0 open connections).
      let pending = 2;
      const settle = (): void => {
        if (--pending === 0) resolve();
      };
      if (rawSockets.size === 0) settle();
      else onDrained = settle;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new SinkClosedError());
      }
      waiters.clear();
      smtp.close(settle);
      // Topmost sockets first: the TLS ones, then the sessions' own, then whatever raw socket is
      // left (a session smtp-server already let go of, a STARTTLS handshake still running).
      for (const socket of tlsSockets) socket.destroy();
      for (const connection of smtp.connections) connection._socket.destroy();
      for (const socket of rawSockets) socket.destroy();
    });
    return closing;
  };

  return {
    host,
    port: address.port,
    get messages() {
      return messages;
    },
    get stats() {
      return { ...stats };
    },
    attempts: (rcpt) => attempts.get(rcpt) ?? 0,
    unanswered: (rcpt) => unanswered.get(rcpt) ?? 0,
    waitForMessages(count, timeoutMs = DEFAULT_WAIT_MS) {
      if (messages.length >= count) return Promise.resolve();
      if (closing) return Promise.reject(new SinkClosedError());
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(new SinkWaitTimeoutError(count, messages.length, timeoutMs));
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },
    reset() {
      messages = [];
      attempts = new Map();
      dataAttempts = new Map();
      unanswered = new Map();
    },
    close,
  };
}
