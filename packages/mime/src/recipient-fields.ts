import {
  controlCharacterProblem,
  headerNameProblem,
  MAX_DISPLAY_NAME_CHARS,
  MAX_EXTRA_HEADERS,
  MAX_HEADER_VALUE_CHARS,
  type FieldIssue,
  type Mailbox,
} from '@mailroom/core';
import { extraHeader } from './header-fields.js';
import { foldHeader, formatDate, formatMailbox } from './header-encoding.js';

/** What differs per recipient when a compiled template is rendered. */
export interface RecipientFields {
  /** A mailbox validated by core (parseMailbox / parseMessage): ASCII address, punycode domain. */
  readonly to: Mailbox;
  /** The Message-ID header value with angle brackets, e.g. from core's messageIdHeader(). */
  readonly messageId: string;
  readonly date: Date;
  /** Merge variables for the subject, text and html templates. */
  readonly vars: Readonly<Record<string, unknown>>;
  /** Extra headers for this recipient only (List-Unsubscribe, List-Unsubscribe-Post, ...), same allowlist. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A core-validated address is printable ASCII with one `@` outside quotes; this re-check is what keeps a
 * value that skipped validation from breaking out of `<...>` or the header line.
 */
const SAFE_ADDRESS = /^[\x20-\x3b\x3d\x3f-\x7e]+@[A-Za-z0-9.-]+$/;
/** `<left@right>`: printable ASCII without spaces or angle brackets inside. */
const MESSAGE_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/;
const MAX_MESSAGE_ID_CHARS = 250;

/** `To:` header lines, or undefined after adding issues naming `to.address` / `to.name`. */
export function toHeader(to: Mailbox, issues: FieldIssue[]): string | undefined {
  const before = issues.length;
  const { name, address } = to as { name?: unknown; address?: unknown };
  if (typeof address !== 'string' || address.length > 254 || !SAFE_ADDRESS.test(address)) {
    issues.push({ field: 'to.address', message: 'is not a validated address (use parseMailbox from core)' });
  }
  if (name !== undefined) {
    if (typeof name !== 'string') issues.push({ field: 'to.name', message: 'must be a string' });
    else {
      const control = controlCharacterProblem(name);
      if (control !== undefined) issues.push({ field: 'to.name', message: control });
      else if (name.length > MAX_DISPLAY_NAME_CHARS) {
        issues.push({
          field: 'to.name',
          message: `is longer than ${MAX_DISPLAY_NAME_CHARS} characters (${name.length})`,
        });
      }
    }
  }
  return issues.length > before ? undefined : foldHeader('To', formatMailbox(to));
}

/** `Message-ID:` and `Date:` header lines, or undefined after adding issues naming `messageId` / `date`. */
export function idAndDateHeaders(messageId: string, date: Date, issues: FieldIssue[]): string | undefined {
  const before = issues.length;
  if (
    typeof messageId !== 'string' ||
    messageId.length > MAX_MESSAGE_ID_CHARS ||
    !MESSAGE_ID.test(messageId)
  ) {
    issues.push({
      field: 'messageId',
      message: 'must be "<id@domain>" in printable ASCII, at most 250 characters',
    });
  }
  if (!(date instanceof Date) || !Number.isFinite(date.getTime())) {
    issues.push({ field: 'date', message: 'must be a valid Date' });
  }
  if (issues.length > before) return undefined;
  return `Message-ID: ${messageId}\r\nDate: ${formatDate(date)}\r\n`;
}

/**
 * The recipient's extra headers as folded lines, checked like a Message's (allowlist, no control
 * characters, length, count) and refused when the template already sets the same header. Issues name
 * `headers.<name>`.
 */
export function recipientHeaders(
  headers: Readonly<Record<string, string>> | undefined,
  templateHeaderNames: ReadonlySet<string>,
  issues: FieldIssue[],
): string {
  if (headers === undefined) return '';
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    issues.push({ field: 'headers', message: 'must be an object of header name to value' });
    return '';
  }
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length + templateHeaderNames.size > MAX_EXTRA_HEADERS) {
    issues.push({
      field: 'headers',
      message: `has ${entries.length} headers; with the template's ${templateHeaderNames.size} that is more than the limit of ${MAX_EXTRA_HEADERS}`,
    });
    return '';
  }
  let out = '';
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    const field = `headers.${name}`;
    const lower = name.toLowerCase();
    const nameProblem = headerNameProblem(name);
    if (nameProblem !== undefined) {
      issues.push({ field, message: nameProblem });
      continue;
    }
    if (templateHeaderNames.has(lower)) {
      issues.push({ field, message: 'is already set by the template' });
      continue;
    }
    if (seen.has(lower)) {
      issues.push({ field, message: 'is given twice (header names are case-insensitive)' });
      continue;
    }
    seen.add(lower);
    if (typeof value !== 'string') {
      issues.push({ field, message: 'must be a string' });
      continue;
    }
    const control = controlCharacterProblem(value);
    if (control !== undefined) {
      issues.push({ field, message: control });
      continue;
    }
    if (value.length > MAX_HEADER_VALUE_CHARS) {
      issues.push({
        field,
        message: `is longer than ${MAX_HEADER_VALUE_CHARS} characters (${value.length})`,
      });
      continue;
    }
    out += extraHeader(name, value, field, issues) ?? '';
  }
  return out;
}
