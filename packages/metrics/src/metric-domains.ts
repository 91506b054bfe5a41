import { domainToASCII } from 'node:url';

/** The `domain` label of every recipient whose domain is not on the configured list (or is not known). */
export const OTHER_DOMAIN = 'other';

/**
 * Most recipient domains a deployment may name: each one multiplies the per-domain series, so the list
 * stays short and anything else is counted as `other`.
 */
export const MAX_METRIC_DOMAINS = 25;

/**
 * The big consumer mailbox providers, which are the ones that throttle, defer and publish sender rules.
 * Each stands for its provider: the domains in {@link DOMAIN_ALIASES} are counted under it.
 */
export const DEFAULT_METRIC_DOMAINS: readonly string[] = Object.freeze([
  'gmail.com',
  'outlook.com',
  'yahoo.com',
  'icloud.com',
  'aol.com',
  'gmx.net',
  'web.de',
  't-online.de',
  'orange.fr',
  'free.fr',
  'mail.ru',
  'yandex.ru',
  'proton.me',
  'comcast.net',
  'qq.com',
  'naver.com',
]);

/**
 * Domains served by the same provider as a listed domain, counted under it (KumoMTA's provider roll-up):
 * `googlemail.com` is Gmail, `hotmail.com` is Outlook.com. An alias applies only while its target is on the
 * list and the alias itself is not.
 */
export const DOMAIN_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  'googlemail.com': 'gmail.com',
  'hotmail.com': 'outlook.com',
  'hotmail.co.uk': 'outlook.com',
  'hotmail.fr': 'outlook.com',
  'hotmail.de': 'outlook.com',
  'hotmail.it': 'outlook.com',
  'live.com': 'outlook.com',
  'live.co.uk': 'outlook.com',
  'live.fr': 'outlook.com',
  'msn.com': 'outlook.com',
  'outlook.de': 'outlook.com',
  'outlook.fr': 'outlook.com',
  'ymail.com': 'yahoo.com',
  'rocketmail.com': 'yahoo.com',
  'yahoo.co.uk': 'yahoo.com',
  'yahoo.fr': 'yahoo.com',
  'yahoo.de': 'yahoo.com',
  'yahoo.it': 'yahoo.com',
  'yahoo.es': 'yahoo.com',
  'me.com': 'icloud.com',
  'mac.com': 'icloud.com',
  'gmx.de': 'gmx.net',
  'gmx.at': 'gmx.net',
  'gmx.ch': 'gmx.net',
  'protonmail.com': 'proton.me',
  'protonmail.ch': 'proton.me',
  'pm.me': 'proton.me',
  'yandex.com': 'yandex.ru',
  'ya.ru': 'yandex.ru',
  'bk.ru': 'mail.ru',
  'list.ru': 'mail.ru',
  'inbox.ru': 'mail.ru',
  'foxmail.com': 'qq.com',
});

/** A listed domain: lower-case LDH labels (IDNs in their `xn--` form), at least two of them. */
const DOMAIN_NAME = /^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

/**
 * A configured list as written in a setting (`gmail.com, Outlook.com`): split on commas and white space,
 * lower-cased, IDNs converted to their ASCII (punycode) form. Empty entries are dropped.
 */
export function splitMetricDomains(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .map((entry) => {
      const lower = entry.toLowerCase();
      const ascii = domainToASCII(lower);
      return ascii === '' ? lower : ascii;
    });
}

/** What is wrong with a domain list, one sentence per problem; empty when it can be used. */
export function metricDomainProblems(domains: readonly string[]): string[] {
  const problems: string[] = [];
  if (domains.length > MAX_METRIC_DOMAINS) {
    problems.push(`lists ${domains.length} domains; at most ${MAX_METRIC_DOMAINS} keep the series bounded`);
  }
  const seen = new Set<string>();
  for (const domain of domains) {
    if (domain === OTHER_DOMAIN) problems.push(`"${OTHER_DOMAIN}" is the label of unlisted domains`);
    else if (!DOMAIN_NAME.test(domain)) problems.push(`"${domain}" is not a lower-case domain name`);
    if (seen.has(domain)) problems.push(`"${domain}" is listed twice`);
    seen.add(domain);
  }
  return problems;
}

/** A domain list that cannot be used as label values (see {@link metricDomainProblems}). */
export class InvalidMetricDomainsError extends RangeError {
  override readonly name = 'InvalidMetricDomainsError';
  readonly code = 'ERR_INVALID_ARG_VALUE';
  constructor(readonly problems: readonly string[]) {
    super(`invalid metric domain list: ${problems.join('; ')}`);
  }
}

/** Maps a recipient address (or a bare domain) to its `domain` label value. */
export type DomainLabeler = (address: string | undefined) => string;

/**
 * The `domain` label function for a list of domains: the recipient's domain when it is on the list (or an
 * alias of a listed domain), `other` for everything else, including a missing or unreadable address.
 * Lower-cases the domain and converts IDNs to punycode first, so `Gmail.COM` and `gmail.com` are one
 * series. Throws {@link InvalidMetricDomainsError} for a list {@link metricDomainProblems} refuses.
 */
export function createDomainLabeler(domains: readonly string[] = DEFAULT_METRIC_DOMAINS): DomainLabeler {
  const problems = metricDomainProblems(domains);
  if (problems.length > 0) throw new InvalidMetricDomainsError(problems);
  const labels = new Map<string, string>();
  for (const [alias, target] of Object.entries(DOMAIN_ALIASES)) {
    if (domains.includes(target)) labels.set(alias, target);
  }
  for (const domain of domains) labels.set(domain, domain);

  return (address) => {
    if (address === undefined) return OTHER_DOMAIN;
    const at = address.lastIndexOf('@');
    let domain = (at === -1 ? address : address.slice(at + 1)).trim().toLowerCase();
    if (domain.endsWith('.')) domain = domain.slice(0, -1);
    const hit = labels.get(domain);
    if (hit !== undefined) return hit;
    // Only a non-ASCII domain can still match after conversion.
    if (!/^[\x20-\x7e]*$/.test(domain)) return labels.get(domainToASCII(domain)) ?? OTHER_DOMAIN;
    return OTHER_DOMAIN;
  };
}

/** Every value the `domain` label can take for this list: the listed domains and `other`. */
export function domainLabelValues(domains: readonly string[] = DEFAULT_METRIC_DOMAINS): string[] {
  return [...domains, OTHER_DOMAIN];
}
