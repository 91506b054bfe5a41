const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');

/** A message ready for DATA: what goes between the 354 reply and the final `.<CRLF>`. */
export interface StuffedMessage {
  /** The message with CRLF line ends only, every line starting with `.` given another `.`, ending in CRLF. */
  readonly body: Buffer;
  /** Octets the relay counts against SIZE (RFC 1870): the message with CRLF line ends, unstuffed. */
  readonly sizeBytes: number;
}

/** The end of the mail data after a body that ends in CRLF (RFC 5321 section 4.1.1.4). */
export const END_OF_DATA = Buffer.from('.\r\n');

/**
 * Prepares raw MIME for DATA (RFC 5321 section 4.5.2): bare CR and bare LF become CRLF (a lone CR or LF
 * next to a dot is what SMTP smuggling relies on), a dot at the start of a line is doubled, and the body is
 * made to end in CRLF. nodemailer's DataStream applies the same rules, so both senders put the same bytes
 * on the wire. A message that needs no change (the usual case) is not copied, except to add a final CRLF.
 */
export function stuffMessage(raw: Buffer): StuffedMessage {
  if (isWireReady(raw)) {
    if (endsWithCrlf(raw)) return { body: raw, sizeBytes: raw.length };
    const body = Buffer.concat([raw, CRLF], raw.length + 2);
    return { body, sizeBytes: body.length };
  }
  return rewrite(raw);
}

function endsWithCrlf(raw: Buffer): boolean {
  return raw.length >= 2 && raw[raw.length - 2] === CR && raw[raw.length - 1] === LF;
}

/**
 * True when every LF follows a CR, every CR precedes an LF and no line starts with a dot. Walks the line
 * ends with indexOf (native) rather than every byte: a composed message has few lines per kilobyte.
 */
function isWireReady(raw: Buffer): boolean {
  if (raw.length === 0) return true;
  if (raw[0] === DOT) return false;
  let lfCount = 0;
  for (let at = raw.indexOf(LF); at !== -1; at = raw.indexOf(LF, at + 1)) {
    if (at === 0 || raw[at - 1] !== CR || raw[at + 1] === DOT) return false;
    lfCount++;
  }
  let crCount = 0;
  for (let at = raw.indexOf(CR); at !== -1; at = raw.indexOf(CR, at + 1)) crCount++;
  // Each LF has its own CR just before it; equal counts leave no CR without an LF after it.
  return crCount === lfCount;
}

function rewrite(raw: Buffer): StuffedMessage {
  // Worst case: every byte a bare line end (2 bytes each) followed by a dot to stuff, plus the final CRLF.
  const out = Buffer.allocUnsafe(raw.length * 3 + 2);
  let length = 0;
  let dots = 0;
  let prev = -1;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i] as number;
    if (prev === CR && byte !== LF) {
      out[length++] = LF; // a bare CR becomes CRLF
      prev = LF;
    }
    if (byte === LF && prev !== CR) out[length++] = CR; // a bare LF becomes CRLF
    if (byte === DOT && (prev === LF || prev === -1)) {
      out[length++] = DOT;
      dots++;
    }
    out[length++] = byte;
    prev = byte;
  }
  if (prev === CR) out[length++] = LF;
  else if (prev !== LF) {
    out[length++] = CR;
    out[length++] = LF;
  }
  const body = Buffer.from(out.subarray(0, length));
  return { body, sizeBytes: length - dots };
}
