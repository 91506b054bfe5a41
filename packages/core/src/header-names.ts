/**
 * Extra headers a producer may set. Everything that shapes the message's structure, routing or
 * authentication is set by Mailroom (or the relay) alone, so a producer can never forge it.
 */
const ALLOWED_HEADER_NAMES = new Set(
  [
    'In-Reply-To',
    'References',
    'List-Id',
    'List-Unsubscribe',
    'List-Unsubscribe-Post',
    'List-Help',
    'List-Subscribe',
    'List-Owner',
    'List-Archive',
    'List-Post',
    'Precedence',
    'Auto-Submitted',
    'Keywords',
    'Comments',
    'Importance',
    'Priority',
  ].map((name) => name.toLowerCase()),
);

/** Named in errors so a producer learns why, not just that, a header was refused. */
const STRUCTURAL_HEADER_NAMES = new Set(
  [
    'From',
    'To',
    'Cc',
    'Bcc',
    'Sender',
    'Reply-To',
    'Subject',
    'Date',
    'Message-ID',
    'MIME-Version',
    'Received',
    'Return-Path',
    'DKIM-Signature',
    'Authentication-Results',
  ].map((name) => name.toLowerCase()),
);

/** Longest extra header name accepted, in characters (a header line must fit in 78 with its value folded). */
export const MAX_HEADER_NAME_CHARS = 76;

/** RFC 5322 field-name: printable ASCII except colon. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** True when `name` has RFC 5322 field-name syntax; says nothing about the allowlist. */
export function isHeaderNameSyntax(name: string): boolean {
  return name.length >= 1 && name.length <= MAX_HEADER_NAME_CHARS && FIELD_NAME.test(name);
}

/** True for a structural header (From, Content-*, ARC-*, ...) that only Mailroom or the relay may set. */
export function isStructuralHeaderName(name: string): boolean {
  const lower = name.toLowerCase();
  return STRUCTURAL_HEADER_NAMES.has(lower) || lower.startsWith('content-') || lower.startsWith('arc-');
}

/**
 * True when a producer may set this extra header: valid field-name syntax, and either an `X-` name or one
 * of the list, threading and priority headers on the allowlist. Case-insensitive.
 */
export function isAllowedHeaderName(name: string): boolean {
  if (!isHeaderNameSyntax(name) || isStructuralHeaderName(name)) return false;
  const lower = name.toLowerCase();
  return (lower.startsWith('x-') && lower.length > 2) || ALLOWED_HEADER_NAMES.has(lower);
}

/** Why `name` is refused, or undefined when it is allowed. */
export function headerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'header name is empty';
  if (name.length > MAX_HEADER_NAME_CHARS)
    return `header name is longer than ${MAX_HEADER_NAME_CHARS} characters`;
  if (!FIELD_NAME.test(name)) {
    return 'header name must be printable ASCII without spaces or ":" (RFC 5322 field-name)';
  }
  if (isStructuralHeaderName(name))
    return `${name} is set by Mailroom and cannot be given as an extra header`;
  if (!isAllowedHeaderName(name)) {
    return `${name} is not an allowed extra header (use an X- name or a List-*, threading or priority header)`;
  }
  return undefined;
}
