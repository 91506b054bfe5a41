/**
 * The lines MTAs put between their explanation and the copy of the returned message, when they return it
 * inline in the text instead of as a MIME part: qmail and Yahoo (`--- Below this line is a copy of the
 * message.`), Exim (`------ This is a copy of the message, including all the headers. ------`), Sendmail
 * (`----- Original message follows -----`, `----- Unsent message follows -----`), old Gmail
 * (`----- Original message -----`) and Exchange (`Original message headers:`). Written `(?:-+[ \t]*)?`
 * rather than `-*[ \t]*`: two optional runs of blanks in a row cost quadratic time on a long blank line.
 */
const COPY_MARKER =
  /^[ \t]*(?:-+[ \t]*)?(?:Below this line is a copy of the message|This is a copy of the message|Original message(?: headers)?(?: follows)?|Unsent message follows|Message headers? follows?|Returned message(?: follows)?|Undelivered message(?: headers)?(?: follows)?)\b.*$/im;

/** A report's text cut at the start of the returned copy: `report` explains, `copy` is the returned message. */
export interface ReturnedCopy {
  readonly report: string;
  readonly copy?: string;
}

/** Splits `text` at the first copy marker; without one, all of it is the report. */
export function returnedCopy(text: string): ReturnedCopy {
  const match = COPY_MARKER.exec(text);
  if (match === null) return { report: text };
  const copy = text.slice(match.index + match[0].length).replace(/^(?:[ \t]*\r?\n)+/, '');
  return { report: text.slice(0, match.index), copy };
}
