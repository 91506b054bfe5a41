import { z } from 'zod';
import { parseMailbox, type Mailbox } from './address.js';
import { base64DecodedBytes, base64Problem } from './base64.js';
import { controlCharacterProblem } from './control-characters.js';
import { ConfigError, ValidationError, type FieldIssue } from './errors.js';
import { headerNameProblem } from './header-names.js';
import { estimateMessageBytes } from './message-size.js';

/** Default largest message, as estimated encoded MIME: 10 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/** RFC 5322 line limit: a subject must fit on one line even unfolded, in characters. */
export const MAX_SUBJECT_CHARS = 998;
/** Longest extra header value, in characters. */
export const MAX_HEADER_VALUE_CHARS = 998;
export const MAX_EXTRA_HEADERS = 50;
export const MAX_ATTACHMENTS = 100;
export const MAX_TAGS = 20;
export const MAX_FILENAME_CHARS = 255;
/** Field name used in issues about the message as a whole (size, missing body). */
export const WHOLE_MESSAGE_FIELD = '(message)';

const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;
/** RFC 2045 token: printable ASCII without spaces and tspecials. */
const MIME_TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const CONTENT_TYPE = new RegExp(`^${MIME_TOKEN}/${MIME_TOKEN}$`);
/** Content-ID without angle brackets: atext, dots and `@`, as in `logo@mailroom`. */
const CONTENT_ID = /^[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]{1,250}$/;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** One attachment, decoded size known, content kept as the canonical base64 it arrived in. */
export interface Attachment {
  readonly filename: string;
  /** Lower-case `type/subtype`. */
  readonly contentType: string;
  /** Canonical base64 (no line breaks). */
  readonly content: string;
  /** Content-ID without angle brackets, for inline images (`cid:` references in html). */
  readonly contentId?: string;
  /** Decoded size in bytes. */
  readonly size: number;
}

/** A validated message for exactly one recipient. */
export interface Message {
  readonly from: Mailbox;
  readonly to: Mailbox;
  readonly replyTo?: Mailbox;
  readonly subject: string;
  /** Plain-text body; absent when not given or empty. */
  readonly text?: string;
  /** HTML body; absent when not given or empty. */
  readonly html?: string;
  /** Extra headers in the order given, names as given (case preserved); all on the allowlist. */
  readonly headers: readonly (readonly [name: string, value: string])[];
  readonly attachments: readonly Attachment[];
  readonly tags: readonly string[];
}

/** A mailbox as producers write it: `a@b.example`, `Name <a@b.example>` or `{ name?, address }`. */
export type MailboxInput = string | { readonly name?: string; readonly address: string };

export interface AttachmentInput {
  readonly filename: string;
  /** `type/subtype`; default `application/octet-stream`. */
  readonly contentType?: string;
  /** Standard base64, unbroken, padded. Never a path or URL. */
  readonly content: string;
  readonly contentId?: string;
}

/** What a producer may send: one recipient, base64 attachments, allowlisted extra headers. */
export interface MessageInput {
  readonly from: MailboxInput;
  readonly to: MailboxInput;
  readonly replyTo?: MailboxInput;
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly attachments?: readonly AttachmentInput[];
  readonly tags?: readonly string[];
}

