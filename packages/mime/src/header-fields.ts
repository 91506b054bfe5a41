import { controlCharacterProblem, MAX_SUBJECT_CHARS, type FieldIssue } from '@mailroom/core';
import {
  encodeHeaderText,
  encodeWords,
  fitsLineLimit,
  foldHeader,
  MAX_LINE_OCTETS,
  needsEncodedWords,
} from './header-encoding.js';

/**
 * Headers whose value is free text (RFC 5322 unstructured, or unknown X- fields): a run too long for one
 * line may be written as encoded-words, which can be split anywhere. Structured ones (List-*, threading)
 * cannot be, so such a value is refused instead.
 */
function isUnstructured(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === 'subject' || lower === 'comments' || lower === 'keywords' || lower.startsWith('x-');
}

const MESSAGE_ID_LIST_HEADERS = new Set(['in-reply-to', 'references']);

/** A msg-id as nodemailer writes it: angle brackets added where missing. */
function angleBracketed(id: string): string {
  return `${id.startsWith('<') ? '' : '<'}${id}${id.endsWith('>') ? '' : '>'}`;
}

function tooLongProblem(): string {
  return `has a run of characters without whitespace too long for one header line (${MAX_LINE_OCTETS} octets)`;
}

/**
 * `Subject:` header lines for a subject (literal or rendered), or undefined after adding an issue naming
 * `subject`. CR, LF, NUL and other controls are refused, never cleaned: a merge variable must not be able to
 * start a header of its own.
 */
export function subjectHeader(subject: string, issues: FieldIssue[]): string | undefined {
  const control = controlCharacterProblem(subject);
  if (control !== undefined) {
    issues.push({ field: 'subject', message: control });
    return undefined;
  }
  if (subject.trim() === '') {
    issues.push({ field: 'subject', message: 'is empty' });
    return undefined;
  }
  if (subject.length > MAX_SUBJECT_CHARS) {
    issues.push({
      field: 'subject',
      message: `is longer than ${MAX_SUBJECT_CHARS} characters (${subject.length})`,
    });
    return undefined;
  }
  const folded = foldHeader('Subject', encodeHeaderText(subject));
  return fitsLineLimit(folded) ? folded : foldHeader('Subject', encodeWords(subject));
}

/**
 * One extra header (name already on the allowlist, value free of control characters) as folded lines, ''
 * for a blank value (nodemailer drops those too), or undefined after adding an issue naming `field`.
 */
export function extraHeader(
  name: string,
  value: string,
  field: string,
  issues: FieldIssue[],
): string | undefined {
  const trimmed = value.trim();
  if (trimmed === '') return '';
  const lower = name.toLowerCase();
  if (MESSAGE_ID_LIST_HEADERS.has(lower)) {
    if (needsEncodedWords(trimmed)) {
      issues.push({ field, message: 'must be ASCII message ids (<id@domain>), without "=?"' });
      return undefined;
    }
    const ids = lower === 'references' ? trimmed.split(/\s+/).map(angleBracketed) : [angleBracketed(trimmed)];
    const folded = foldHeader(name, ids.join(' '));
    if (fitsLineLimit(folded)) return folded;
    issues.push({ field, message: tooLongProblem() });
    return undefined;
  }
  const folded = foldHeader(name, encodeHeaderText(value));
  if (fitsLineLimit(folded)) return folded;
  if (isUnstructured(name)) return foldHeader(name, encodeWords(value));
  issues.push({ field, message: tooLongProblem() });
  return undefined;
}
