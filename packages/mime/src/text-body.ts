import { encodeBase64Lines } from './base64-lines.js';
import { BOUNDARY_MARKER } from './boundaries.js';
import { encodeQuotedPrintable } from './quoted-printable.js';

export type TextTransferEncoding = '7bit' | 'quoted-printable' | 'base64';

/** A text part's body as it goes on the wire, with the encoding its Content-Transfer-Encoding names. */
export interface EncodedText {
  readonly encoding: TextTransferEncoding;
  /** 7-bit bytes, CRLF line breaks only. */
  readonly body: Buffer;
}

/** Longest line sent as 7bit; longer lines go quoted-printable (nodemailer's threshold). */
const SEVEN_BIT_MAX_LINE_CHARS = 76;
const LINE_BREAKS = /\r\n|\r|\n/g;
/** Controls other than TAB, CR and LF, and DEL: never sent as 7bit. */
// eslint-disable-next-line no-control-regex -- finding control characters is the purpose
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
const BARE_LINE_BREAK = /\r(?!\n)|(?<!\r)\n/;

/** True when some line (split at CR, LF or CRLF) is longer than `max`; indexOf keeps it linear and native. */
function hasLongLine(text: string, max: number): boolean {
  let start = 0;
  for (;;) {
    const lf = text.indexOf('\n', start);
    const end = lf < 0 ? text.length : lf;
    if (end - start > max) {
      // Only a lone CR inside the segment could still split it into short lines.
      let from = start;
      for (;;) {
        const cr = text.indexOf('\r', from);
        const stop = cr < 0 || cr >= end ? end : cr;
        if (stop - from > max) return true;
        if (stop === end) break;
        from = stop + 1;
      }
    }
    if (lf < 0) return false;
    start = lf + 1;
  }
}

/** nodemailer's rule: quoted-printable when Latin letters outnumber non-ASCII and control characters. */
function latinDominates(text: string): boolean {
  let latin = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) latin += 1;
    else if (code >= 0x80 || (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d)) other += 1;
  }
  return other < latin;
}

function canonicalLineBreaks(text: string): string {
  return BARE_LINE_BREAK.test(text) ? text.replace(LINE_BREAKS, '\r\n') : text;
}

/**
 * Encodes a text/plain or text/html body as nodemailer chooses: 7bit when it is printable ASCII with lines
 * of at most 76 characters (and holds no boundary marker `=_`); otherwise quoted-printable, except for text
 * where non-Latin characters dominate (CJK), which goes base64 because QP would triple it. Line breaks of
 * any style become CRLF. The cheap native checks (byte length, indexOf) come first: a 2 KB newsletter part
 * is decided without a character loop.
 */
export function encodeTextBody(text: string): EncodedText {
  const ascii = Buffer.byteLength(text, 'utf8') === text.length;
  if (
    ascii &&
    !text.includes(BOUNDARY_MARKER) &&
    !hasLongLine(text, SEVEN_BIT_MAX_LINE_CHARS) &&
    !CONTROL.test(text)
  ) {
    return { encoding: '7bit', body: Buffer.from(canonicalLineBreaks(text), 'latin1') };
  }
  // ASCII goes quoted-printable whatever its letters (nodemailer would pick base64 for ASCII with more
  // controls than letters): it stays readable and is larger only for text made mostly of escapes.
  if (ascii || latinDominates(text))
    return { encoding: 'quoted-printable', body: encodeQuotedPrintable(text) };
  return { encoding: 'base64', body: encodeBase64Lines(Buffer.from(canonicalLineBreaks(text), 'utf8')) };
}
