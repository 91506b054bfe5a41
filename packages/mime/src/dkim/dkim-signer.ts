/**
 * DKIM signing (RFC 6376, RFC 8463) of finished messages, written for Mailroom rather than taken from a
 * library, because none of those that run on Node 20 does the job:
 * - nodemailer's built-in signer (nodemailer/lib/dkim) signs with `crypto.createSign('RSA-SHA256')` only, so
 *   Ed25519 is impossible; it writes no `t=` or `x=`, cannot oversign (it signs the last instance of each
 *   listed header once), and works as a stream Transform with a `setImmediate` per key and an on-disk cache
 *   for large messages: an asynchronous detour for a Buffer Mailroom already holds whole;
 * - mailauth, which does all of this, requires Node 22; dkim-signer (npm) is the RSA-only signer extracted
 *   from the old mailcomposer.
 * What is needed is small: two canonicalizations, a header selection, a folded header and a call to
 * node:crypto. Here the body is read once, into its relaxed form in a reused buffer that is then hashed (no
 * regular expressions, so nothing to backtrack), the header block is split by indexOf, only the signed
 * fields are copied, and with dual signing (RSA and Ed25519) the body hash and the canonical headers are
 * computed once for both signatures.
 */
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { ConfigError, ValidationError } from '@mailroom/core';
import { loadDkimKeys, type LoadDkimKeysOptions } from './dkim-config.js';
import type { DkimAlgorithm, DkimKey } from './dkim-key.js';
import { fromDomain } from './from-domain.js';
import { readHeaderBlock, type HeaderField } from './header-block.js';
import { relaxedBody, relaxedHeaderField, relaxedHeaderValue } from './relaxed-canonicalization.js';
import { appendSignature, unsignedSignatureHeader } from './signature-header.js';

/**
 * Header fields signed when present, in this order (`h=`). Every instance present is signed, bottom-up as
 * RFC 6376 section 5.4.2 says.
 */
export const DKIM_SIGNED_HEADERS: readonly string[] = [
  'from',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'reply-to',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'feedback-id',
];

/**
 * Header fields listed once more than they occur ("oversigned", RFC 6376 section 8.15): the extra name
 * matches no field, so adding one more such field anywhere in transit breaks the signature. This stops a
 * second From (the one a reader sees could be the added one), a List-Unsubscribe added or replaced
 * in transit, and a second Feedback-ID (Gmail wants exactly one, signed).
 */
export const DKIM_OVERSIGNED_HEADERS: ReadonlySet<string> = new Set([
  'from',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'feedback-id',
]);

const SIGNED_SET: ReadonlySet<string> = new Set(DKIM_SIGNED_HEADERS);
const SIGNATURE_NAME_LENGTH = 'DKIM-Signature:'.length;

export interface DkimSignerOptions {
  /** Current time in milliseconds since the epoch, for `t=` (and `x=`). Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Adds `x=` this many seconds after `t=`: receivers treat the signature as expired afterwards. Choose it
   * longer than the longest retry window (a message retried after `x=` arrives with an expired signature).
   * Default: no `x=`.
   */
  readonly expireAfterSeconds?: number;
}

/** One signature added to a message. */
export interface DkimSignatureInfo {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
}

/** A signed message: `raw` starts with one DKIM-Signature header per key (in configuration order). */
export interface DkimSigned {
  readonly signed: true;
  readonly raw: Buffer;
  /** The From header's domain (lower-case ASCII). */
  readonly fromDomain: string;
  readonly signatures: readonly DkimSignatureInfo[];
}

/** No key is configured for the From domain: `raw` is the message given, unchanged (the same Buffer). */
export interface DkimUnsigned {
  readonly signed: false;
  readonly raw: Buffer;
  readonly fromDomain: string;
}

export type DkimSignResult = DkimSigned | DkimUnsigned;

/** What is computed once per message and shared by its signatures. */
interface SigningPlan {
  readonly keys: readonly DkimKey[];
  readonly fromDomain: string;
  /** The signed header fields in relaxed form, in `h=` order. */
  readonly canonicalHeaders: string;
  readonly headerNames: readonly string[];
  readonly bodyHash: string;
  readonly timestamp: number;
}

