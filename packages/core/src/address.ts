import { domainToASCII } from 'node:url';
import { controlCharacterProblem } from './control-characters.js';
import { ValidationError, type FieldIssue } from './errors.js';

/** One validated mailbox: an ASCII addr-spec with a lower-case (punycode) domain, and an optional name. */
export interface Mailbox {
  /** Display name without quotes, at most MAX_DISPLAY_NAME_CHARS characters; absent when none was given. */
  readonly name?: string;
  /** `local@domain`: local part as given, domain lower-case ASCII. */
  readonly address: string;
}

/** RFC 5321 4.5.3.1.1 limit on the local part, in octets. */
export const MAX_LOCAL_PART_OCTETS = 64;
/** RFC 5321 path limit (256) minus the angle brackets, in octets, measured after punycode. */
export const MAX_ADDRESS_OCTETS = 254;
/** Longest display name accepted, in UTF-16 characters. */
export const MAX_DISPLAY_NAME_CHARS = 200;
/** Longest raw mailbox string looked at; anything longer cannot be valid and is refused before parsing. */
const MAX_MAILBOX_INPUT_CHARS = 1024;
const MAX_DOMAIN_OCTETS = 253;
const MAX_LABEL_OCTETS = 63;

/** RFC 5322 atext: the characters of a dot-atom local part besides the dots. */
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;
/** Characters that may not appear in a quoted local part besides controls and whitespace. */
const QUOTED_LOCAL_FORBIDDEN = new Set(['@', ',', ';', '<', '>', '"']);
/** Characters that make an unquoted display name ambiguous; such names must be quoted. */
const UNQUOTED_NAME_FORBIDDEN = new Set(['"', '(', ')', '[', ']', '\\', '@']);
const LABEL = /^[a-z0-9-]+$/;

type Result<T> = { readonly ok: T } | { readonly problem: string };

/**
 * Parses exactly one mailbox: `a@b.example`, `Name <a@b.example>`, `"Name, Quoted" <a@b.example>` or
 * `{ name?, address }`. Lists, groups, source routes, comments, domain literals and non-ASCII local parts
 * are refused. Throws ValidationError whose issues name `field` (or `field.name` / `field.address`).
 */
export function parseMailbox(value: unknown, field: string): Mailbox {
  const issues: FieldIssue[] = [];
  const mailbox = readMailbox(value, field, issues);
  if (mailbox === undefined || issues.length > 0) {
    throw new ValidationError(issues.length > 0 ? issues : [{ field, message: 'is not a valid mailbox' }]);
  }
  return mailbox;
}

/** The lower-case ASCII (punycode) domain of an address, e.g. `xn--bcher-kva.example` for `a@Bücher.example`. */
export function addressDomain(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) throw new ValidationError([{ field: 'address', message: 'is missing "@domain"' }]);
  return normalizeDomain(address.slice(at + 1), 'address');
}

/**
 * Validates a DNS hostname (letters, digits, hyphens; at least two labels) and returns it in lower-case
 * ASCII, IDN labels as punycode. Throws ValidationError naming `field`.
 */
export function normalizeDomain(domain: string, field: string): string {
  const result = toAsciiDomain(domain);
  if ('problem' in result) throw new ValidationError([{ field, message: result.problem }]);
  return result.ok;
}

function readMailbox(value: unknown, field: string, issues: FieldIssue[]): Mailbox | undefined {
  if (typeof value === 'string') return readMailboxString(value, field, issues);
  if (value === undefined) {
    issues.push({ field, message: 'is required' });
    return undefined;
  }
  if (Array.isArray(value)) {
    issues.push({ field, message: 'must be a single mailbox, not a list (one recipient per message)' });
    return undefined;
  }
  if (typeof value !== 'object' || value === null) {
    issues.push({ field, message: 'must be an address string or an object { name?, address }' });
    return undefined;
  }
  return readMailboxObject(value as Record<string, unknown>, field, issues);
}

function readMailboxObject(
  value: Record<string, unknown>,
  field: string,
  issues: FieldIssue[],
): Mailbox | undefined {
  const before = issues.length;
  for (const key of Object.keys(value)) {
    if (key !== 'name' && key !== 'address') {
      issues.push({ field: `${field}.${key}`, message: 'is not a recognised field' });
    }
  }
  let name: string | undefined;
  if (value.name !== undefined) {
    if (typeof value.name === 'string') name = checkDisplayName(value.name.trim(), `${field}.name`, issues);
    else issues.push({ field: `${field}.name`, message: 'must be a string' });
  }
  let address: string | undefined;
  if (typeof value.address === 'string') {
    address = checkAddrSpec(trimSpaces(value.address), `${field}.address`, issues);
  } else {
    issues.push({
      field: `${field}.address`,
      message: value.address === undefined ? 'is required' : 'must be a string',
    });
  }
  if (issues.length > before || address === undefined) return undefined;
  return name === undefined ? { address } : { name, address };
}

