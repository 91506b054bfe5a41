import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys look like `mr_<prefix>_<secret>`: the prefix (10 lower-case base32 characters, 50 random bits)
 * names the key in lists, logs and revocation and is how a key is looked up; the secret is 32 random bytes
 * (256 bits) in base64url. Only an HMAC-SHA256 of the whole key under a server-side pepper is stored.
 */
export const API_KEY_PATTERN = /^mr_([0-9a-hjkmnp-tv-z]{10})_([A-Za-z0-9_-]{43})$/;
const PREFIX_PATTERN = /^[0-9a-hjkmnp-tv-z]{10}$/;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const SECRET_BYTES = 32;

export const API_SCOPES = ['send', 'read', 'admin'] as const;
/** send: messages and campaigns; read: status; admin: everything, keys' metrics and the queue UI. */
export type ApiScope = (typeof API_SCOPES)[number];

export function isApiScope(value: string): value is ApiScope {
  return (API_SCOPES as readonly string[]).includes(value);
}

export function isKeyPrefix(value: string): boolean {
  return PREFIX_PATTERN.test(value);
}

/** A new random key and its prefix. */
export function generateApiKey(): { key: string; prefix: string } {
  const bytes = randomBytes(7); // 56 bits, of which the first 50 are used
  let prefix = '';
  let bits = 0;
  let buffered = 0;
  for (const byte of bytes) {
    buffered = (buffered << 8) | byte;
    bits += 8;
    while (bits >= 5 && prefix.length < 10) {
      bits -= 5;
      prefix += ALPHABET.charAt((buffered >> bits) & 31);
    }
    buffered &= (1 << bits) - 1;
  }
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return { key: `mr_${prefix}_${secret}`, prefix };
}

/** The prefix of a well-formed key, or undefined for anything else. */
export function parseApiKey(key: string): { prefix: string } | undefined {
  const match = API_KEY_PATTERN.exec(key);
  return match === null ? undefined : { prefix: match[1]! };
}

/** HMAC-SHA256 of the whole key under the pepper, hex. */
export function hashApiKey(key: string, pepper: string): string {
  return createHmac('sha256', pepper).update(key).digest('hex');
}

/** Constant-time comparison of two hex hashes of the same length. */
export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  if (left.length !== right.length || left.length === 0) {
    // Keep the work the same as a real comparison.
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}