export interface ParseMessageOptions {
  /** Largest accepted message as estimated encoded MIME, in bytes (default DEFAULT_MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

/** Error text for a wrong type; `is required` when the value is missing. */
function typeError(expected: string) {
  return (issue: { code?: string; input?: unknown }): string | undefined => {
    if (issue.code !== 'invalid_type') return undefined;
    return issue.input === undefined ? 'is required' : `must be ${expected}`;
  };
}

function custom(ctx: z.RefinementCtx, message: string, path?: PropertyKey[]): void {
  ctx.addIssue({ code: 'custom', message, ...(path === undefined ? {} : { path }) });
}

/** A mailbox field, parsed by parseMailbox so every address rule and message lives in one place. */
function mailboxField(field: string) {
  return z.unknown().transform((value, ctx): Mailbox => {
    try {
      return parseMailbox(value, field);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      for (const issue of err.issues) {
        ctx.addIssue({ code: 'custom', message: issue.message, params: { field: issue.field } });
      }
      return z.NEVER;
    }
  });
}

const subjectSchema = z.string({ error: typeError('a string') }).superRefine((subject, ctx) => {
  if (subject.trim() === '') custom(ctx, 'is empty');
  if (subject.length > MAX_SUBJECT_CHARS) {
    custom(ctx, `is longer than ${MAX_SUBJECT_CHARS} characters (${subject.length})`);
  }
  const control = controlCharacterProblem(subject);
  if (control !== undefined) custom(ctx, control);
});

/** Bodies may hold line breaks (the composer normalises them to CRLF) but never NUL. */
const bodySchema = z.string({ error: typeError('a string') }).superRefine((body, ctx) => {
  if (body.includes('\0')) custom(ctx, 'contains a NUL character (U+0000)');
});

/**
 * Extra headers, read by hand rather than with z.record so that a `__proto__` key from JSON is treated as
 * the (refused) header name it is and never as an object's prototype.
 */
const headersSchema = z.unknown().transform((value, ctx): (readonly [string, string])[] => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    custom(ctx, 'must be an object of header name to value');
    return z.NEVER;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_EXTRA_HEADERS) {
    custom(ctx, `has ${entries.length} headers, more than the limit of ${MAX_EXTRA_HEADERS}`);
  }
  const seen = new Set<string>();
  const headers: (readonly [string, string])[] = [];
  for (const [name, headerValue] of entries) {
    const nameProblem = headerNameProblem(name);
    if (nameProblem !== undefined) custom(ctx, nameProblem, [name]);
    else if (seen.has(name.toLowerCase()))
      custom(ctx, 'is given twice (header names are case-insensitive)', [name]);
    seen.add(name.toLowerCase());
    if (typeof headerValue !== 'string') {
      custom(ctx, 'must be a string', [name]);
      continue;
    }
    const control = controlCharacterProblem(headerValue);
    if (control !== undefined) custom(ctx, control, [name]);
    if (headerValue.length > MAX_HEADER_VALUE_CHARS) {
      custom(ctx, `is longer than ${MAX_HEADER_VALUE_CHARS} characters (${headerValue.length})`, [name]);
    }
    headers.push([name, headerValue]);
  }
  return headers;
});

const filenameSchema = z.string({ error: typeError('a string') }).superRefine((filename, ctx) => {
  if (filename.length === 0) custom(ctx, 'is empty');
  if (filename.length > MAX_FILENAME_CHARS) {
    custom(ctx, `is longer than ${MAX_FILENAME_CHARS} characters (${filename.length})`);
  }
  const control = controlCharacterProblem(filename);
  if (control !== undefined) custom(ctx, control);
  if (filename.includes('/') || filename.includes('\\')) custom(ctx, 'contains a path separator');
  if (filename === '.' || filename === '..') custom(ctx, 'is not a file name');
});

const attachmentSchema = z
  .strictObject(
    {
      filename: filenameSchema,
      contentType: z
        .string({ error: typeError('a string') })
        .regex(CONTENT_TYPE, 'must be a MIME type/subtype such as application/pdf, without parameters')
        .optional(),
      content: z.string({ error: typeError('a base64 string') }).superRefine((content, ctx) => {
        const problem = base64Problem(content);
        if (problem !== undefined) custom(ctx, problem);
      }),
      contentId: z
        .string({ error: typeError('a string') })
        .regex(CONTENT_ID, 'must be 1-250 characters of letters, digits, dots, "@" and RFC 5322 atext')
        .optional(),
    },
    { error: typeError('an object { filename, content, contentType?, contentId? }') },
  )
  .transform((a): Attachment => ({
    filename: a.filename,
    contentType: (a.contentType ?? DEFAULT_CONTENT_TYPE).toLowerCase(),
    content: a.content,
    ...(a.contentId === undefined ? {} : { contentId: a.contentId }),
    size: base64DecodedBytes(a.content),
  }));

const tagsSchema = z
  .array(
    z.string({ error: typeError('a string') }).regex(TAG, 'must be 1-64 characters of A-Z a-z 0-9 _ . : -'),
    {
      error: typeError('an array of strings'),
    },
  )
  .max(MAX_TAGS, `has more than ${MAX_TAGS} tags`);

function hasBody(value: unknown): boolean {
  const { text, html } = value as { text?: unknown; html?: unknown };
  return (text !== undefined && text !== '') || (html !== undefined && html !== '');
}

/**
 * The zod schema of what producers may send (MessageInput), producing a Message. Unknown keys are refused
 * at every level. parseMessage adds the size limit and turns issues into a ValidationError.
 */