function readMailboxString(raw: string, field: string, issues: FieldIssue[]): Mailbox | undefined {
  if (raw.length > MAX_MAILBOX_INPUT_CHARS) {
    issues.push({ field, message: `is longer than ${MAX_MAILBOX_INPUT_CHARS} characters` });
    return undefined;
  }
  // Checked on the raw text first: a CR/LF anywhere is an injection attempt, whatever part it is in.
  const control = controlCharacterProblem(raw);
  if (control !== undefined) {
    issues.push({ field, message: control });
    return undefined;
  }
  const text = trimSpaces(raw);
  if (text === '') {
    issues.push({ field, message: 'is empty' });
    return undefined;
  }
  const structure = checkStructure(text);
  if (structure !== undefined) {
    issues.push({ field, message: structure });
    return undefined;
  }
  const lt = indexOutsideQuotes(text, '<');
  if (lt < 0) {
    if (indexOutsideQuotes(text, '>') >= 0) {
      issues.push({ field, message: 'has a ">" without a matching "<"' });
      return undefined;
    }
    const address = checkAddrSpec(text, field, issues);
    return address === undefined ? undefined : { address };
  }
  const gt = text.indexOf('>', lt + 1);
  if (gt < 0) {
    issues.push({ field, message: 'has a "<" without a matching ">"' });
    return undefined;
  }
  if (trimSpaces(text.slice(gt + 1)) !== '') {
    issues.push({ field, message: 'must contain exactly one mailbox (text follows the closing ">")' });
    return undefined;
  }
  const inner = trimSpaces(text.slice(lt + 1, gt));
  if (inner.includes('<')) {
    issues.push({ field, message: 'must contain exactly one mailbox (nested "<")' });
    return undefined;
  }
  const before = issues.length;
  const name = readDisplayName(trimSpaces(text.slice(0, lt)), `${field}.name`, issues);
  const address = checkAddrSpec(inner, field, issues);
  if (issues.length > before || address === undefined) return undefined;
  return name === undefined ? { address } : { name, address };
}

/**
 * Refuses the forms that carry more or other than one mailbox. Looks only outside quoted strings, where
 * these characters are syntax, not text.
 */
function checkStructure(text: string): string | undefined {
  if (/<\s*@/.test(text)) return 'source routes (<@relay:addr>) are not supported';
  let inQuotes = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inQuotes) {
      if (c === '\\') i++;
      else if (c === '"') inQuotes = false;
      continue;
    }
    if (c === '"') inQuotes = true;
    else if (c === ',') return 'must be exactly one mailbox, not a list';
    else if (c === ':' || c === ';') return 'groups (name: addr, ...;) are not supported';
  }
  return inQuotes ? 'has an unclosed quote' : undefined;
}

function indexOutsideQuotes(text: string, wanted: string): number {
  let inQuotes = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inQuotes) {
      if (c === '\\') i++;
      else if (c === '"') inQuotes = false;
    } else if (c === '"') inQuotes = true;
    else if (c === wanted) return i;
  }
  return -1;
}

/** A display name is either wholly quoted (with `\"` and `\\` escapes) or plain words without specials. */
function readDisplayName(text: string, field: string, issues: FieldIssue[]): string | undefined {
  if (text === '') return undefined;
  if (text.startsWith('"')) {
    let name = '';
    let i = 1;
    for (; i < text.length; i++) {
      const c = text.charAt(i);
      if (c === '\\') name += text.charAt(++i);
      else if (c === '"') break;
      else name += c;
    }
    if (i !== text.length - 1) {
      issues.push({ field, message: 'must be one quoted string or unquoted words, not a mix' });
      return undefined;
    }
    return checkDisplayName(name.trim(), field, issues);
  }
  for (const c of text) {
    if (UNQUOTED_NAME_FORBIDDEN.has(c)) {
      issues.push({ field, message: `contains "${c}" outside quotes; quote the name` });
      return undefined;
    }
  }
  return checkDisplayName(text, field, issues);
}

function checkDisplayName(name: string, field: string, issues: FieldIssue[]): string | undefined {
  const control = controlCharacterProblem(name);
  if (control !== undefined) {
    issues.push({ field, message: control });
    return undefined;
  }
  if (name.length > MAX_DISPLAY_NAME_CHARS) {
    issues.push({ field, message: `is longer than ${MAX_DISPLAY_NAME_CHARS} characters (${name.length})` });
    return undefined;
  }
  return name === '' ? undefined : name;
}

/** Validates `local@domain` and returns it with the domain in lower-case punycode. */
function checkAddrSpec(addr: string, field: string, issues: FieldIssue[]): string | undefined {
  const result = readAddrSpec(addr);
  if ('problem' in result) {
    issues.push({ field, message: result.problem });
    return undefined;
  }
  return result.ok;
}

