import type { DkimAlgorithm } from './dkim-key.js';

/** Lines of the DKIM-Signature header are folded to this many characters (RFC 5322 section 2.1.1). */
export const SIGNATURE_LINE_CHARS = 78;

const NAME = 'DKIM-Signature:';

/** The tags of one signature, all but `b=`. */
export interface SignatureTags {
  readonly algorithm: DkimAlgorithm;
  readonly domain: string;
  readonly selector: string;
  /** `t=`, seconds since the epoch. */
  readonly timestamp: number;
  /** `x=`, seconds since the epoch; omitted when undefined. */
  readonly expires?: number | undefined;
  /** `h=`, lower-case names in signing order, repeated names included. */
  readonly headerNames: readonly string[];
  /** `bh=`, base64. */
  readonly bodyHash: string;
}

/**
 * The header up to and including `b=`, folded: tags are separated by `; ` and a line is broken before a tag
 * (or between two names of `h=`, where RFC 6376 allows whitespace around the colons) that would pass 78
 * characters. A single tag longer than a line (a 250-character domain) stays whole, within 998.
 *
 * This text, with an empty `b=`, is what the signature covers (relaxed canonicalization turns each fold
 * into one space); the signature is then appended with {@link appendSignature}.
 */
export function unsignedSignatureHeader(tags: SignatureTags): string {
  let text = NAME;
  let lineLength = NAME.length;
  const add = (atom: string, glue: string): void => {
    if (lineLength + glue.length + atom.length <= SIGNATURE_LINE_CHARS) {
      text += glue + atom;
      lineLength += glue.length + atom.length;
    } else {
      text += '\r\n ' + atom;
      lineLength = 1 + atom.length;
    }
  };
  add('v=1;', ' ');
  add(`a=${tags.algorithm};`, ' ');
  add('c=relaxed/relaxed;', ' ');
  add(`d=${tags.domain};`, ' ');
  add(`s=${tags.selector};`, ' ');
  add(`t=${tags.timestamp};`, ' ');
  if (tags.expires !== undefined) add(`x=${tags.expires};`, ' ');
  const names = tags.headerNames;
  names.forEach((name, i) => {
    const atom = `${i === 0 ? 'h=' : ''}${name}${i === names.length - 1 ? ';' : ':'}`;
    add(atom, i === 0 ? ' ' : '');
  });
  add(`bh=${tags.bodyHash};`, ' ');
  add('b=', ' ');
  return text;
}

/**
 * The complete header field with its CRLF: `unsigned` (from {@link unsignedSignatureHeader}) followed by
 * the base64 signature, which fills the last line and continues on lines of at most 78 characters (base64
 * may be folded anywhere in `b=`, RFC 6376 section 3.5).
 */
export function appendSignature(unsigned: string, signature: string): string {
  const lastBreak = unsigned.lastIndexOf('\n');
  const lineLength = unsigned.length - (lastBreak + 1);
  let text = unsigned;
  let at = Math.max(0, SIGNATURE_LINE_CHARS - lineLength);
  text += signature.slice(0, at);
  const chunk = SIGNATURE_LINE_CHARS - 1;
  while (at < signature.length) {
    text += '\r\n ' + signature.slice(at, at + chunk);
    at += chunk;
  }
  return text + '\r\n';
}
