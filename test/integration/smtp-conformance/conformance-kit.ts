import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import {
  classifySmtpOutcome,
  type Classification,
  type OutcomeClass,
  type SmtpObservation,
} from '@mailroom/core';
import { SmtpSendError, type RelayAcceptance, type RelayConfig } from '@mailroom/smtp';
import type * as Pipelining from '../../../packages/smtp/dist/pipelining/index.js';

// The pipelining sender is not exported from @mailroom/smtp's entry point yet: load it from the package's
// build output (the path is resolved from test/dist/integration/smtp-conformance at run time).
const pipeliningModule = new URL('../../../../packages/smtp/dist/pipelining/index.js', import.meta.url);
const pipelining = (await import(pipeliningModule.href)) as typeof Pipelining;

export type Sender = Pipelining.Sender;
export type SenderKind = Pipelining.SenderKind;
export const SENDER_KINDS: readonly SenderKind[] = pipelining.SENDER_KINDS;
export const { PipeliningSender, stuffMessage } = pipelining;

/** Limit of one test case: a sender that hangs fails its test instead of stalling the suite. */
export const CASE_TIMEOUT_MS = 60_000;

/** Timeouts short enough for a fast suite, long enough for a loaded 2-core machine. */
export const TEST_TIMEOUT_MS = 5000;

/** A relay configuration for a server on 127.0.0.1:port; plaintext unless `overrides` say otherwise. */
export function relayConfig(port: number, overrides: Partial<RelayConfig> = {}): RelayConfig {
  return {
    name: 'conformance',
    host: '127.0.0.1',
    port,
    tlsMode: 'none',
    verifyCertificates: true,
    maxConnections: 2,
    maxMessagesPerConnection: 100,
    connectionTimeoutMs: TEST_TIMEOUT_MS,
    greetingTimeoutMs: TEST_TIMEOUT_MS,
    socketTimeoutMs: TEST_TIMEOUT_MS,
    clientName: 'conformance.mailroom.test',
    ...overrides,
  };
}

/** The sender of that kind over `config`: the nodemailer pool (RelayTransport) or the pipelining sender. */
export function buildSender(kind: SenderKind, config: RelayConfig): Sender {
  return pipelining.createSender(config, kind);
}

/** What one send showed, as the worker sees it: the observation with the hook's bodyWritten, classified. */
export interface Attempt {
  readonly observation: SmtpObservation;
  readonly classification: Classification;
  readonly outcome: OutcomeClass;
  readonly reason: string;
  /** Whether `onBodyWritten` was called. */
  readonly bodyWritten: boolean;
  readonly acceptance?: RelayAcceptance;
  readonly error?: SmtpSendError;
}

/** Sends `raw` to `to` and reports what happened; never rejects on an SMTP failure. */
export async function attempt(
  sender: Sender,
  to: string,
  raw: Buffer = testMessage(),
  from = 'sender@mailroom.test',
): Promise<Attempt> {
  let bodyWritten = false;
  const hooks = { onBodyWritten: () => (bodyWritten = true) };
  try {
    const acceptance = await sender.send({ from, to }, raw, hooks);
    const observation = { responseCode: acceptance.responseCode, response: acceptance.response, bodyWritten };
    return described(observation, bodyWritten, { acceptance });
  } catch (err) {
    if (!(err instanceof SmtpSendError)) throw err;
    return described({ ...err.observation, bodyWritten }, bodyWritten, { error: err });
  }
}

function described(
  observation: SmtpObservation,
  bodyWritten: boolean,
  extra: { acceptance: RelayAcceptance } | { error: SmtpSendError },
): Attempt {
  const classification = classifySmtpOutcome(observation);
  return {
    observation,
    classification,
    outcome: classification.outcome,
    reason: classification.reason,
    bodyWritten,
    ...extra,
  };
}

let counter = 0;

/** A unique Message-ID (with angle brackets). */
export function newMessageId(): string {
  counter += 1;
  return `<conformance-${process.pid}-${counter}@mailroom.test>`;
}

/** A small CRLF message; `body` should end in CRLF for byte-identical comparisons. */
export function testMessage(options: { messageId?: string; subject?: string; body?: string } = {}): Buffer {
  const head =
    `From: sender@mailroom.test\r\nTo: rcpt@example.test\r\n` +
    `Subject: ${options.subject ?? 'conformance'}\r\nMessage-ID: ${options.messageId ?? newMessageId()}\r\n`;
  return Buffer.from(`${head}\r\n${options.body ?? 'Hello from the conformance tests.\r\n'}`, 'utf8');
}