function readAddrSpec(addr: string): Result<string> {
  const problem = (message: string): Result<string> => ({ problem: message });
  if (addr === '') return problem('has no address');
  const control = controlCharacterProblem(addr);
  if (control !== undefined) return problem(control);
  if (/\s/.test(addr)) return problem('contains whitespace');
  let local: string;
  let domainText: string;
  if (addr.startsWith('"')) {
    const close = addr.indexOf('"', 1);
    if (close < 0) return problem('has an unclosed quote');
    local = addr.slice(0, close + 1);
    if (local.includes('\\')) return problem('quoted local part contains a backslash');
    const rest = addr.slice(close + 1);
    if (!rest.startsWith('@'))
      return problem('must be local@domain (nothing may follow the quoted local part)');
    domainText = rest.slice(1);
  } else {
    const at = addr.indexOf('@');
    if (at < 0) return problem('is missing "@domain"');
    if (addr.indexOf('@', at + 1) >= 0) return problem('contains more than one "@"');
    local = addr.slice(0, at);
    domainText = addr.slice(at + 1);
  }
  const localProblem = localPartProblem(local);
  if (localProblem !== undefined) return problem(localProblem);
  const domain = toAsciiDomain(domainText);
  if ('problem' in domain) return domain;
  const address = `${local}@${domain.ok}`;
  const octets = Buffer.byteLength(address, 'utf8');
  if (octets > MAX_ADDRESS_OCTETS) return problem(`is longer than ${MAX_ADDRESS_OCTETS} octets (${octets})`);
  return { ok: address };
}

function localPartProblem(local: string): string | undefined {
  if (local === '') return 'local part is empty';
  if (/[^\x20-\x7e]/.test(local))
    return 'local part is not ASCII (requires SMTPUTF8, which is not supported)';
  const octets = Buffer.byteLength(local, 'utf8');
  if (octets > MAX_LOCAL_PART_OCTETS) {
    return `local part is longer than ${MAX_LOCAL_PART_OCTETS} octets (${octets})`;
  }
  if (local.startsWith('"')) {
    const content = local.slice(1, -1);
    if (content === '') return 'quoted local part is empty';
    for (const c of content) {
      if (c === '\\') return 'quoted local part contains a backslash';
      if (QUOTED_LOCAL_FORBIDDEN.has(c)) return `quoted local part contains "${c}"`;
    }
    return undefined;
  }
  if (local.startsWith('.')) return 'local part starts with a dot';
  if (local.endsWith('.')) return 'local part ends with a dot';
  if (local.includes('..')) return 'local part contains consecutive dots';
  for (const c of local) {
    if (c !== '.' && !ATEXT.test(c)) return `local part contains "${c}" (quote the local part or remove it)`;
  }
  return undefined;
}

/**
 * Validates a DNS hostname and converts it to lower-case ASCII, IDN labels to punycode. ASCII characters
 * other than letters, digits, hyphens and dots are refused before conversion, because the WHATWG
 * conversion would otherwise percent-decode or map them into something else (`a%41.example`).
 */
function toAsciiDomain(domain: string): Result<string> {
  // A list of recipients names the same few domains again and again: remember recent answers.
  const known = recentDomains.get(domain);
  if (known !== undefined) return known;
  const result = convertDomain(domain);
  if (recentDomains.size >= RECENT_DOMAINS_MAX) recentDomains.clear();
  recentDomains.set(domain, result);
  return result;
}

/** Most domains toAsciiDomain remembers; past it the memory starts again (a bound, not an LRU). */
const RECENT_DOMAINS_MAX = 10_000;
const recentDomains = new Map<string, Result<string>>();

function convertDomain(domain: string): Result<string> {
  if (domain === '') return { problem: 'domain is empty' };
  if (domain.startsWith('[')) return { problem: 'domain literals ([address]) are not supported' };
  for (const c of domain) {
    if (c.charCodeAt(0) < 0x80 && !/[A-Za-z0-9.-]/.test(c)) return { problem: `domain contains "${c}"` };
  }
  if (domain.startsWith('.')) return { problem: 'domain starts with a dot' };
  if (domain.endsWith('.')) return { problem: 'domain ends with a dot' };
  const ascii = domainToASCII(domain.toLowerCase());
  if (ascii === '') return { problem: 'domain is not a valid (internationalised) domain name' };
  if (Buffer.byteLength(ascii) > MAX_DOMAIN_OCTETS) {
    return { problem: `domain is longer than ${MAX_DOMAIN_OCTETS} octets` };
  }
  const labels = ascii.split('.');
  if (labels.length < 2) return { problem: 'domain needs at least two labels (like example.com)' };
  for (const label of labels) {
    if (label === '') return { problem: 'domain contains consecutive dots' };
    if (label.length > MAX_LABEL_OCTETS) {
      return { problem: `domain label is longer than ${MAX_LABEL_OCTETS} octets (${label.length})` };
    }
    if (!LABEL.test(label)) return { problem: `domain label "${label}" is not a hostname label` };
    if (label.startsWith('-') || label.endsWith('-')) {
      return { problem: `domain label "${label}" starts or ends with a hyphen` };
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return { problem: 'domain ends in a numeric label (IP addresses are not accepted)' };
  }
  return { ok: ascii };
}

function trimSpaces(value: string): string {
  return value.replace(/^ +| +$/g, '');
}
