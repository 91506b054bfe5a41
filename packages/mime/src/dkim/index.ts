export {
  DkimSigner,
  createDkimSigner,
  DKIM_SIGNED_HEADERS,
  DKIM_OVERSIGNED_HEADERS,
  type DkimSignerOptions,
  type DkimSignResult,
  type DkimSigned,
  type DkimUnsigned,
  type DkimSignatureInfo,
} from './dkim-signer.js';
export {
  loadDkimKeys,
  dkimConfigSchema,
  type DkimKeyConfig,
  type LoadDkimKeysOptions,
} from './dkim-config.js';
export {
  dkimDnsRecord,
  parsePrivateKey,
  DKIM_ALGORITHMS,
  MIN_RSA_KEY_BITS,
  type DkimAlgorithm,
  type DkimKey,
  type ParsedPrivateKey,
} from './dkim-key.js';
export { relaxedBody, relaxedHeaderField, relaxedHeaderValue } from './relaxed-canonicalization.js';
