import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  ConfigError,
  isMessageId,
  MAX_ADDRESS_OCTETS,
  MAX_LOCAL_PART_OCTETS,
  normalizeDomain,
  ValidationError,
  type FieldIssue,
} from '@mailroom/core';

/**
 * A VERP return path names one message: `<localPrefix>+<id>.<mac>@<domain>`, for example
 * `bounces+01j9zq4kx2m7c3t8w5v6r0s1ab.4f7kq2m9x1c8t3v5@bounce.example.com`. Whatever comes back to that
 * address (a bounce, a delay warning, an auto-reply) is about that message, even when the report itself
 * carries no copy of it. The MAC stops anyone from suppressing a recipient by mailing a forged bounce to
 * a guessed return path.
 */
export interface VerpOptions {
  /**
   * Local part before the `+`, e.g. `bounces`: letters, digits, `_`, `-` and inner dots, at most
   * MAX_VERP_PREFIX_CHARS (20) characters, so the whole local part stays within 64 octets. Compared
   * case-insensitively.
   */
  readonly localPrefix: string;
  /** Domain whose MX receives the bounces, e.g. `bounce.example.com`. Lower-cased (IDN to punycode). */
  readonly domain: string;
  /** HMAC-SHA256 key, at least MIN_VERP_SECRET_BYTES (16) bytes. Rotating it invalidates return paths in flight. */
  readonly secret: string | Buffer;
}

/**
 * The `localPrefix` Mailroom's worker and `mailroom inbound` use: return paths look like
 * `bounces+<id>.<mac>@<bounce domain>`. Both must use the same one.
 */
export const DEFAULT_VERP_LOCAL_PREFIX = 'bounces';

/** MAC length in characters: 16 base32 characters carry 80 bits of the HMAC-SHA256 output. */
export const VERP_MAC_CHARS = 16;
/** Shortest accepted HMAC key, in bytes (128 bits). */
export const MIN_VERP_SECRET_BYTES = 16;
/** Longest `localPrefix`: 64 octets minus `+`, the 26-character id, `.` and the MAC. */
export const MAX_VERP_PREFIX_CHARS = MAX_LOCAL_PART_OCTETS - 1 - 26 - 1 - VERP_MAC_CHARS;

/** The message id alphabet (lower-case Crockford base32), reused for the MAC so the local part has one alphabet. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const PREFIX = /^[a-z0-9_-](?:[a-z0-9._-]*[a-z0-9_-])?$/i;
const LOCAL_PART = new RegExp(`^(.+)\\+([0-9a-z]{26})\\.([0-9a-z]{${VERP_MAC_CHARS}})$`);
/** Labels the HMAC input so a MAC made for VERP is never valid for anything else signed with the same key. */
const MAC_CONTEXT = 'mailroom-verp-v1';

interface CheckedOptions {
  readonly prefix: string;
  readonly domain: string;
  readonly secret: Buffer;
}

function checkOptions(options: VerpOptions): CheckedOptions {
  const issues: FieldIssue[] = [];
  const prefix = typeof options.localPrefix === 'string' ? options.localPrefix.toLowerCase() : '';
  if (!PREFIX.test(prefix) || prefix.includes('..')) {
    issues.push({
      field: 'verp.localPrefix',
      message: 'must be letters, digits, "_", "-" and inner single dots (no "+")',
    });
  } else if (prefix.length > MAX_VERP_PREFIX_CHARS) {
    issues.push({
      field: 'verp.localPrefix',
      message: `is longer than ${MAX_VERP_PREFIX_CHARS} characters: the local part would exceed ${MAX_LOCAL_PART_OCTETS} octets`,
    });
  }
  let domain = '';
  try {
    domain = normalizeDomain(typeof options.domain === 'string' ? options.domain : '', 'verp.domain');
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  const secret = Buffer.isBuffer(options.secret)
    ? options.secret
    : typeof options.secret === 'string'
      ? Buffer.from(options.secret, 'utf8')
      : Buffer.alloc(0);
  if (secret.length < MIN_VERP_SECRET_BYTES) {
    issues.push({ field: 'verp.secret', message: `must be at least ${MIN_VERP_SECRET_BYTES} bytes` });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { prefix, domain, secret };
}

/** Throws ConfigError naming every unusable VERP option; returns normally for usable ones. */
export function validateVerpOptions(options: VerpOptions): void {
  checkOptions(options);
}

/** Lower-case base32 of the first VERP_MAC_CHARS * 5 bits of HMAC-SHA256(secret, context, id, prefix, domain). */
function mac(id: string, options: CheckedOptions): string {
  const digest = createHmac('sha256', options.secret)
    .update(`${MAC_CONTEXT}\n${id}\n${options.prefix}\n${options.domain}`)
    .digest();
  let out = '';
  let buffered = 0;
  let bits = 0;
  for (const byte of digest) {
    buffered = (buffered << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < VERP_MAC_CHARS) {
      bits -= 5;
      out += ALPHABET.charAt((buffered >> bits) & 31);
    }
    buffered &= (1 << bits) - 1;
    if (out.length === VERP_MAC_CHARS) break;
  }
  return out;
}

/**
 * The signed return path of one message: `<localPrefix>+<id>.<mac>@<domain>`, all lower case, the local
 * part at most 64 octets. Throws ValidationError when `messageId` is not a Mailroom message id, and
 * ConfigError when the options are unusable (prefix syntax or length, domain, secret shorter than 16 bytes).
 */
export function encodeVerp(messageId: string, options: VerpOptions): string {
  const checked = checkOptions(options);
  if (!isMessageId(messageId)) {
    throw new ValidationError([{ field: 'messageId', message: 'is not a Mailroom message id' }]);
  }
  const address = `${checked.prefix}+${messageId}.${mac(messageId, checked)}@${checked.domain}`;
  // Both limits hold by construction of the option checks; kept as a guard against future changes to them.
  if (Buffer.byteLength(address) > MAX_ADDRESS_OCTETS) {
    throw new ConfigError([
      { field: 'verp.domain', message: `makes the return path longer than ${MAX_ADDRESS_OCTETS} octets` },
    ]);
  }
  return address;
}

/**
 * The message id carried by a return path made by encodeVerp with the same options, or undefined when the
 * address is not one of ours: another domain or prefix, a malformed local part, or a MAC that does not match
 * (compared in constant time). Accepts the address bare or in angle brackets, in any letter case, since some
 * MTAs change the case of local parts. Never throws for the address; throws ConfigError for unusable options.
 */
export function decodeVerp(address: string, options: VerpOptions): string | undefined {
  const checked = checkOptions(options);
  if (typeof address !== 'string' || address.length > MAX_ADDRESS_OCTETS + 2) return undefined;
  let text = address.trim();
  if (text.startsWith('<') && text.endsWith('>')) text = text.slice(1, -1).trim();
  text = text.toLowerCase();
  const at = text.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = text.slice(0, at);
  if (Buffer.byteLength(local) > MAX_LOCAL_PART_OCTETS) return undefined;
  let domain: string;
  try {
    domain = normalizeDomain(text.slice(at + 1), 'address');
  } catch {
    return undefined;
  }
  if (domain !== checked.domain) return undefined;
  const match = LOCAL_PART.exec(local);
  if (match === null) return undefined;
  const [, prefix = '', id = '', given = ''] = match;
  if (prefix !== checked.prefix || !isMessageId(id)) return undefined;
  const expected = Buffer.from(mac(id, checked), 'ascii');
  const actual = Buffer.from(given, 'ascii');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return undefined;
  return id;
}
