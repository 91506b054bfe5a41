import MailComposer from 'nodemailer/lib/mail-composer';
import type { Mailbox } from '@mailroom/core';

export interface ComposableAttachment {
  readonly filename: string;
  readonly contentType: string;
  readonly contentId?: string;
  readonly content: Buffer;
}

/** A validated message, resolved from its job, ready to be written as MIME. */
export interface ComposableMessage {
  readonly from: Mailbox;
  readonly to: Mailbox;
  readonly replyTo?: Mailbox;
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly attachments: readonly ComposableAttachment[];
  /** The Message-ID header, with angle brackets, kept the same on every attempt. */
  readonly messageIdHeader: string;
  /** Date header; defaults to now. */
  readonly date?: Date;
}

function mailbox(m: Mailbox): { name: string; address: string } {
  return { name: m.name ?? '', address: m.address };
}

/**
 * Builds the RFC 5322 message with nodemailer's composer (transfer encodings, RFC 2047 headers, line
 * lengths). File and URL access are off: every part is content Mailroom already holds.
 */
export async function composeMessage(message: ComposableMessage): Promise<Buffer> {
  const composer = new MailComposer({
    from: mailbox(message.from),
    to: mailbox(message.to),
    ...(message.replyTo ? { replyTo: mailbox(message.replyTo) } : {}),
    subject: message.subject,
    ...(message.text === undefined ? {} : { text: message.text }),
    ...(message.html === undefined ? {} : { html: message.html }),
    headers: message.headers.map(([key, value]) => ({ key, value })),
    attachments: message.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: a.content,
      ...(a.contentId === undefined ? {} : { cid: a.contentId }),
    })),
    messageId: message.messageIdHeader,
    date: message.date ?? new Date(),
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return composer.compile().build();
}
