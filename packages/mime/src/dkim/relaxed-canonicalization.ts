/**
 * DKIM "relaxed" canonicalization (RFC 6376 section 3.4.2 for header fields, 3.4.4 for the body), written as
 * single passes over the characters: no regular expression, so no input can make it backtrack, and the
 * body is read once.
 */

const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const LF = 0x0a;

/**
 * A header field's value in relaxed form: unfolded, every run of SP/HTAB as one SP, no whitespace at the
 * start or the end. `value` is what follows the colon, as a latin1 string (one character per octet), so
 * non-ASCII octets pass through unchanged.
 */
export function relaxedHeaderValue(value: string): string {
  let out = '';
  let wordStart = -1;
  let spaceBefore = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Inside a field a CRLF is always followed by SP or HTAB (a fold): deleting the CRLF and collapsing the
    // whitespace is the same as treating CR and LF as whitespace here.
    if (c === SP || c === HT || c === CR || c === LF) {
      if (wordStart >= 0) {
        out += value.slice(wordStart, i);
        wordStart = -1;
        spaceBefore = true;
      }
      continue;
    }
    if (wordStart < 0) {
      if (spaceBefore) out += ' ';
      wordStart = i;
    }
  }
  if (wordStart >= 0) out += value.slice(wordStart);
  return out;
}

/** One header field in relaxed form with its CRLF: `lower-case-name:relaxed value\r\n`. */
export function relaxedHeaderField(name: string, value: string): string {
  return `${name.toLowerCase()}:${relaxedHeaderValue(value)}\r\n`;
}

/**
 * Grows as needed and is reused by every call, so a body is canonicalized without allocating: the result
 * is only valid until the next call (the signer hashes it at once).
 */
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * The body from `start` to the end of `raw` in relaxed form: whitespace at the end of each line removed,
 * other runs of SP/HTAB as one SP, empty lines at the end removed, and a final CRLF when anything is left
 * (an empty or blank body canonicalizes to nothing).
 *
 * A bare CR or a bare LF counts as a line break, as CRLF: the SMTP client turns each into CRLF on the wire
 * (RFC 5321 section 2.3.8), so the hash covers the bytes the receiver will see.
 *
 * Returns a view of a shared buffer that the next call overwrites; hash or copy it before calling again.
 */
export function relaxedBody(raw: Uint8Array, start = 0): Buffer {
  // Worst case: every byte a bare line end, each becoming two bytes, plus a final CRLF.
  const need = (raw.length - start) * 2 + 2;
  if (scratch.length < need) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  const out = scratch;
  let length = 0;
  /** Output length after the last line break that ended a line with content. */
  let contentEnd = 0;
  let lineHasContent = false;
  let pendingSpace = false;
  for (let i = start; i < raw.length; i++) {
    const c = raw[i] as number;
    // Printable octets (and every octet of UTF-8 text) first: the usual case, one branch.
    if (c > SP) {
      if (pendingSpace) {
        out[length++] = SP;
        pendingSpace = false;
      }
      out[length++] = c;
      lineHasContent = true;
      continue;
    }
    if (c === SP || c === HT) {
      pendingSpace = true;
      continue;
    }
    if (c === CR || c === LF) {
      if (c === CR && raw[i + 1] === LF) i++;
      // Whitespace before the line break is dropped; a line of only whitespace becomes an empty line.
      pendingSpace = false;
      out[length++] = CR;
      out[length++] = LF;
      if (lineHasContent) contentEnd = length;
      lineHasContent = false;
      continue;
    }
    // Other control octets are content.
    if (pendingSpace) {
      out[length++] = SP;
      pendingSpace = false;
    }
    out[length++] = c;
    lineHasContent = true;
  }
  if (lineHasContent) {
    // The last line had no line break: relaxed adds one.
    out[length++] = CR;
    out[length++] = LF;
    contentEnd = length;
  }
  return out.subarray(0, contentEnd);
}
