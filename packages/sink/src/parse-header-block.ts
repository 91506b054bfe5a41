/** One header field as it appeared in the message: name as written, value unfolded but not decoded. */
export type HeaderField = readonly [name: string, value: string];

/**
 * Splits a header block (the bytes before the first empty line, without that empty line) into its
 * fields, in order. Folded lines are unfolded by removing the CRLF in front of the continuation's
 * whitespace (RFC 5322 section 2.2.3); encoded words are left as they are. The whitespace between
 * the colon and the value is dropped, the rest of the value is kept verbatim. A line that is neither
 * a field nor a continuation is not a header and is skipped.
 */
export function parseHeaderBlock(block: Buffer): HeaderField[] {
  const fields: [string, string][] = [];
  if (block.length === 0) return fields;
  let current: [string, string] | undefined;
  for (const line of block.toString('utf8').split('\r\n')) {
    if (line.length === 0) continue;
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      if (current) current[1] += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      current = undefined;
      continue;
    }
    current = [line.slice(0, colon).trimEnd(), line.slice(colon + 1).replace(/^[ \t]+/, '')];
    fields.push(current);
  }
  return fields;
}
