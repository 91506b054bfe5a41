// Helpers of the compiled-message tests: the concrete message nodemailer composes for the same recipient
// (the oracle), parsed comparison of both, and checks on the raw bytes.
import assert from 'node:assert/strict';
import { simpleParser, type ParsedMail } from 'mailparser';
import { parseMailbox, parseMessage, type Mailbox } from '@mailroom/core';
import { compileTemplate, type MessageTemplate, type RecipientFields } from '@mailroom/mime';
import { composeMessage } from '@mailroom/smtp';

export const DATE = new Date('2025-03-04T10:05:06Z');

/** A recipient with a validated mailbox, as a campaign would build it. */
export function recipient(
  to: string | { name?: string; address: string },
  vars: Record<string, unknown> = {},
  headers?: Record<string, string>,
  messageId = '<01jnmr6k7a0000000000000000@news.example.test>',
): RecipientFields {
  const mailbox: Mailbox = parseMailbox(to, 'to');
  return { to: mailbox, messageId, date: DATE, vars, ...(headers === undefined ? {} : { headers }) };
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#x27;',
  '`': '&#x60;',
  '=': '&#x3D;',
};

/**
 * The oracle's own merge: `{{name}}` replaced by the variable (HTML-escaped as Handlebars does when
 * `escape`), independent of the Handlebars code under test. The cases use no other mustache syntax.
 */
export function mergeSimple(
  source: string,
  vars: Readonly<Record<string, unknown>>,
  escape: boolean,
): string {
  return source.replace(/\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g, (_, name: string) => {
    const value = vars[name];
    const text = typeof value === 'string' ? value : ''; // the cases use string variables only
    return escape ? text.replace(/[&<>"'`=]/g, (c) => HTML_ESCAPES[c] ?? c) : text;
  });
}

function renderWith(
  source: string | undefined,
  vars: Readonly<Record<string, unknown>>,
  escape: boolean,
): string | undefined {
  return source === undefined ? undefined : mergeSimple(source, vars, escape);
}

/** The same message built the established way: Handlebars by hand, core validation, nodemailer's MailComposer. */
export async function composeConcrete(template: MessageTemplate, fields: RecipientFields): Promise<Buffer> {
  const text = renderWith(template.text, fields.vars, false);
  const html = renderWith(template.html, fields.vars, true);
  const message = parseMessage({
    ...template,
    to: fields.to,
    subject: renderWith(template.subject, fields.vars, false),
    ...(text === undefined ? {} : { text }),
    ...(html === undefined ? {} : { html }),
    headers: { ...template.headers, ...fields.headers },
  });
  return composeMessage({
    ...message,
    attachments: message.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: Buffer.from(a.content, 'base64'),
      ...(a.contentId === undefined ? {} : { contentId: a.contentId }),
    })),
    messageIdHeader: fields.messageId,
    date: fields.date,
  });
}

function addresses(parsed: ParsedMail, key: 'from' | 'to' | 'replyTo'): unknown {
  const value = parsed[key];
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  return list.flatMap((entry) => entry.value.map((m) => ({ name: m.name, address: m.address })));
}

/** A header as mailparser exposes it; List-* fields are gathered under `list`. */
function headerValue(parsed: ParsedMail, name: string): unknown {
  const key = name.toLowerCase();
  if (key.startsWith('list-')) {
    const list = parsed.headers.get('list') as Record<string, unknown> | undefined;
    return list?.[key.slice('list-'.length)];
  }
  return parsed.headers.get(key);
}

export interface Equivalence {
  readonly compiled: Buffer;
  readonly concrete: Buffer;
  readonly parsed: ParsedMail;
}

/**
 * Renders `template` for `fields` with compileTemplate, composes the same message with nodemailer, parses
 * both with mailparser and requires the same addresses, subject, ids, date, bodies (exact strings),
 * attachments (name, type, bytes, cid) and extra headers.
 */