/** One signature's header text, before and after its signature value is known. */
interface PendingSignature {
  readonly key: DkimKey;
  readonly unsigned: string;
  /** What the signature covers: the signed fields and this DKIM-Signature field with an empty `b=`. */
  readonly data: Buffer;
}

/** RFC 8463: Ed25519 signs the SHA-256 of the data (PureEdDSA over the hash), RSA the data with SHA-256. */
function signatureInput(algorithm: DkimAlgorithm, data: Buffer): { hash: string | null; input: Buffer } {
  return algorithm === 'rsa-sha256'
    ? { hash: 'sha256', input: data }
    : { hash: null, input: createHash('sha256').update(data).digest() };
}

function signSync(key: KeyObject, algorithm: DkimAlgorithm, data: Buffer): string {
  const { hash, input } = signatureInput(algorithm, data);
  return cryptoSign(hash, input, key).toString('base64');
}

/** The same signature computed on libuv's thread pool, off the event loop. */
function signOnThreadPool(key: KeyObject, algorithm: DkimAlgorithm, data: Buffer): Promise<string> {
  const { hash, input } = signatureInput(algorithm, data);
  return new Promise((resolve, reject) => {
    cryptoSign(hash, input, key, (err, signature) => {
      if (err) reject(err);
      else resolve(signature.toString('base64'));
    });
  });
}

function invalidMessage(field: string, message: string): ValidationError {
  return new ValidationError([{ field, message }]);
}

/**
 * Signs finished messages (compileMessage, compileTemplate().render()) for the From header's domain. The keys
 * are chosen by that domain: the keys configured for exactly that domain, else those of the nearest parent
 * domain configured with `subdomains: true`; with none, the message is returned unchanged and `signed` is
 * false. All keys of the chosen domain sign (an RSA and an Ed25519 key: dual signing).
 *
 * Input is the message with CRLF line ends and not dot-stuffed, as the composer returns it; the result is
 * the same, ready for the SMTP client.
 */
export class DkimSigner {
  private readonly exact = new Map<string, DkimKey[]>();
  private readonly parents = new Map<string, DkimKey[]>();
  private readonly now: () => number;
  private readonly expireAfterSeconds: number | undefined;

  /** `keys` from loadDkimKeys. Throws ConfigError for an `expireAfterSeconds` that is not a positive integer. */
  constructor(keys: readonly DkimKey[], options: DkimSignerOptions = {}) {
    for (const key of keys) {
      const list = this.exact.get(key.domain) ?? [];
      list.push(key);
      this.exact.set(key.domain, list);
      if (key.subdomains) {
        const parentList = this.parents.get(key.domain) ?? [];
        parentList.push(key);
        this.parents.set(key.domain, parentList);
      }
    }
    const ttl = options.expireAfterSeconds;
    if (ttl !== undefined && (!Number.isSafeInteger(ttl) || ttl <= 0)) {
      throw new ConfigError([
        { field: 'expireAfterSeconds', message: 'must be a positive whole number of seconds' },
      ]);
    }
    this.expireAfterSeconds = ttl;
    this.now = options.now ?? Date.now;
  }

