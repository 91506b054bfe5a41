/**
 * An address as reports write it, loosely: reports come from every MTA ever written, so this accepts what
 * looks like `local@domain` rather than validating RFC 5321 syntax. Quoted local parts are not supported.
 */
// Every repetition is bounded (64-octet local part, 63-octet labels, 20 labels), so a long run of address
// characters without an `@` (a base64 body) costs linear time, not quadratic.
const ADDRESS =
  /[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,20}/g;
const WHOLE_ADDRESS = new RegExp(`^${ADDRESS.source}$`);
/** RFC 3464 address-type prefix, e.g. `rfc822;` or `utf-8;`. */
const ADDRESS_TYPE = /^[A-Za-z0-9-]+\s*;\s*/;

/**
 * A recipient address from a report field or line: drops an RFC 3464 type (`rfc822;`), angle brackets and
 * `mailto:`, and lower-cases the domain (the local part keeps its case: it may be case-sensitive).
 * Undefined when what is left is not `local@domain`.
 */
export function recipientAddress(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let text = value.trim().replace(ADDRESS_TYPE, '').trim();
  if (text.startsWith('<') && text.includes('>')) text = text.slice(1, text.indexOf('>'));
  text = text.replace(/^mailto:/i, '').trim();
  if (!WHOLE_ADDRESS.test(text)) return undefined;
  return lowerCaseDomain(text.replace(/^\.+|\.+$/g, ''));
}

/** Every address-looking string in `text`, in order, domains lower-cased. At most `limit` of them. */
export function findAddresses(text: string, limit = 50): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(ADDRESS)) {
    const address = match[0].replace(/^\.+|\.+$/g, '');
    if (address.includes('@') && !address.startsWith('@')) found.push(lowerCaseDomain(address));
    if (found.length >= limit) break;
  }
  return found;
}

function lowerCaseDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`;
}
