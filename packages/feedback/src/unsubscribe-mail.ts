import {
  ConfigError,
  MIN_UNSUBSCRIBE_SECRET_CHARS,
  UnsubscribeTokenError,
  verifyUnsubscribeToken,
  type FieldIssue,
  type UnsubscribeTokenProblem,
  type VerifiedUnsubscribeToken,
} from '@mailroom/core';
import { reportParts } from './report-parts.js';

/**
 * What a mail to the unsubscribe address (the `mailto:` of List-Unsubscribe) led to:
 * - `unsubscribed`: its token checked out and its address was added to its scope's suppression list;
 * - `already_suppressed`: its token checked out, and the address was on the list already (a second mail);
 * - `no_token`: neither the subject nor the first line of the text holds something like a token;
 * - `invalid_token`: what looks like a token is malformed, altered, forged or expired.
 */
export const UNSUBSCRIBE_MAIL_OUTCOMES = [
  'unsubscribed',
  'already_suppressed',
  'no_token',
  'invalid_token',
] as const;
export type UnsubscribeMailOutcome = (typeof UNSUBSCRIBE_MAIL_OUTCOMES)[number];

/** What acting on a verified token led to. */
export type UnsubscribeRecordResult = Extract<UnsubscribeMailOutcome, 'unsubscribed' | 'already_suppressed'>;

/**
 * Suppresses the token's address in the token's scope (reason `unsubscribe`) and says whether the address
 * was new there; rejects when it could not (the mail is then answered 451 and sent again later).
 */
export type RecordUnsubscribe = (token: VerifiedUnsubscribeToken) => Promise<UnsubscribeRecordResult>;

/** The unsubscribe mailbox of the receiver. */
export interface UnsubscribeMailOptions {
  /** The `mailto:` address of List-Unsubscribe: the workers' MAILROOM_UNSUBSCRIBE_MAILTO. */
  readonly address: string;
  /** Every secret that may have signed a token, current first: the workers' MAILROOM_UNSUBSCRIBE_SECRETS. */
  readonly secrets: readonly string[];
  readonly record: RecordUnsubscribe;
}

/** What a mail to the unsubscribe address carries. */
export type UnsubscribeMailReading =
  | { readonly outcome: 'token'; readonly token: VerifiedUnsubscribeToken }
  | { readonly outcome: 'no_token' }
  | { readonly outcome: 'invalid_token'; readonly problem: UnsubscribeTokenProblem };

/** `unsubscribe-TOKEN` anywhere in a line, as the mailto link's `subject=` writes it. */
const PREFIXED_TOKEN = /(?:^|[^A-Za-z0-9_-])unsubscribe-([A-Za-z0-9_-]{1,1024})(?![A-Za-z0-9_-])/i;
/** A line that is nothing but a token (core checks the rest). */
const BARE_TOKEN = /^[A-Za-z0-9_-]{16,1024}$/;
/** Characters of the text searched for its first line. */
const FIRST_LINE_SEARCH_CHARS = 8192;

/** The first line of `text` that is not blank, trimmed. */
function firstTextLine(text: string): string | undefined {
  for (const line of text.slice(0, FIRST_LINE_SEARCH_CHARS).split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed !== '') return trimmed;
  }
  return undefined;
}

/**
 * The strings that may be the token of an unsubscribe mail, best first: `unsubscribe-TOKEN` in the subject
 * (whatever surrounds it: `Re:`, `AW:`, a `[tag]`, spaces), then the first non-blank line of the text, as
 * `unsubscribe-TOKEN` or the bare token (some mail clients drop the subject of a mailto link).
 */
export function unsubscribeTokenCandidates(subject: string, text: string): string[] {
  const candidates: string[] = [];
  const inSubject = PREFIXED_TOKEN.exec(subject)?.[1];
  if (inSubject !== undefined) candidates.push(inSubject);
  const line = firstTextLine(text);
  if (line !== undefined) {
    const inText = PREFIXED_TOKEN.exec(line)?.[1] ?? (BARE_TOKEN.test(line) ? line : undefined);
    if (inText !== undefined && !candidates.includes(inText)) candidates.push(inText);
  }
  return candidates;
}

/** Throws ConfigError naming `secrets` when it lists none or a short one (checked once, at start). */
export function validateUnsubscribeSecrets(secrets: readonly string[]): void {
  const issues: FieldIssue[] = [];
  if (!Array.isArray(secrets) || secrets.length === 0) {
    issues.push({ field: 'unsubscribe.secrets', message: 'must list at least one secret' });
  } else {
    secrets.forEach((secret, i) => {
      if (typeof secret !== 'string' || secret.length < MIN_UNSUBSCRIBE_SECRET_CHARS) {
        issues.push({
          field: `unsubscribe.secrets[${i}]`,
          message: `must be a string of at least ${MIN_UNSUBSCRIBE_SECRET_CHARS} characters`,
        });
      }
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
}

/**
 * Reads a mail sent to the unsubscribe address and verifies its token with core's verifyUnsubscribeToken
 * (the check of the API's /u/:token): the first candidate (unsubscribeTokenCandidates) that verifies wins.
 * Never rejects for the message: an unreadable one has `no_token`.
 */
export async function readUnsubscribeMail(
  raw: Buffer,
  options: { readonly secrets: readonly string[] },
): Promise<UnsubscribeMailReading> {
  let candidates: string[];
  try {
    const parts = await reportParts(raw);
    candidates = unsubscribeTokenCandidates(parts.subject, parts.text);
  } catch {
    return { outcome: 'no_token' };
  }
  let problem: UnsubscribeTokenProblem | undefined;
  for (const candidate of candidates) {
    try {
      return { outcome: 'token', token: verifyUnsubscribeToken(candidate, { secrets: options.secrets }) };
    } catch (err) {
      if (!(err instanceof UnsubscribeTokenError)) throw err;
      problem ??= err.reason;
    }
  }
  return problem === undefined ? { outcome: 'no_token' } : { outcome: 'invalid_token', problem };
}
