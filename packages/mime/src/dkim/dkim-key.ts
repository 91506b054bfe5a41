import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/** The signing algorithms Mailroom offers (RFC 6376 rsa-sha256, RFC 8463 ed25519-sha256). */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export const DKIM_ALGORITHMS: readonly DkimAlgorithm[] = ['rsa-sha256', 'ed25519-sha256'];

/** RSA keys shorter than this are refused (RFC 8301 section 3.2). */
export const MIN_RSA_KEY_BITS = 1024;

/** One imported signing key: parsed once at start, used for every message of its domain. */
export interface DkimKey {
  /** Signing domain (`d=`), lower-case ASCII (IDN labels as punycode). */
  readonly domain: string;
  /** Selector (`s=`): the key's DNS record is `<selector>._domainkey.<domain>`. */
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  /** Also sign for subdomains of `domain` that have no key of their own. */
  readonly subdomains: boolean;
  readonly privateKey: KeyObject;
  /** RSA modulus length in bits; 256 for Ed25519. */
  readonly bits: number;
}

/** A private key as parsed, or why it could not be. */
export type ParsedPrivateKey =
  | { readonly key: KeyObject; readonly algorithm: DkimAlgorithm; readonly bits: number }
  | { readonly problem: string };

/** PKCS#8 wrapping of a raw Ed25519 seed: the DER of `PrivateKeyInfo` up to the 32 key octets. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const RAW_ED25519_SEED = /^[A-Za-z0-9+/]{43}=$/;

function importKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (RAW_ED25519_SEED.test(trimmed)) {
    // The bare base64 seed some tools print for Ed25519 (the same 32 octets RFC 8463's example key is).
    const der = Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(trimmed, 'base64')]);
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  }
  return createPrivateKey({ key: trimmed, format: 'pem' });
}

/** Why a key text could not be imported, without repeating any of it. */
function importProblem(text: string): string {
  if (text.includes('ENCRYPTED')) return 'is an encrypted key; give it unencrypted (no passphrase)';
  if (text.includes('PUBLIC KEY-----')) return 'is a public key; DKIM signs with the private key';
  return 'is not a PEM private key (PKCS#8 "BEGIN PRIVATE KEY" or PKCS#1 "BEGIN RSA PRIVATE KEY") or a base64 Ed25519 seed';
}

/**
 * Parses a private key from PEM (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA PRIVATE KEY`) or a bare
 * base64 Ed25519 seed, and says which DKIM algorithm it signs with. RSA keys shorter than 1024 bits, other
 * key types and encrypted keys are refused with a reason; the key text never appears in it.
 */
export function parsePrivateKey(text: string): ParsedPrivateKey {
  let key: KeyObject;
  try {
    key = importKey(text);
  } catch {
    return { problem: importProblem(text) };
  }
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_KEY_BITS) {
        return {
          problem: `is an RSA key of ${bits} bits; DKIM needs at least ${MIN_RSA_KEY_BITS} (2048 recommended)`,
        };
      }
      return { key, algorithm: 'rsa-sha256', bits };
    }
    case 'ed25519':
      return { key, algorithm: 'ed25519-sha256', bits: 256 };
    default:
      return {
        problem: `is a key of type ${key.asymmetricKeyType ?? 'unknown'}; DKIM signs with RSA (rsa-sha256) or Ed25519 (ed25519-sha256) keys`,
      };
  }
}

/**
 * The TXT record to publish at `<selector>._domainkey.<domain>` for a key: `v=DKIM1; k=rsa; p=<base64 of
 * the SubjectPublicKeyInfo>` (RFC 6376 section 3.6.1), or `v=DKIM1; k=ed25519; p=<base64 of the 32-octet
 * public key>` (RFC 8463 section 4). Long values must be split into strings of at most 255 octets in the
 * zone file; the record is one string here.
 */
export function dkimDnsRecord(key: Pick<DkimKey, 'algorithm' | 'privateKey'>): string {
  const publicKey = createPublicKey(key.privateKey);
  if (key.algorithm === 'ed25519-sha256') {
    const jwk = publicKey.export({ format: 'jwk' });
    return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x ?? '', 'base64url').toString('base64')}`;
  }
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
}
