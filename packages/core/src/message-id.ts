import { randomBytes } from 'node:crypto';
import { normalizeDomain } from './address.js';
import { MailroomError, ValidationError } from './errors.js';

/**
 * Crockford's base32 alphabet in lower case: no i, l, o, u, so ids survive being read aloud or retyped,
 * and ascending in ASCII, so string order equals numeric order.
 */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;
/** 10 base32 characters hold 50 bits of milliseconds: enough until the year 37648. */
const MAX_TIME = 2 ** (5 * TIME_CHARS) - 1;
const MESSAGE_ID = /^[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * A new 26-character message id: 10 characters of millisecond time then 16 random characters (80 bits),
 * all in lower-case Crockford base32. Ids from different milliseconds sort by time as plain strings.
 * `now` defaults to Date.now(), in ms since the epoch.
 */
export function newMessageId(now: number = Date.now()): string {
  if (!Number.isInteger(now) || now < 0 || now > MAX_TIME) {
    throw new MailroomError('ERR_INTERNAL', `message id time must be an integer in [0, 2^50) ms, got ${now}`);
  }
  let time = '';
  let rest = now;
  for (let i = 0; i < TIME_CHARS; i++) {
    time = ALPHABET.charAt(rest % 32) + time;
    rest = Math.floor(rest / 32);
  }
  const bytes = randomBytes((RANDOM_CHARS * 5) / 8);
  let random = '';
  let bits = 0;
  let buffered = 0;
  for (const byte of bytes) {
    buffered = (buffered << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      random += ALPHABET.charAt((buffered >> bits) & 31);
    }
    buffered &= (1 << bits) - 1;
  }
  return time + random;
}

/** True for a string newMessageId could have returned. */
export function isMessageId(value: string): boolean {
  return MESSAGE_ID.test(value);
}

/**
 * The RFC 5322 Message-ID header value `<id@domain>`. The domain is validated and lower-cased (IDN to
 * punycode); throws ValidationError for a malformed id or domain, so nothing unchecked reaches a header.
 */
export function messageIdHeader(id: string, domain: string): string {
  if (!isMessageId(id)) throw new ValidationError([{ field: 'id', message: 'is not a Mailroom message id' }]);
  return `<${id}@${normalizeDomain(domain, 'domain')}>`;
}
