/** Standard base64 alphabet (RFC 4648 section 4), padding only at the end. Group structure is checked by length. */
const BASE64_CHARACTERS = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decoded length of a base64 string already known to be canonical, in bytes. */
export function base64DecodedBytes(value: string): number {
  const padding = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  return (value.length / 4) * 3 - padding;
}

/**
 * Why `value` is not canonical base64, or undefined when it is. Canonical means: no whitespace or line
 * breaks, correct padding, and zero unused bits in the last group, so each byte string has exactly one
 * accepted encoding (and the stored content is exactly what was validated).
 */
export function base64Problem(value: string): string | undefined {
  if (/^data:/i.test(value)) return 'must be base64 content, not a data: URL';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return 'must be base64 content, not a URL';
  if (/\s/.test(value)) return 'contains whitespace (base64 must be one unbroken string)';
  if (/[-_]/.test(value)) return 'uses the URL-safe base64 alphabet; use standard base64 (+ and /)';
  if (!BASE64_CHARACTERS.test(value)) return 'contains characters that are not base64, or "=" before the end';
  if (value.length % 4 !== 0) return 'is not valid base64 (length or padding is wrong)';
  // Round-tripping catches the remaining malformations ("A===", a padded group of one character) and
  // non-zero unused bits, which decoders silently drop.
  if (Buffer.from(value, 'base64').toString('base64') !== value) {
    return 'is not canonical base64 (non-zero padding bits)';
  }
  return undefined;
}
