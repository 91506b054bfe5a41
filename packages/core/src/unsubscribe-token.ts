import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseMailbox } from './address.js';
import { ConfigError, UnsubscribeTokenError, ValidationError, type FieldIssue } from './errors.js';

/**
 * One-click unsubscribe tokens (RFC 8058): everything the unsubscribe endpoint needs (who, from which list,
 * in which suppression scope, since when) signed with HMAC-SHA256, so a click is verified without a database
 * lookup and a token cannot be forged or altered without the secret.
 *
 * Format (version 1), base64url without padding:
 *   byte 0        version (1)
 *   bytes 1-4     issuedAt, seconds since the epoch, unsigned big-endian
 *   then          address, list, scope: each one length byte and that many UTF-8 bytes
 *   last 16       HMAC-SHA256(secret, "mailroom-unsubscribe\0" + everything before), first 128 bits
 * About 100 characters for a typical address.
 *
 * Privacy: the token is signed, not encrypted. The address is in it as binary under base64url, so it does
 * not appear as a readable address in URL logs or to address scanners, but anyone holding the token can
 * decode it, as with the tokens of every major sending service. The token only ever travels to the
 * recipient's own mail system and back.
 *
 * Rotation: sign with the first secret, verify with all of them; drop an old secret once the mail it signed
 * no longer needs to unsubscribe (CAN-SPAM asks for at least 30 days after sending).
 */

/** Fewest characters a secret may have (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_UNSUBSCRIBE_SECRET_CHARS = 32;
/** Bytes of the HMAC-SHA256 kept in a token: 128 bits. */
export const UNSUBSCRIBE_MAC_BYTES = 16;

const VERSION = 1;
const CONTEXT = Buffer.from('mailroom-unsubscribe\0', 'latin1');
const HEADER_BYTES = 5;
const MAX_TOKEN_CHARS = 1024;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const LIST = /^[A-Za-z0-9._:-]{1,64}$/;
/** The suppression store's scope rule: `*` or a lower-case sender domain. */
const SCOPE = /^(\*|[a-z0-9._-]{1,253})$/;
const MAX_ISSUED_AT_SECONDS = 0xffffffff;

export interface UnsubscribeTokenFields {
  /** The recipient. */
  readonly address: string;
  /** The list the recipient leaves: 1-64 of letters, digits, `.`, `_`, `:`, `-` (`weekly`, `campaign:42`). */
  readonly list: string;
  /** The suppression scope the unsubscribe applies to (the sender's domain, or `*`). */
  readonly scope: string;
}

export interface CreateUnsubscribeTokenOptions extends UnsubscribeTokenFields {
  /** Signing secret, at least 32 characters: the first of the verifier's `secrets`. */
  readonly secret: string;
  /** When the token was issued, ms since the epoch (default now); kept to the second. */
  readonly issuedAt?: number;
}

export interface VerifiedUnsubscribeToken extends UnsubscribeTokenFields {
  /** When the token was issued, ms since the epoch (whole seconds). */
  readonly issuedAt: number;
}

export interface VerifyUnsubscribeTokenOptions {
  /** Every secret that may have signed the token, current first. */
  readonly secrets: readonly string[];
  /** Refuse tokens older than this, in ms (default: no limit). */
  readonly maxAgeMs?: number;
  /** The current time, ms since the epoch (default now). */
  readonly now?: number;
}

function checkSecret(secret: unknown, field: string, issues: FieldIssue[]): void {
  if (typeof secret !== 'string' || secret.length < MIN_UNSUBSCRIBE_SECRET_CHARS) {
    issues.push({
      field,
      message: `must be a string of at least ${MIN_UNSUBSCRIBE_SECRET_CHARS} characters`,
    });
  }
}

function mac(secret: string, payload: Buffer): Buffer {
  return createHmac('sha256', secret)
    .update(CONTEXT)
    .update(payload)
    .digest()
    .subarray(0, UNSUBSCRIBE_MAC_BYTES);
}

