import { ValidationError, normalizeDomain } from '@mailroom/core';

/**
 * A key's allowed sender domains: `example.com` (exactly that domain), `*.example.com` (its subdomains, not
 * itself) or `*` (any domain). Stored normalised: lower-case ASCII, IDN labels as punycode.
 */
export function normalizeDomainRule(rule: string): string {
  const trimmed = rule.trim();
  if (trimmed === '*') return '*';
  if (trimmed.startsWith('*.')) return `*.${normalizeDomain(trimmed.slice(2), 'domains')}`;
  if (trimmed.includes('*')) {
    throw new ValidationError([
      { field: 'domains', message: `"${trimmed}": a wildcard is only allowed as "*" or "*.domain"` },
    ]);
  }
  return normalizeDomain(trimmed, 'domains');
}

/** True when `domain` (already normalised, as core's addressDomain returns it) matches one of the rules. */
export function domainAllowed(rules: readonly string[], domain: string): boolean {
  for (const rule of rules) {
    if (rule === '*' || rule === domain) return true;
    if (rule.startsWith('*.') && domain.endsWith(rule.slice(1))) return true;
  }
  return false;
}
