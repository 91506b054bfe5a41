/** Longest encoded line, soft-break `=` included (RFC 2045 6.7 rule 5). */
export const QP_MAX_LINE_CHARS = 76;

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const EQUALS = 0x3d;
const HEX_DIGITS = Buffer.from('0123456789ABCDEF', 'latin1');

/** Worst-case output of bodies up to ~20 KB is written here first, then copied out at its exact size. */
const SCRATCH_BYTES = 64 * 1024;
const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/** What the encoder does with each byte value. */
const LITERAL = 0;
const ESCAPE = 1;
const LINE_BREAK = 2;
const BLANK = 3;
const CONTINUATION = 4;
const LEAD_2 = 5;
const LEAD_3 = 6;
const LEAD_4 = 7;
const BYTE_KIND = new Uint8Array(256).fill(ESCAPE);
for (let byte = 0x21; byte <= 0x7e; byte++) if (byte !== EQUALS) BYTE_KIND[byte] = LITERAL;
BYTE_KIND[CR] = LINE_BREAK;
BYTE_KIND[LF] = LINE_BREAK;
BYTE_KIND[SPACE] = BLANK;
BYTE_KIND[TAB] = BLANK;
BYTE_KIND.fill(CONTINUATION, 0x80, 0xc0);
BYTE_KIND.fill(LEAD_2, 0xc0, 0xe0);
BYTE_KIND.fill(LEAD_3, 0xe0, 0xf0);
BYTE_KIND.fill(LEAD_4, 0xf0, 0x100);
/** Characters a byte of each kind needs on the current line (a lead byte reserves its whole character). */
const ROOM = Uint8Array.from([1, 3, 0, 1, 0, 6, 9, 12]);

/**
 * Quoted-printable body (RFC 2045 6.7) of a text: UTF-8 bytes, every line break (CRLF, LF or a lone CR)
 * written as CRLF, trailing spaces and tabs before a line break encoded, soft line breaks so no line exceeds
 * 76 characters, and the escapes of one character kept on one line (as nodemailer does). The output is
 * 7-bit and never contains `=` followed by anything but two hex digits or a line break, which is why
 * boundaries containing `=_` can never occur in it.
 */
export function encodeQuotedPrintable(text: string): Buffer {
  const input = Buffer.from(text, 'utf8');
  const length = input.length;
  // Every byte becomes at most 3 characters; a soft break (3 bytes) comes at most every 63 characters.
  const bound = length * 3 + 3 * (Math.ceil((length * 3) / 63) + 1);
  const out = bound <= SCRATCH_BYTES ? scratch : Buffer.allocUnsafe(bound);
  const maxContent = QP_MAX_LINE_CHARS - 1;
  let pos = 0;
  let column = 0;
  for (let i = 0; i < length; i++) {
    const byte = input[i] as number;
    let kind = BYTE_KIND[byte] as number;
    if (kind === LINE_BREAK) {
      if (byte === CR && input[i + 1] === LF) i++;
      out[pos++] = CR;
      out[pos++] = LF;
      column = 0;
      continue;
    }
    if (kind === BLANK) {
      const next = input[i + 1];
      // Whitespace at the end of a line would be stripped in transit, so it is escaped there.
      if (next === undefined || next === CR || next === LF) kind = ESCAPE;
    }
    if (column + (ROOM[kind] as number) > maxContent) {
      out[pos++] = EQUALS;
      out[pos++] = CR;
      out[pos++] = LF;
      column = 0;
    }
    if (kind === LITERAL || kind === BLANK) {
      out[pos++] = byte;
      column += 1;
    } else {
      out[pos++] = EQUALS;
      out[pos++] = HEX_DIGITS[byte >> 4] as number;
      out[pos++] = HEX_DIGITS[byte & 0x0f] as number;
      column += 3;
    }
  }
  // A copy of the exact size comes from Node's buffer pool, cheaper than a fresh worst-case allocation.
  return out === scratch ? Buffer.from(out.subarray(0, pos)) : out.subarray(0, pos);
}