function field(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/**
 * Creates a URL-safe token for `address` leaving `list` in `scope`. Throws ValidationError naming a bad
 * address, list, scope or issuedAt, and ConfigError for a secret that is too short.
 */
export function createUnsubscribeToken(options: CreateUnsubscribeTokenOptions): string {
  const secretIssues: FieldIssue[] = [];
  checkSecret(options.secret, 'secret', secretIssues);
  if (secretIssues.length > 0) throw new ConfigError(secretIssues);
  const issues: FieldIssue[] = [];
  let address = '';
  try {
    address = parseMailbox(options.address, 'address').address;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  if (typeof options.list !== 'string' || !LIST.test(options.list)) {
    issues.push({ field: 'list', message: 'must be 1-64 of letters, digits, ".", "_", ":", "-"' });
  }
  if (typeof options.scope !== 'string' || !SCOPE.test(options.scope)) {
    issues.push({ field: 'scope', message: 'must be "*" or 1-253 of a-z, 0-9, ".", "_", "-"' });
  }
  const issuedAtMs = options.issuedAt ?? Date.now();
  const issuedAt = Math.floor(issuedAtMs / 1000);
  if (!Number.isFinite(issuedAtMs) || issuedAt < 0 || issuedAt > MAX_ISSUED_AT_SECONDS) {
    issues.push({ field: 'issuedAt', message: 'must be a time in ms since the epoch, before 2106' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(VERSION, 0);
  header.writeUInt32BE(issuedAt, 1);
  const payload = Buffer.concat([
    header,
    field(Buffer.from(address, 'utf8')),
    field(Buffer.from(options.list, 'utf8')),
    field(Buffer.from(options.scope, 'utf8')),
  ]);
  return Buffer.concat([payload, mac(options.secret, payload)]).toString('base64url');
}

/**
 * Verifies a token against every secret in `secrets` (constant-time comparison) and returns what it
 * carries. Throws UnsubscribeTokenError (`ERR_UNSUBSCRIBE_TOKEN`) with `reason` `malformed`,
 * `bad_signature` or `expired`; ConfigError when `secrets` is empty or holds a short secret.
 */
export function verifyUnsubscribeToken(
  token: string,
  options: VerifyUnsubscribeTokenOptions,
): VerifiedUnsubscribeToken {
  const issues: FieldIssue[] = [];
  if (!Array.isArray(options.secrets) || options.secrets.length === 0) {
    issues.push({ field: 'secrets', message: 'must list at least one secret' });
  } else options.secrets.forEach((secret, i) => checkSecret(secret, `secrets[${i}]`, issues));
  const maxAgeMs = options.maxAgeMs;
  if (maxAgeMs !== undefined && !(Number.isFinite(maxAgeMs) && maxAgeMs > 0)) {
    issues.push({ field: 'maxAgeMs', message: 'must be a positive number of ms' });
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const malformed = (why: string) => new UnsubscribeTokenError('malformed', `unsubscribe token ${why}`);
  if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS || !TOKEN.test(token)) {
    throw malformed('is not a base64url string of at most 1024 characters');
  }
  const bytes = Buffer.from(token, 'base64url');
  // Only the canonical encoding is accepted: no second spelling of the same bytes.
  if (bytes.toString('base64url') !== token) throw malformed('is not canonical base64url');
  if (bytes.length < HEADER_BYTES + 3 + UNSUBSCRIBE_MAC_BYTES) throw malformed('is too short');
  if (bytes[0] !== VERSION) throw malformed(`has unknown version ${bytes[0]}`);
  const payload = bytes.subarray(0, bytes.length - UNSUBSCRIBE_MAC_BYTES);
  const given = bytes.subarray(bytes.length - UNSUBSCRIBE_MAC_BYTES);
  let signed = false;
  for (const secret of options.secrets) {
    // Every secret is tried, matched or not, so the time taken does not depend on which one matched.
    if (timingSafeEqual(mac(secret, payload), given)) signed = true;
  }
  if (!signed) throw new UnsubscribeTokenError('bad_signature', 'unsubscribe token signature does not match');

  const fields: string[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < 3; i++) {
    const length = payload[at];
    if (length === undefined || at + 1 + length > payload.length) throw malformed('is truncated');
    fields.push(payload.toString('utf8', at + 1, at + 1 + length));
    at += 1 + length;
  }
  if (at !== payload.length) throw malformed('has trailing bytes');
  const [address, list, scope] = fields as [string, string, string];
  const issuedAt = payload.readUInt32BE(1) * 1000;
  const now = options.now ?? Date.now();
  if (maxAgeMs !== undefined && now - issuedAt > maxAgeMs) {
    throw new UnsubscribeTokenError(
      'expired',
      `unsubscribe token expired (issued ${new Date(issuedAt).toISOString()})`,
    );
  }
  return { address, list, scope, issuedAt };
}

/** The headers of RFC 8058 one-click unsubscribe. */
export interface UnsubscribeHeaders {
  readonly 'List-Unsubscribe': string;
  readonly 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click';
}

export interface UnsubscribeHeadersOptions {
  /**
   * Base of the one-click URL; the token is appended as the last path segment. `https:` only (`http:` is
   * accepted for loopback hosts, for tests); no credentials, query or fragment.
   */
  readonly baseUrl: string;
  /** Also offer unsubscribing by mail to this address, the token in the subject (`unsubscribe-<token>`). */
  readonly mailto?: string;
  readonly token: string;
}

function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/**
 * `List-Unsubscribe: <https://host/path/TOKEN>, <mailto:unsub@host?subject=unsubscribe-TOKEN>` and
 * `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 2369, RFC 8058). Both headers must be covered
 * by the DKIM signature for mailbox providers to offer the one-click button. Throws ConfigError naming
 * `baseUrl` or `mailto`, ValidationError naming `token`.
 */
export function unsubscribeHeaders(options: UnsubscribeHeadersOptions): UnsubscribeHeaders {
  const issues: FieldIssue[] = [];
  let base: URL | undefined;
  try {
    base = new URL(options.baseUrl);
  } catch {
    issues.push({ field: 'baseUrl', message: 'is not an absolute URL' });
  }
  if (base) {
    if (base.protocol !== 'https:' && !(base.protocol === 'http:' && isLoopbackHost(base.hostname))) {
      issues.push({ field: 'baseUrl', message: 'must use https: (http: only for a loopback host)' });
    }
    if (base.username !== '' || base.password !== '') {
      issues.push({ field: 'baseUrl', message: 'must not carry credentials' });
    }
    if (base.search !== '' || base.hash !== '') {
      issues.push({
        field: 'baseUrl',
        message: 'must not have a query or fragment (the token ends the path)',
      });
    }
  }
  let mailto: string | undefined;
  if (options.mailto !== undefined) {
    try {
      const address = parseMailbox(options.mailto, 'mailto').address;
      if (address.startsWith('"'))
        issues.push({ field: 'mailto', message: 'must not have a quoted local part' });
      const at = address.lastIndexOf('@');
      mailto = `${encodeURIComponent(address.slice(0, at))}@${address.slice(at + 1)}`;
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      issues.push(...err.issues);
    }
  }
  if (issues.length > 0 || base === undefined) throw new ConfigError(issues);
  if (
    typeof options.token !== 'string' ||
    options.token.length > MAX_TOKEN_CHARS ||
    !TOKEN.test(options.token)
  ) {
    throw new ValidationError([{ field: 'token', message: 'must be an unsubscribe token (base64url)' }]);
  }
  const path = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  const links = [`<${base.origin}${path}${options.token}>`];
  if (mailto !== undefined) links.push(`<mailto:${mailto}?subject=unsubscribe-${options.token}>`);
  return {
    'List-Unsubscribe': links.join(', '),
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}
