/** Characters per base64 line (RFC 2045 6.8). */
export const BASE64_LINE_CHARS = 76;

/**
 * Canonical base64 text (no line breaks) as the body of a MIME part: lines of 76 characters separated by
 * CRLF, no CRLF after the last line (the boundary delimiter or the end of the message adds it).
 */
export function wrapBase64(base64: string): Buffer {
  const length = base64.length;
  if (length <= BASE64_LINE_CHARS) return Buffer.from(base64, 'latin1');
  const lines = Math.ceil(length / BASE64_LINE_CHARS);
  const out = Buffer.allocUnsafe(length + 2 * (lines - 1));
  let pos = 0;
  for (let start = 0; start < length; start += BASE64_LINE_CHARS) {
    if (start > 0) {
      out[pos++] = 0x0d;
      out[pos++] = 0x0a;
    }
    pos += out.write(base64.slice(start, start + BASE64_LINE_CHARS), pos, 'latin1');
  }
  return out;
}

/** Bytes as a base64 MIME body, wrapped at 76 characters. */
export function encodeBase64Lines(bytes: Buffer): Buffer {
  return wrapBase64(bytes.toString('base64'));
}
