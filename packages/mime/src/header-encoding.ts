import libmime from 'libmime';
import type { Mailbox } from '@mailroom/core';

/** Lines are folded to this many characters where whitespace allows (RFC 5322 2.1.1 "SHOULD" 78, minus margin). */
export const HEADER_FOLD_CHARS = 76;
/** RFC 5322 2.1.1 hard limit on a line, CRLF excluded, in octets. */
export const MAX_LINE_OCTETS = 998;
/** Longest encoded-word nodemailer writes; words are separated by spaces, so folding can split them. */
const ENCODED_WORD_CHARS = 52;

const NON_ASCII = /[^\x20-\x7e]/;
/** Display names made of these stay bare; other ASCII names are quoted (nodemailer's rule). */
const BARE_NAME = /^[\w ]*$/;
/** An address with no specials can be written without angle brackets (nodemailer's PLAIN_ADDRESS). */
const PLAIN_ADDRESS = /^[^\s"(),:;<>@[\\\]]+@[^\s"(),:;<>@[\\\]]+$/;

/** `Q` when Latin letters outnumber other characters, else `B` (nodemailer's choice for encoded-words). */
export function wordEncodingFor(value: string): 'Q' | 'B' {
  let latin = 0;
  let other = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) latin += 1;
    else if (code >= 0x80 || (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d)) other += 1;
  }
  return other < latin ? 'Q' : 'B';
}

/** The whole value as RFC 2047 encoded-words of at most 52 characters each, separated by spaces. */
export function encodeWords(value: string): string {
  return libmime.encodeWord(value, wordEncodingFor(value), ENCODED_WORD_CHARS);
}

/**
 * An unstructured header value (Subject, X-*) ready for the wire: as is when it is printable ASCII and holds
 * nothing a reader would decode (`=?`), else entirely as encoded-words, as nodemailer does so that clients
 * which drop whitespace around encoded-words do not glue words together.
 */
export function encodeHeaderText(value: string): string {
  return NON_ASCII.test(value) || value.includes('=?') ? encodeWords(value) : value;
}

/** True when the value would be written as encoded-words by encodeHeaderText. */
export function needsEncodedWords(value: string): boolean {
  return NON_ASCII.test(value) || value.includes('=?');
}

/** `"..."` with `"` and `\` escaped. */
function quoteString(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** A display name as nodemailer writes it: bare words, a quoted string, or encoded-words when not ASCII. */
export function encodeDisplayName(name: string): string {
  if (BARE_NAME.test(name)) return name;
  if (!NON_ASCII.test(name)) return quoteString(name);
  return encodeWords(name);
}

/** `Name <local@domain>` or the bare address; the address is already ASCII (core punycodes domains). */
export function formatMailbox(mailbox: Mailbox): string {
  const { name, address } = mailbox;
  if (name === undefined || name === '') return PLAIN_ADDRESS.test(address) ? address : `<${address}>`;
  return `${encodeDisplayName(name)} <${address}>`;
}

let lastDateSecond = Number.NaN;
let lastDateText = '';

/** Date header value: RFC 5322 date-time in UTC, as nodemailer writes it; the last second's text is reused. */
export function formatDate(date: Date): string {
  const second = Math.floor(date.getTime() / 1000);
  if (second !== lastDateSecond) {
    lastDateText = date.toUTCString().replace('GMT', '+0000');
    lastDateSecond = second;
  }
  return lastDateText;
}

/** Length of the longest CRLF-separated line of `text`. */
export function longestLine(text: string): number {
  let longest = 0;
  let start = 0;
  for (;;) {
    const end = text.indexOf('\r\n', start);
    const length = (end < 0 ? text.length : end) - start;
    if (length > longest) longest = length;
    if (end < 0) return longest;
    start = end + 2;
  }
}

/**
 * `Name: value` CRLF, folded at whitespace so lines stay within 76 characters where the value allows.
 * A run without whitespace stays whole, so the caller checks the result against MAX_LINE_OCTETS.
 */
export function foldHeader(name: string, value: string): string {
  const line = `${name}: ${value}`;
  if (line.length <= HEADER_FOLD_CHARS) return `${line}\r\n`;
  return `${libmime.foldLines(line, HEADER_FOLD_CHARS)}\r\n`;
}

/** True when every line of a folded header (CRLF included at the end) fits in 998 octets. */
export function fitsLineLimit(folded: string): boolean {
  // +2: the trailing CRLF. Short headers need no scan.
  return folded.length <= MAX_LINE_OCTETS + 2 || longestLine(folded.slice(0, -2)) <= MAX_LINE_OCTETS;
}
