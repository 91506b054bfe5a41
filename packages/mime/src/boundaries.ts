import { randomBytes } from 'node:crypto';

/**
 * Every boundary contains `=_`. Quoted-printable output never does (an `=` there is always followed by two
 * hex digits or a line break) and base64 has no `_`, so only 7bit text could hold it; such text is sent as
 * quoted-printable instead (see encodeTextBody). A boundary therefore never occurs inside any part.
 */
export const BOUNDARY_MARKER = '=_';

/** Boundaries of one compiled template: a random base (96 bits) shared by its multipart nodes. */
export class Boundaries {
  private readonly base = randomBytes(12).toString('hex');
  private next = 0;

  /** A new boundary, `----=_Mailroom_<hex>_<n>`: 41 characters at most, well under RFC 2046's 70. */
  create(): string {
    this.next += 1;
    return `----${BOUNDARY_MARKER}Mailroom_${this.base}_${this.next}`;
  }
}