export const messageInputSchema = z
  .strictObject(
    {
      from: mailboxField('from'),
      to: mailboxField('to'),
      replyTo: mailboxField('replyTo').optional(),
      subject: subjectSchema,
      text: bodySchema.optional(),
      html: bodySchema.optional(),
      headers: headersSchema.optional(),
      attachments: z
        .array(attachmentSchema, { error: typeError('an array') })
        .max(MAX_ATTACHMENTS, `has more than ${MAX_ATTACHMENTS} attachments`)
        .optional(),
      tags: tagsSchema.optional(),
    },
    { error: typeError('an object') },
  )
  .check(
    z.refine(hasBody, {
      message: 'has no body: give text, html or both',
      // Runs even when other fields failed, so a producer sees every problem at once.
      when: (payload) => typeof payload.value === 'object' && payload.value !== null,
    }),
  )
  .transform((m): Message => ({
    from: m.from,
    to: m.to,
    ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
    subject: m.subject,
    ...(m.text === undefined || m.text === '' ? {} : { text: m.text }),
    ...(m.html === undefined || m.html === '' ? {} : { html: m.html }),
    headers: m.headers ?? [],
    attachments: m.attachments ?? [],
    tags: m.tags ?? [],
  }));

/** Why some keys are refused, beyond "unknown": these are the ones attackers and old clients try. */
const REFUSED_KEYS = new Map<string, string>([
  ['cc', 'is not supported: a message has exactly one recipient, in "to"'],
  ['bcc', 'is not supported: a message has exactly one recipient, in "to"'],
  ['raw', 'is not accepted: Mailroom composes every message from its fields'],
  ['envelope', 'is not accepted: the SMTP envelope is always "from" and "to"'],
  ['path', 'is not accepted: attachments are base64 "content" only, never files'],
  ['href', 'is not accepted: attachments are base64 "content" only, never URLs'],
  ['httpHeaders', 'is not accepted: attachments are base64 "content" only, never URLs'],
]);

function fieldName(path: readonly PropertyKey[]): string {
  let field = '';
  for (const segment of path) {
    if (typeof segment === 'number') field += `[${segment}]`;
    else field += field === '' ? String(segment) : `.${String(segment)}`;
  }
  return field === '' ? WHOLE_MESSAGE_FIELD : field;
}

function toFieldIssues(issues: readonly z.core.$ZodIssue[]): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const parent = issue.path.length === 0 ? '' : `${fieldName(issue.path)}.`;
      for (const key of issue.keys) {
        out.push({ field: parent + key, message: REFUSED_KEYS.get(key) ?? 'is not a recognised field' });
      }
      continue;
    }
    const override =
      issue.code === 'custom' ? (issue.params as { field?: unknown } | undefined)?.field : undefined;
    out.push({
      field: typeof override === 'string' ? override : fieldName(issue.path),
      message: issue.message,
    });
  }
  return out;
}

/**
 * A lower bound of the encoded size read straight from the raw input, so an oversized message is reported
 * together with its other problems even when it could not be fully parsed.
 */
function rawSizeLowerBound(input: unknown): number {
  if (typeof input !== 'object' || input === null) return 0;
  const { text, html, attachments } = input as Record<string, unknown>;
  let total = 0;
  if (typeof text === 'string') total += Buffer.byteLength(text);
  if (typeof html === 'string') total += Buffer.byteLength(html);
  if (Array.isArray(attachments)) {
    for (const attachment of attachments as unknown[]) {
      const content = (attachment as { content?: unknown } | null)?.content;
      if (typeof content === 'string') total += content.length;
    }
  }
  return total;
}

function sizeIssue(size: number, limit: number, estimated: 'at least' | 'about'): FieldIssue {
  return {
    field: WHOLE_MESSAGE_FIELD,
    message: `is ${estimated} ${size} bytes as encoded MIME, over the limit of ${limit} bytes`,
  };
}

/**
 * Validates a producer's message. Throws ValidationError listing every issue (field names such as `to`,
 * `headers.X-Campaign`, `attachments[0].content`, `(message)`), or ConfigError for a bad option.
 */
export function parseMessage(input: unknown, options: ParseMessageOptions = {}): Message {
  const limit = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new ConfigError([
      { field: 'maxMessageBytes', message: `must be a positive integer (got ${limit})` },
    ]);
  }
  const result = messageInputSchema.safeParse(input);
  if (!result.success) {
    const issues = toFieldIssues(result.error.issues);
    const lowerBound = rawSizeLowerBound(input);
    if (lowerBound > limit) issues.push(sizeIssue(lowerBound, limit, 'at least'));
    throw new ValidationError(issues);
  }
  const size = estimateMessageBytes(result.data);
  if (size > limit) throw new ValidationError([sizeIssue(size, limit, 'about')]);
  return result.data;
}