/** A message of about `bytes` bytes: 76-character lines of letters. */
export function largeMessage(bytes: number): Buffer {
  const line = `${'abcdefghijklmnopqrstuvwxyz'.repeat(3).slice(0, 76)}\r\n`;
  const body = line.repeat(Math.ceil(bytes / line.length));
  return testMessage({ subject: 'large', body });
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What a scripted server received: every line, grouped by the chunk (TCP read) it came in. */
export interface ScriptedServer {
  readonly port: number;
  /** Every command line received, in order, across connections (message content is not included). */
  readonly lines: readonly string[];
  /** Command lines grouped by the read they arrived in: lines sent without waiting share a group. */
  readonly groups: readonly (readonly string[])[];
  /** Message contents received, as they arrived (dot-stuffed, without the final dot line). */
  readonly contents: readonly string[];
  /** Connections open right now. */
  readonly openConnections: number;
  /** How often a MAIL FROM came in the same read as the final dot before it (pipelined behind it). */
  readonly mailBehindDot: number;
  close(): Promise<void>;
}

/** How a scripted server behaves. */
export interface ScriptedServerOptions {
  /** EHLO keywords to advertise, or `'reject'` to answer EHLO with 502 (HELO is accepted). */
  readonly ehlo: readonly string[] | 'reject';
  /** Credentials AUTH LOGIN accepts (AUTH is refused without them). */
  readonly login?: { readonly user: string; readonly pass: string };
}

/**
 * A raw TCP SMTP server on 127.0.0.1 for what the sink cannot show or do: it records every command line and
 * how the lines were grouped, and scripts replies by address: a sender whose local part starts with
 * `blocked` gets 553 5.7.1, a recipient starting with `multiline` a two-line 550, one starting with
 * `lenient` a 550 followed by 354 to DATA all the same (a broken relay), one starting with `hangup` is
 * accepted and then the session is closed with an unsolicited 421 (a relay's idle timeout). It keeps the
 * transaction state (503 for commands out of order), so a client must RSET after a refused envelope.
 */
export async function startScriptedServer(options: ScriptedServerOptions): Promise<ScriptedServer> {
  const lines: string[] = [];
  const groups: string[][] = [];
  const contents: string[] = [];
  const sockets = new Set<Socket>();
  let mailBehindDot = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 scripted.mailroom.test ESMTP\r\n');
    let buffer = '';
    let content: string | undefined;
    let login: 'user' | 'pass' | undefined;
    let mailAccepted = false;
    let rcptAccepted: boolean | 'lenient' = false;
    /** Close the session with an unsolicited 421 once the current message is accepted. */
    let hangUp = false;
    let user = '';
    const reply = (line: string): string => {
      const verb = line.split(' ', 1)[0]?.toUpperCase() ?? '';
      const decoded = (text: string): string => Buffer.from(text, 'base64').toString('utf8');
      if (login === 'user') {
        login = 'pass';
        user = decoded(line);
        return '334 UGFzc3dvcmQ6';
      }
      if (login === 'pass') {
        login = undefined;
        const ok =
          options.login !== undefined && user === options.login.user && decoded(line) === options.login.pass;
        return ok ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication credentials invalid';
      }
      switch (verb) {
        case 'EHLO': {
          if (options.ehlo === 'reject') return '502 5.5.2 Error: command not recognized';
          const all = ['scripted.mailroom.test', ...options.ehlo];
          return all.map((k, i) => `250${i === all.length - 1 ? ' ' : '-'}${k}`).join('\r\n');
        }
        case 'HELO':
          return '250 scripted.mailroom.test';
        case 'AUTH':
          if (options.login === undefined || !/^AUTH LOGIN$/i.test(line))
            return '504 5.5.4 Unrecognized authentication type';
          login = 'user';
          return '334 VXNlcm5hbWU6';
        case 'MAIL':
          if (/^MAIL FROM:<blocked/i.test(line))
            return '553 5.7.1 Sender address rejected: not owned by user';
          if (mailAccepted) return '503 5.5.1 Error: nested MAIL command';
          mailAccepted = true;
          return '250 2.1.0 Ok';
        case 'RCPT':
          if (!mailAccepted) return '503 5.5.1 Error: need MAIL command';
          if (/^RCPT TO:<multiline/i.test(line)) {
            return '550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please check the address.';
          }
          if (/^RCPT TO:<hangup/i.test(line)) hangUp = true;
          if (/^RCPT TO:<lenient/i.test(line)) {
            // A broken relay: refuses the recipient, then takes DATA all the same.
            rcptAccepted = 'lenient';
            return '550 5.1.1 User unknown';
          }
          rcptAccepted = true;
          return '250 2.1.5 Ok';
        case 'DATA':
          if (rcptAccepted === false) return '503 5.5.1 Error: need RCPT command';
          content = '';
          return '354 End data with <CR><LF>.<CR><LF>';
        case 'RSET':
          mailAccepted = false;
          rcptAccepted = false;
          hangUp = false;
          return '250 2.0.0 Ok';
        case 'NOOP':
          return '250 2.0.0 Ok';
        case 'QUIT':
          return '221 2.0.0 Bye';
        default:
          return '502 5.5.2 Error: command not recognized';
      }
    };
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const group: string[] = [];
      const out: string[] = [];
      let dotInThisRead = false;
      // Bounded by the buffer: every pass consumes at least one line.
      for (let eol = buffer.indexOf('\n'); eol !== -1; eol = buffer.indexOf('\n')) {
        const line = buffer.slice(0, eol).replace(/\r$/, '');
        buffer = buffer.slice(eol + 1);
        if (content !== undefined) {
          if (line === '.') {
            dotInThisRead = true;
            contents.push(content);
            content = undefined;
            mailAccepted = false;
            rcptAccepted = false;
            out.push('250 2.0.0 Ok: queued');
            if (hangUp) {
              // The relay's idle timeout, as Postfix announces it: the client is idle when this arrives.
              socket.end(
                `${out.join('\r\n')}\r\n421 4.4.2 scripted.mailroom.test Error: timeout exceeded\r\n`,
              );
              return;
            }
          } else {
            content += `${line}\r\n`;
          }
          continue;
        }
        lines.push(line);
        group.push(line);
        if (dotInThisRead && /^MAIL FROM:/i.test(line)) mailBehindDot += 1;
        out.push(reply(line));
        if (/^QUIT$/i.test(line)) {
          socket.end(`${out.join('\r\n')}\r\n`);
          return;
        }
      }
      if (group.length > 0) groups.push(group);
      if (out.length > 0) socket.write(`${out.join('\r\n')}\r\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('scripted server has no address');
  return {
    port: address.port,
    lines,
    groups,
    contents,
    get openConnections() {
      return sockets.size;
    },
    get mailBehindDot() {
      return mailBehindDot;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
