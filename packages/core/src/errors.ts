/**
 * Every error Mailroom raises on purpose carries one of these codes. The codes are stable: callers, logs and
 * the HTTP API match on them, never on message text. docs/errors.md mirrors this table (a unit test keeps
 * the two equal).
 */
export const ERROR_CODES = {
  ERR_VALIDATION:
    'A message or request failed validation; nothing was queued. `issues` names every bad field.',
  ERR_CONFIG: 'The configuration is invalid or incomplete; `issues` names every bad setting.',
  ERR_IDEMPOTENCY_CONFLICT: 'An idempotency key was reused with different message content.',
  ERR_NOT_FOUND: 'No message, job or record exists with the given id.',
  ERR_REDIS_UNAVAILABLE: 'Redis could not be reached or did not answer in time.',
  ERR_SMTP: 'The SMTP relay refused or failed a transaction; the classification says whether to retry.',
  ERR_INTERNAL: 'An invariant was broken inside Mailroom (a bug), not caused by the input.',
  ERR_UNSUBSCRIBE_TOKEN:
    'An unsubscribe token is malformed, carries a bad signature, or has expired; `reason` says which.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of Mailroom's errors: `code` is one of ERROR_CODES. */
export class MailroomError extends Error {
  override readonly name: string = 'MailroomError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** One problem with one named input field, e.g. `{ field: 'to', message: 'is empty' }`. */
export interface FieldIssue {
  readonly field: string;
  readonly message: string;
}

function listIssues(subject: string, issues: readonly FieldIssue[]): string {
  if (issues.length === 0) return `invalid ${subject}`;
  return `invalid ${subject}: ${issues.map((issue) => `${issue.field}: ${issue.message}`).join('; ')}`;
}

function freezeIssues(issues: readonly FieldIssue[]): readonly FieldIssue[] {
  return Object.freeze(issues.map((issue) => Object.freeze({ field: issue.field, message: issue.message })));
}

/** Input that Mailroom refuses. The message names every issue as `field: reason`, joined by `; `. */
export class ValidationError extends MailroomError {
  override readonly name: string = 'ValidationError';
  readonly issues: readonly FieldIssue[];

  constructor(issues: readonly FieldIssue[], options?: { cause?: unknown }) {
    super('ERR_VALIDATION', listIssues('message', issues), options);
    this.issues = freezeIssues(issues);
  }
}

/** Configuration that Mailroom cannot run with. The message names every issue as `setting: reason`. */
export class ConfigError extends MailroomError {
  override readonly name: string = 'ConfigError';
  readonly issues: readonly FieldIssue[];

  constructor(issues: readonly FieldIssue[], options?: { cause?: unknown }) {
    super('ERR_CONFIG', listIssues('configuration', issues), options);
    this.issues = freezeIssues(issues);
  }
}

/** An idempotency key that is already bound to a different message. */
export class IdempotencyConflictError extends MailroomError {
  override readonly name: string = 'IdempotencyConflictError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_IDEMPOTENCY_CONFLICT', message, options);
  }
}

/** A lookup by id that found nothing. */
export class NotFoundError extends MailroomError {
  override readonly name: string = 'NotFoundError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NOT_FOUND', message, options);
  }
}

/** Why an unsubscribe token was refused. */
export type UnsubscribeTokenProblem = 'malformed' | 'bad_signature' | 'expired';

/** An unsubscribe token that cannot be honoured: `reason` says whether it is malformed, forged or too old. */
export class UnsubscribeTokenError extends MailroomError {
  override readonly name: string = 'UnsubscribeTokenError';
  readonly reason: UnsubscribeTokenProblem;

  constructor(reason: UnsubscribeTokenProblem, message: string, options?: { cause?: unknown }) {
    super('ERR_UNSUBSCRIBE_TOKEN', message, options);
    this.reason = reason;
  }
}
