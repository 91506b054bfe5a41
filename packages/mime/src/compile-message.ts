import type { Message } from '@mailroom/core';
import { MessageProgram } from './message-program.js';

export interface CompileMessageOptions {
  /** The Message-ID header value, with angle brackets, kept the same on every attempt. */
  readonly messageId: string;
  /** Date header; defaults to now. */
  readonly date?: Date;
  /** Largest message accepted, as encoded MIME in bytes. Default 10 MiB (core's). */
  readonly maxMessageBytes?: number;
}

function literal(text: string): { staticText: string; render(): string } {
  return { staticText: text, render: () => text };
}

/**
 * One validated Message as RFC 5322 bytes through the same path as compiled templates (its subject and
 * bodies are literal text, never templates): CRLF line ends, NOT dot-stuffed. Throws ValidationError when
 * a part cannot be written (e.g. a structured header with a run longer than a line).
 */
export function compileMessage(message: Message, options: CompileMessageOptions): Buffer {
  const program = new MessageProgram(
    {
      from: message.from,
      ...(message.replyTo === undefined ? {} : { replyTo: message.replyTo }),
      subject: literal(message.subject),
      ...(message.text === undefined ? {} : { text: { field: 'text', ...literal(message.text) } }),
      ...(message.html === undefined ? {} : { html: { field: 'html', ...literal(message.html) } }),
      headers: message.headers,
      attachments: message.attachments,
    },
    options.maxMessageBytes,
  );
  return program.render({
    to: message.to,
    messageId: options.messageId,
    date: options.date ?? new Date(),
    vars: {},
  });
}
