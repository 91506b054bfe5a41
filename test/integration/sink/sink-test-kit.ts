import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import type { Sink } from '@mailroom/sink';

/** The fields of a nodemailer error the tests look at. */
export interface SmtpClientError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

/** What nodemailer reports for a message the server accepted. */
export interface SentInfo {
  response: string;
  accepted: unknown[];
  rejected: unknown[];
}

/** The part of a nodemailer transport the tests use (pooled or not). */
export interface SinkClient {
  sendMail(mail: { envelope: { from: string; to: string | string[] }; raw: Buffer }): Promise<unknown>;
  close(): void;
}

const SHORT_TIMEOUTS = { connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 };

/**
 * Client for `sink`: one connection per message, plain SMTP to the sink's address (STARTTLS only if
 * the sink offers it or `requireTLS` is set), timeouts of a few seconds. `overrides` are nodemailer
 * SMTP transport options.
 */
export function clientFor(sink: Sink, overrides: SMTPTransportOptions = {}): SinkClient {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: false,
    ...SHORT_TIMEOUTS,
    ...overrides,
  });
}

/** Like {@link clientFor}, but pooled: connections are kept open and reused. */
export function pooledClientFor(sink: Sink, overrides: SMTPPoolOptions = {}): SinkClient {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: false,
    ...SHORT_TIMEOUTS,
    ...overrides,
    pool: true,
  });
}

let counter = 0;

/** A unique Message-ID value (with angle brackets) for a test message. */
export function newMessageId(): string {
  counter += 1;
  return `<sink-test-${process.pid}-${Date.now()}-${counter}@mailroom.test>`;
}

/** A small CRLF message with the given header fields (in order) and body. */
export function rawMessage(
  headers: readonly (readonly [string, string])[],
  body = 'Hello from the sink tests.\r\n',
): Buffer {
  const head = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return Buffer.from(`${head}\r\n${body}`, 'utf8');
}

/** A ready-made message for `to`, with a fresh Message-ID. */
export function simpleMessage(subject = 'sink test'): { raw: Buffer; messageId: string } {
  const messageId = newMessageId();
  const raw = rawMessage([
    ['From', 'sender@mailroom.test'],
    ['To', 'rcpt@mailroom.test'],
    ['Subject', subject],
    ['Message-ID', messageId],
  ]);
  return { raw, messageId };
}

/** Sends `raw` as is with an explicit envelope. */
export async function sendRaw(
  client: SinkClient,
  envelope: { from: string; to: string | string[] },
  raw: Buffer,
): Promise<SentInfo> {
  return (await client.sendMail({ envelope, raw })) as SentInfo;
}

/** Sends and expects a failure; returns nodemailer's error. */
export async function sendExpectingError(
  client: SinkClient,
  envelope: { from: string; to: string | string[] },
  raw: Buffer = simpleMessage().raw,
): Promise<SmtpClientError> {
  try {
    await client.sendMail({ envelope, raw });
  } catch (err) {
    assert.ok(err instanceof Error, 'nodemailer rejects with an Error');
    return err;
  }
  assert.fail(`sending to ${String(envelope.to)} was expected to fail but succeeded`);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Polls `condition` every 10 ms until it holds; throws after `timeoutMs`. For state that has no
 * event of its own (connection counters after a client gave up).
 */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The server closed the connection while a reply was awaited. */
export class DialogClosedError extends Error {
  override readonly name = 'DialogClosedError';
  readonly code = 'DIALOG_CLOSED';
  constructor() {
    super('the server closed the connection without a reply');
  }
}

/**
 * A hand-driven SMTP session over a plain socket, for what nodemailer hides: whether the server
 * closed the connection, and whether a reply came at all.
 */
export class SmtpDialog {
  private buffer = '';
  private readonly waiting: { resolve: (reply: string) => void; reject: (err: Error) => void }[] = [];
  private readonly replies: string[] = [];
  private isClosed = false;
  /** Resolves when the connection is closed, by either side. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        for (const waiter of this.waiting.splice(0)) waiter.reject(new DialogClosedError());
        resolve();
      });
    });
  }

  /** Connects and reads the greeting. */
  static async open(sink: Sink): Promise<{ dialog: SmtpDialog; greeting: string }> {
    const socket = connect({ host: sink.host, port: sink.port });
    await once(socket, 'connect');
    const dialog = new SmtpDialog(socket);
    return { dialog, greeting: await dialog.nextReply() };
  }

  /** Sends one command line and resolves with the complete reply to it. */
  command(line: string): Promise<string> {
    const reply = this.nextReply();
    this.socket.write(`${line}\r\n`);
    return reply;
  }

  /** Sends the message (already dot-stuffed, ending in CRLF) and the final dot; resolves with the reply. */
  message(raw: Buffer): Promise<string> {
    const reply = this.nextReply();
    this.socket.write(Buffer.concat([raw, Buffer.from('.\r\n')]));
    return reply;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private nextReply(): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.isClosed) return Promise.reject(new DialogClosedError());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    // A reply ends with the line whose code is followed by a space (RFC 5321 section 4.2.1).
    for (
      let end = this.buffer.search(/^\d{3} .*\r\n/m);
      end !== -1;
      end = this.buffer.search(/^\d{3} .*\r\n/m)
    ) {
      const lineEnd = this.buffer.indexOf('\r\n', end) + 2;
      const reply = this.buffer.slice(0, lineEnd - 2);
      this.buffer = this.buffer.slice(lineEnd);
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(reply);
      else this.replies.push(reply);
    }
  }
}
