/** One `Name: value` field: the name lower-cased, the value unfolded (line breaks kept as `\n`), trimmed. */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
}

/** More fields than any real header block has; stops a hostile report from costing unbounded work. */
const MAX_FIELDS = 1000;
const FIELD = /^([!-9;-~]+)[ \t]*:[ \t]*(.*)$/;

/**
 * Reads RFC 5322-style fields (message headers, the field groups of a delivery-status or feedback-report
 * body) from `lines` until the first empty line or the end. Continuation lines (starting with a space or a
 * tab) join the previous field with `\n`, so multi-line SMTP replies keep their line structure. A line that
 * is neither a field nor a continuation is skipped: reports from broken MTAs are read as far as possible.
 * Returns the fields and the index of the line after the block.
 */
export function headerFields(lines: readonly string[], start = 0): { fields: HeaderField[]; next: number } {
  const fields: { name: string; value: string }[] = [];
  let i = start;
  for (; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '') break;
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      last.value = `${last.value}\n${line.trim()}`;
      continue;
    }
    const match = FIELD.exec(line);
    if (match === null || fields.length >= MAX_FIELDS) continue;
    fields.push({ name: (match[1] ?? '').toLowerCase(), value: (match[2] ?? '').trim() });
  }
  return { fields: fields.map((f) => ({ name: f.name, value: f.value.trim() })), next: i };
}

/** Splits text into lines, whatever the line ending. */
export function splitLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}

/** The header fields at the top of a raw message or header block (up to the first empty line). */
export function messageHeaderFields(raw: string): HeaderField[] {
  // Only the header block matters; the body of a returned message can be megabytes.
  const end = raw.search(/\r?\n\r?\n/);
  const head = end < 0 ? raw : raw.slice(0, end);
  return headerFields(splitLines(head)).fields;
}

/** The value of the first field called `name` (lower-case), if any. */
export function fieldValue(fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find((f) => f.name === name)?.value;
}

/** The values of every field called `name` (lower-case), in order. */
export function fieldValues(fields: readonly HeaderField[], name: string): string[] {
  return fields.filter((f) => f.name === name).map((f) => f.value);
}
