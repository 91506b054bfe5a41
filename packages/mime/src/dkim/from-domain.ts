import { domainToASCII } from 'node:url';

const NON_ASCII = /[\u0080-\uffff]/;

/**
 * The domain of the address in a From header value (latin1 string, as read from the message), in lower-case
 * ASCII, or undefined when there is none. The address is the last `<...>` (a display name, even a quoted one
 * holding `<`, always comes before it), else the first word holding an `@`. Mailroom writes From itself from
 * a validated mailbox, so this reads its shape, not every form RFC 5322 allows.
 */
export function fromDomain(value: string): string | undefined {
  let address: string;
  const open = value.lastIndexOf('<');
  if (open >= 0) {
    const close = value.indexOf('>', open);
    if (close < 0) return undefined;
    address = value.slice(open + 1, close);
  } else {
    const word = value.split(/[\s,()]+/).find((part) => part.includes('@'));
    if (word === undefined) return undefined;
    address = word;
  }
  const at = address.lastIndexOf('@');
  if (at < 0) return undefined;
  let domain = address.slice(at + 1).trim();
  if (domain === '') return undefined;
  if (NON_ASCII.test(domain)) domain = domainToASCII(Buffer.from(domain, 'latin1').toString('utf8'));
  domain = domain.toLowerCase();
  return domain === '' ? undefined : domain;
}