export async function assertEquivalent(
  template: MessageTemplate,
  fields: RecipientFields,
): Promise<Equivalence> {
  const compiled = compileTemplate(template).render(fields);
  const concrete = await composeConcrete(template, fields);
  const [ours, theirs] = await Promise.all([simpleParser(compiled), simpleParser(concrete)]);
  for (const key of ['from', 'to', 'replyTo'] as const) {
    assert.deepEqual(addresses(ours, key), addresses(theirs, key), key);
  }
  assert.equal(ours.subject, theirs.subject, 'subject');
  assert.equal(ours.messageId, theirs.messageId, 'messageId');
  assert.equal(ours.messageId, fields.messageId, 'messageId as given');
  assert.equal(ours.date?.getTime(), theirs.date?.getTime(), 'date');
  assert.equal(ours.date?.getTime(), fields.date.getTime(), 'date as given');
  assert.equal(ours.text, theirs.text, 'text');
  assert.equal(ours.html, theirs.html, 'html');
  assert.deepEqual(
    ours.attachments.map((a) => [a.filename, a.contentType, a.contentDisposition, a.cid, a.content]),
    theirs.attachments.map((a) => [a.filename, a.contentType, a.contentDisposition, a.cid, a.content]),
    'attachments',
  );
  const extra = [...Object.keys(template.headers ?? {}), ...Object.keys(fields.headers ?? {})];
  for (const name of extra) {
    assert.notEqual(headerValue(ours, name), undefined, `header ${name} present`);
    assert.deepEqual(headerValue(ours, name), headerValue(theirs, name), `header ${name}`);
  }
  assertRawInvariants(compiled);
  return { compiled, concrete, parsed: ours };
}

/** Boundaries declared in Content-Type headers (folded headers unfolded first). */
export function declaredBoundaries(raw: string): string[] {
  const unfolded = raw.replace(/\r\n[ \t]+/g, ' ');
  return [...unfolded.matchAll(/boundary="([^"]+)"/g)].map((m) => m[1] as string);
}

/**
 * What every compiled message must satisfy: CRLF line ends only, ending with CRLF; no line over 998 octets;
 * only 7-bit bytes (all bodies are 7bit, quoted-printable or base64); each boundary appears only in its
 * header and its delimiter lines, once closed, never inside a part.
 */
export function assertRawInvariants(message: Buffer): void {
  for (let i = 0; i < message.length; i++) {
    const byte = message[i] as number;
    if (byte >= 0x80) assert.fail(`8-bit byte 0x${byte.toString(16)} at offset ${i}`);
    if (byte === 0x0d && message[i + 1] !== 0x0a) assert.fail(`bare CR at offset ${i}`);
    if (byte === 0x0a && message[i - 1] !== 0x0d) assert.fail(`bare LF at offset ${i}`);
    if (byte === 0) assert.fail(`NUL at offset ${i}`);
  }
  const raw = message.toString('latin1');
  assert.ok(raw.endsWith('\r\n'), 'ends with CRLF');
  const lines = raw.slice(0, -2).split('\r\n');
  for (const [index, line] of lines.entries()) {
    assert.ok(line.length <= 998, `line ${index + 1} has ${line.length} octets`);
  }
  for (const boundary of declaredBoundaries(raw)) {
    const occurrences = raw.split(boundary).length - 1;
    const delimiters = lines.filter((line) => line === `--${boundary}`).length;
    const closings = lines.filter((line) => line === `--${boundary}--`).length;
    assert.equal(closings, 1, `boundary ${boundary} closed once`);
    assert.ok(delimiters >= 1, `boundary ${boundary} delimits a part`);
    assert.equal(
      occurrences,
      1 + delimiters + closings,
      `boundary ${boundary} appears only in its header and delimiters`,
    );
  }
}

/** Deterministic binary content: every byte value, then a pseudo-random run. */
export function binaryBytes(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    if (i < 256) out[i] = i;
    else {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      out[i] = state & 0xff;
    }
  }
  return out;
}
