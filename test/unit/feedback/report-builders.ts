import { newMessageId } from '@mailroom/core';
import { encodeVerp, type VerpOptions } from '@mailroom/feedback';

/** VERP settings of the synthetic reports (the corpus has its own, in expected.json). */
export const VERP: VerpOptions = {
  localPrefix: 'bounces',
  domain: 'bounce.example.com',
  secret: 'unit-test-verp-secret-0123456789',
};

/** A message Mailroom sent: its id, Message-ID and signed return path. */
export interface SentMessage {
  readonly id: string;
  readonly messageId: string;
  readonly returnPath: string;
}

export function sentMessage(now?: number): SentMessage {
  const id = newMessageId(now);
  return { id, messageId: `<${id}@example.com>`, returnPath: encodeVerp(id, VERP) };
}

/** The header block of a returned message (with the return path it was sent with, or `returnPath`). */
export function returnedHeaders(sent: SentMessage, to: string, returnPath = sent.returnPath): string {
  return [
    `Return-Path: <${returnPath}>`,
    'From: Example News <news@example.com>',
    `To: ${to}`,
    'Subject: March product update',
    `Message-ID: ${sent.messageId}`,
    '',
  ].join('\r\n');
}

/** A message with the given header fields (in order) and body, CRLF line ends. */
export function message(headers: readonly (readonly [string, string])[], body: string): string {
  return `${headers.map(([name, value]) => `${name}: ${value}`).join('\r\n')}\r\n\r\n${body.replace(/\r?\n/g, '\r\n')}`;
}

export interface DsnInput {
  /** The report's To (the return path it was sent to). */
  readonly to: string;
  /** Per-recipient field groups, each as its lines (`Final-Recipient: rfc822; x@y`, `Action: failed`). */
  readonly recipients: readonly (readonly string[])[];
  /** Text of the human-readable part. */
  readonly text?: string;
  /** The returned message's headers (a text/rfc822-headers part), if any. */
  readonly returned?: string;
  readonly from?: string;
}

/** An RFC 3464 multipart/report delivery status notification. */
export function dsnMessage(input: DsnInput): string {
  const boundary = 'dsn-boundary-0001';
  const groups = input.recipients.map((lines) => lines.join('\n')).join('\n\n');
  const parts = [
    `--${boundary}\nContent-Type: text/plain; charset=us-ascii\n\n${input.text ?? 'Delivery report.'}\n`,
    `--${boundary}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n${groups}\n`,
    ...(input.returned === undefined
      ? []
      : [`--${boundary}\nContent-Type: text/rfc822-headers\n\n${input.returned}`]),
    `--${boundary}--\n`,
  ];
  return message(
    [
      ['From', input.from ?? 'MAILER-DAEMON@mx.example.net (Mail Delivery System)'],
      ['To', input.to],
      ['Subject', 'Delivery Status Notification'],
      ['MIME-Version', '1.0'],
      ['Content-Type', `multipart/report; report-type=delivery-status; boundary="${boundary}"`],
    ],
    parts.join('\n'),
  );
}

export interface ArfInput {
  readonly feedbackFields: readonly string[];
  readonly returned: string;
  readonly from?: string;
}

/** An RFC 5965 feedback report. */
export function arfMessage(input: ArfInput): string {
  const boundary = 'arf-boundary-0001';
  return message(
    [
      ['From', input.from ?? 'fbl@isp.example.net'],
      ['To', 'fbl@example.com'],
      ['Subject', 'Abuse report'],
      ['MIME-Version', '1.0'],
      ['Content-Type', `multipart/report; report-type=feedback-report; boundary="${boundary}"`],
    ],
    [
      `--${boundary}\nContent-Type: text/plain\n\nThis is an email abuse report.\n`,
      `--${boundary}\nContent-Type: message/feedback-report\n\n${input.feedbackFields.join('\n')}\n`,
      `--${boundary}\nContent-Type: text/rfc822-headers\n\n${input.returned}`,
      `--${boundary}--\n`,
    ].join('\n'),
  );
}