  /** The keys that sign mail from `domain` (lower-case ASCII); empty when none does. */
  keysFor(domain: string): readonly DkimKey[] {
    const exact = this.exact.get(domain);
    if (exact !== undefined) return exact;
    for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) {
      const parent = domain.slice(dot + 1);
      if (!parent.includes('.')) break;
      const keys = this.parents.get(parent);
      if (keys !== undefined) return keys;
    }
    return [];
  }

  /**
   * Signs `raw` on the calling thread. Throws ValidationError when the message cannot be signed as it will
   * be received: no From or more than one (`from`), a From without a domain (`from`), a malformed header
   * block (`(message)`).
   */
  sign(raw: Buffer): DkimSignResult {
    const plan = this.plan(raw);
    if ('unsigned' in plan) return plan.unsigned;
    const pending = this.pendingSignatures(plan);
    const headers = pending.map((p) =>
      appendSignature(p.unsigned, signSync(p.key.privateKey, p.key.algorithm, p.data)),
    );
    return this.signed(raw, plan, headers);
  }

  /**
   * As {@link sign}, with the private-key operations on libuv's thread pool (node:crypto's asynchronous
   * sign), so an RSA signature (about a millisecond of CPU) does not hold up the event loop. Canonicalization
   * and hashing still run on the calling thread.
   */
  async signAsync(raw: Buffer): Promise<DkimSignResult> {
    const plan = this.plan(raw);
    if ('unsigned' in plan) return plan.unsigned;
    const pending = this.pendingSignatures(plan);
    const values = await Promise.all(
      pending.map((p) => signOnThreadPool(p.key.privateKey, p.key.algorithm, p.data)),
    );
    const headers = pending.map((p, i) => appendSignature(p.unsigned, values[i] ?? ''));
    return this.signed(raw, plan, headers);
  }

  private plan(raw: Buffer): SigningPlan | { unsigned: DkimUnsigned } {
    const block = readHeaderBlock(raw);
    const byName = new Map<string, HeaderField[]>();
    for (const field of block.fields) {
      if (!SIGNED_SET.has(field.name)) continue;
      const list = byName.get(field.name);
      if (list === undefined) byName.set(field.name, [field]);
      else list.push(field);
    }
    const froms = byName.get('from') ?? [];
    const from = froms[0];
    if (from === undefined) throw invalidMessage('from', 'the message has no From header');
    if (froms.length > 1) throw invalidMessage('from', `the message has ${froms.length} From headers`);
    const domain = fromDomain(raw.toString('latin1', from.valueStart, from.end));
    if (domain === undefined) throw invalidMessage('from', 'the From header holds no address with a domain');

    const keys = this.keysFor(domain);
    if (keys.length === 0) return { unsigned: { signed: false, raw, fromDomain: domain } };

    let canonicalHeaders = '';
    const headerNames: string[] = [];
    for (const name of DKIM_SIGNED_HEADERS) {
      const fields = byName.get(name);
      if (fields === undefined) continue;
      for (let i = fields.length - 1; i >= 0; i--) {
        const field = fields[i] as HeaderField;
        headerNames.push(name);
        canonicalHeaders += relaxedHeaderField(name, raw.toString('latin1', field.valueStart, field.end));
      }
      if (DKIM_OVERSIGNED_HEADERS.has(name)) headerNames.push(name);
    }
    const bodyHash = createHash('sha256').update(relaxedBody(raw, block.bodyStart)).digest('base64');
    const timestamp = Math.floor(this.now() / 1000);
    return { keys, fromDomain: domain, canonicalHeaders, headerNames, bodyHash, timestamp };
  }

  private pendingSignatures(plan: SigningPlan): PendingSignature[] {
    const expires =
      this.expireAfterSeconds === undefined ? undefined : plan.timestamp + this.expireAfterSeconds;
    return plan.keys.map((key) => {
      const unsigned = unsignedSignatureHeader({
        algorithm: key.algorithm,
        domain: key.domain,
        selector: key.selector,
        timestamp: plan.timestamp,
        expires,
        headerNames: plan.headerNames,
        bodyHash: plan.bodyHash,
      });
      // The DKIM-Signature field itself is covered in relaxed form, with `b=` empty and no final CRLF.
      const ownField = `dkim-signature:${relaxedHeaderValue(unsigned.slice(SIGNATURE_NAME_LENGTH))}`;
      return { key, unsigned, data: Buffer.from(plan.canonicalHeaders + ownField, 'latin1') };
    });
  }

  private signed(raw: Buffer, plan: SigningPlan, headers: readonly string[]): DkimSigned {
    const prefix = Buffer.from(headers.join(''), 'latin1');
    return {
      signed: true,
      raw: Buffer.concat([prefix, raw], prefix.length + raw.length),
      fromDomain: plan.fromDomain,
      signatures: plan.keys.map((key) => ({
        domain: key.domain,
        selector: key.selector,
        algorithm: key.algorithm,
      })),
    };
  }
}

/**
 * Validates a DKIM configuration (see dkimConfigSchema), imports its keys once and returns the signer.
 * Throws ConfigError naming each bad field (`dkim[0].selector: ...`).
 */
export function createDkimSigner(
  config: unknown,
  options: DkimSignerOptions & LoadDkimKeysOptions = {},
): DkimSigner {
  return new DkimSigner(loadDkimKeys(config, options), options);
}
