import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, normalizeDomain, ValidationError, type FieldIssue } from '@mailroom/core';
import { DKIM_ALGORITHMS, parsePrivateKey, type DkimAlgorithm, type DkimKey } from './dkim-key.js';

/** Error text for a wrong type; `is required` when the value is missing. */
function typeError(expected: string) {
  return (issue: { code?: string; input?: unknown }): string | undefined => {
    if (issue.code !== 'invalid_type') return undefined;
    return issue.input === undefined ? 'is required' : `must be ${expected}`;
  };
}

const keyEntrySchema = z.strictObject(
  {
    /** Signing domain (`d=`); IDN is converted to punycode. */
    domain: z.string({ error: typeError('a domain name') }),
    /** Selector (`s=`): the public key is published at `<selector>._domainkey.<domain>`. */
    selector: z.string({ error: typeError('a string') }),
    /** Declared algorithm; the key must be of that type. Default: taken from the key. */
    algorithm: z
      .enum(DKIM_ALGORITHMS as [DkimAlgorithm, ...DkimAlgorithm[]], {
        error: `must be ${DKIM_ALGORITHMS.join(' or ')}`,
      })
      .optional(),
    /** The private key itself: PEM (PKCS#8 or PKCS#1) or a bare base64 Ed25519 seed. */
    privateKey: z.string({ error: typeError('a string (PEM)') }).optional(),
    /** Path of a file holding the private key, read once at start. */
    privateKeyFile: z.string({ error: typeError('a file path') }).optional(),
    /** Also sign mail from subdomains of `domain` that have no key of their own. Default false. */
    subdomains: z.boolean({ error: typeError('true or false') }).optional(),
  },
  { error: typeError('an object') },
);

/** The DKIM configuration: one entry per key; a domain may have one RSA and one Ed25519 key (dual signing). */
export const dkimConfigSchema = z.array(keyEntrySchema, { error: typeError('a list of keys') });

/** One configured key as written by an operator (before its key is read). */
export type DkimKeyConfig = z.input<typeof keyEntrySchema>;

export interface LoadDkimKeysOptions {
  /** Name of the setting in error messages, e.g. `MAILROOM_DKIM`. Default `dkim`. */
  readonly field?: string;
}

/** RFC 5321 sub-domain labels: letters, digits, hyphens inside. Bounded, so no backtracking to speak of. */
const SELECTOR_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function selectorProblem(selector: string): string | undefined {
  if (selector === '') return 'is empty';
  if (selector.length > 253) return 'is longer than 253 characters';
  for (const label of selector.split('.')) {
    if (!SELECTOR_LABEL.test(label)) {
      return `must be DNS labels of letters, digits and inner hyphens separated by dots (like s2025 or mail.news), not "${selector}"`;
    }
  }
  return undefined;
}

function readKeyFile(path: string): { text: string } | { problem: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    return { problem: `cannot be read (${code})` };
  }
}

function zodIssues(issues: readonly z.core.$ZodIssue[], field: string): FieldIssue[] {
  const name = (path: readonly PropertyKey[]): string =>
    path.reduce<string>(
      (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : `${acc}.${String(part)}`),
      field,
    );
  const out: FieldIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ field: `${name(issue.path)}.${key}`, message: 'is not a known setting' });
    } else {
      out.push({ field: name(issue.path), message: issue.message });
    }
  }
  return out;
}

/**
 * Validates a DKIM configuration and imports every key once (crypto.createPrivateKey), reading key files
 * synchronously: call it at start, not per message. Throws ConfigError naming each bad field, e.g.
 * `dkim[1].privateKeyFile: cannot be read (ENOENT)` or `dkim[0].algorithm: is rsa-sha256 but the key is an
 * ed25519-sha256 key`.
 */
export function loadDkimKeys(config: unknown, options: LoadDkimKeysOptions = {}): readonly DkimKey[] {
  const field = options.field ?? 'dkim';
  const parsed = dkimConfigSchema.safeParse(config);
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error.issues, field));

  const issues: FieldIssue[] = [];
  const keys: DkimKey[] = [];
  /** `domain algorithm` and `domain selector` -> index of the first entry that used it. */
  const seenAlgorithm = new Map<string, number>();
  const seenSelector = new Map<string, number>();
  parsed.data.forEach((entry, index) => {
    const at = `${field}[${index}]`;
    const before = issues.length;

    let domain = '';
    try {
      domain = normalizeDomain(entry.domain, `${at}.domain`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      issues.push(...err.issues);
    }
    const selectorIssue = selectorProblem(entry.selector);
    if (selectorIssue !== undefined) issues.push({ field: `${at}.selector`, message: selectorIssue });

    let keyText: string | undefined;
    if (entry.privateKey !== undefined && entry.privateKeyFile !== undefined) {
      issues.push({ field: `${at}.privateKey`, message: 'set privateKey or privateKeyFile, not both' });
    } else if (entry.privateKey !== undefined) {
      keyText = entry.privateKey;
    } else if (entry.privateKeyFile !== undefined) {
      const file = readKeyFile(entry.privateKeyFile);
      if ('problem' in file) issues.push({ field: `${at}.privateKeyFile`, message: file.problem });
      else keyText = file.text;
    } else {
      issues.push({ field: `${at}.privateKey`, message: 'is required (or privateKeyFile)' });
    }

    let key: { key: DkimKey['privateKey']; algorithm: DkimAlgorithm; bits: number } | undefined;
    if (keyText !== undefined) {
      const keyField = `${at}.${entry.privateKey !== undefined ? 'privateKey' : 'privateKeyFile'}`;
      const result = parsePrivateKey(keyText);
      if ('problem' in result) issues.push({ field: keyField, message: result.problem });
      else if (entry.algorithm !== undefined && entry.algorithm !== result.algorithm) {
        issues.push({
          field: `${at}.algorithm`,
          message: `is ${entry.algorithm} but the key is an ${result.algorithm} key`,
        });
      } else key = result;
    }

    if (key !== undefined && domain !== '') {
      const first = seenAlgorithm.get(`${domain} ${key.algorithm}`);
      if (first !== undefined) {
        issues.push({
          field: `${at}.domain`,
          message: `${domain} already has an ${key.algorithm} key (${field}[${first}]); one key per algorithm per domain`,
        });
      } else seenAlgorithm.set(`${domain} ${key.algorithm}`, index);
    }
    if (domain !== '' && selectorIssue === undefined) {
      const selector = entry.selector.toLowerCase();
      const first = seenSelector.get(`${domain} ${selector}`);
      if (first !== undefined) {
        issues.push({
          field: `${at}.selector`,
          message: `"${entry.selector}" is already used for ${domain} by ${field}[${first}]; each key needs its own selector`,
        });
      } else seenSelector.set(`${domain} ${selector}`, index);
    }

    if (issues.length === before && key !== undefined) {
      keys.push(
        Object.freeze({
          domain,
          selector: entry.selector,
          algorithm: key.algorithm,
          subdomains: entry.subdomains ?? false,
          privateKey: key.key,
          bits: key.bits,
        }),
      );
    }
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(keys);
}
