import { ConfigError, ValidationError, normalizeDomain, parseMailbox, type FieldIssue } from '@mailroom/core';

/** Which of the receiver's mailboxes an envelope recipient is, if any. */
export type InboundMailbox = 'bounce' | 'complaints' | 'unsubscribe';

/**
 * Decides RCPT TO: addresses at the bounce domain, the complaints addresses and the unsubscribe address;
 * nothing else.
 */
export type InboundRecipientCheck = (address: string) => InboundMailbox | undefined;

/**
 * The recipient check of a receiver for `bounceDomain` (every local part: the VERP return paths, and
 * postmaster, which RFC 5321 requires), `complaintsAddresses` and `unsubscribeAddress` (the `mailto:` of
 * List-Unsubscribe; exact addresses, compared without case, and taken before the bounce domain, where the
 * unsubscribe address may live too). Throws ConfigError naming every unusable domain or address, and an
 * unsubscribe address that is also a complaints address.
 */
export function inboundRecipientCheck(
  bounceDomain: string,
  complaintsAddresses: readonly string[],
  unsubscribeAddress?: string,
): InboundRecipientCheck {
  const issues: FieldIssue[] = [];
  let domain = '';
  try {
    domain = normalizeDomain(bounceDomain, 'bounceDomain');
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  const complaints = new Set<string>();
  complaintsAddresses.forEach((value, i) => {
    try {
      const address = canonical(parseMailbox(value, `complaintsAddresses[${i}]`).address);
      if (address === undefined)
        issues.push({ field: `complaintsAddresses[${i}]`, message: 'is not an address' });
      else complaints.add(address);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      issues.push(...err.issues);
    }
  });
  let unsubscribe: string | undefined;
  if (unsubscribeAddress !== undefined) {
    try {
      unsubscribe = canonical(parseMailbox(unsubscribeAddress, 'unsubscribeAddress').address);
      if (unsubscribe === undefined)
        issues.push({ field: 'unsubscribeAddress', message: 'is not an address' });
      else if (complaints.has(unsubscribe)) {
        issues.push({ field: 'unsubscribeAddress', message: 'must not be a complaints address too' });
      }
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      issues.push(...err.issues);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return (address) => {
    const text = canonical(address);
    if (text === undefined) return undefined;
    if (complaints.has(text)) return 'complaints';
    if (text === unsubscribe) return 'unsubscribe';
    return text.slice(text.lastIndexOf('@') + 1) === domain ? 'bounce' : undefined;
  };
}

/**
 * `local@domain` with the domain normalised (lower case, IDN to punycode) and the local part lower-cased, or
 * undefined when it is not an address. Mailbox providers and MTAs change the case of local parts, and the
 * receiver's own addresses never differ by case alone.
 */
function canonical(address: string): string | undefined {
  if (typeof address !== 'string' || address.length > 512) return undefined;
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  try {
    return `${address.slice(0, at).toLowerCase()}@${normalizeDomain(address.slice(at + 1), 'address')}`;
  } catch {
    return undefined;
  }
}
