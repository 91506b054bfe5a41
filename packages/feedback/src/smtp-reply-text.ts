/** Longest diagnostic kept, in characters: enough for any real reply, bounded for the ledger. */
export const MAX_DIAGNOSTIC_CHARS = 1000;
/** Raw diagnostic text read before it is cleaned up (a multi-line reply with its prefixes repeated). */
const MAX_RAW_DIAGNOSTIC_CHARS = 8 * MAX_DIAGNOSTIC_CHARS;

// Every pattern here runs on text from the network, so none has two unbounded quantifiers that can match
// the same characters one after the other: each costs linear time on any input.
const STATUS = String.raw`([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])`;
/** Where an enhanced status is trustworthy: after a reply code (`550 5.1.1`, `550-5.1.1`, `#550 5.1.1`). */
const STATUS_AFTER_REPLY = new RegExp(
  String.raw`(?<![\w.])[245]\d\d(?:[ \t]{1,8}|[ \t]{0,8}[-:][ \t]{0,8})` + STATUS,
);
/** qmail `(#5.1.1)`, Exchange `<server #5.1.1 smtp;550 ...>`, `Status: 5.1.1`. */
const STATUS_MARKED = new RegExp(String.raw`(?:#|\bStatus:[ \t]{0,8})` + STATUS, 'i');
/** A value that starts with the status, like a DSN `Status:` field or `5.1.1 user unknown`. */
const STATUS_FIRST = new RegExp(String.raw`^[ \t\r\n]{0,100}` + STATUS);
/**
 * A basic reply code: three digits starting 2, 4 or 5, followed by a space, a hyphen or `: `, and not part
 * of a longer number, an IP address, a time or a path.
 */
const REPLY_CODE = /(?<![\w.:/#-])([245]\d\d)(?=[ -]|:\s)/;
/** RFC 3464 diagnostic-type prefix, e.g. `smtp;` or `X-Postfix;`. */
const DIAGNOSTIC_TYPE = /^[ \t]{0,8}[A-Za-z0-9-]{1,40}[ \t]{0,8};[ \t]{0,8}/;
/** Continuation-line prefix of a multi-line reply: `550-5.1.1 ` or `550 5.1.1 ` (status optional). */
const CONTINUATION_PREFIX = /^([245]\d\d)[ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?/;

/** The RFC 3463 status (`5.1.1`) a text states, looking only where one is reliably written. */
export function enhancedStatusIn(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  for (const pattern of [STATUS_FIRST, STATUS_AFTER_REPLY, STATUS_MARKED]) {
    const match = pattern.exec(text);
    if (match !== null) return `${match[1]}.${Number(match[2])}.${Number(match[3])}`;
  }
  return undefined;
}

/** The first SMTP basic reply code in a text (`550`), if it has one. */
export function replyCodeIn(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = REPLY_CODE.exec(text);
  return match === null ? undefined : Number(match[1]);
}

/** Where the SMTP reply starts in a text (the position of its code), or -1. */
export function replyStart(text: string): number {
  const match = REPLY_CODE.exec(text);
  return match === null ? -1 : match.index;
}

/**
 * A diagnostic as one readable line: without the RFC 3464 type (`smtp;`), with the repeated code prefixes
 * of a multi-line reply dropped (`550-5.1.1 a` / `550 5.1.1 b` becomes `550 5.1.1 a b`), whitespace
 * collapsed, at most MAX_DIAGNOSTIC_CHARS characters. Undefined when nothing is left.
 */
export function diagnosticText(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const lines = raw
    .slice(0, MAX_RAW_DIAGNOSTIC_CHARS)
    .replace(DIAGNOSTIC_TYPE, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const first = lines[0];
  if (first === undefined) return undefined;
  const code = CONTINUATION_PREFIX.exec(first)?.[1];
  const parts = [code === undefined ? first : first.replace(/^(\d{3})-/, '$1 ')];
  for (const line of lines.slice(1)) {
    const prefix = CONTINUATION_PREFIX.exec(line);
    parts.push(prefix !== null && prefix[1] === code ? line.slice(prefix[0].length) : line);
  }
  const text = parts.join(' ').replace(/\s+/g, ' ').trim();
  if (text === '') return undefined;
  return text.length > MAX_DIAGNOSTIC_CHARS ? text.slice(0, MAX_DIAGNOSTIC_CHARS) : text;
}

/**
 * The status to report: `status` as given, except that a generic `x.0.0` gives way to a more specific
 * status of the same class in the diagnostic (Exim, Amazon SES and others write `Status: 5.0.0` above
 * `550 5.1.1`).
 */
export function refineStatus(status: string | undefined, diagnostic: string | undefined): string | undefined {
  const stated = enhancedStatusIn(diagnostic);
  if (status === undefined) return stated;
  if (stated !== undefined && /^[45]\.0\.0$/.test(status) && stated.charAt(0) === status.charAt(0)) {
    return stated;
  }
  return status;
}
