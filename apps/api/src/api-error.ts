import type { ErrorCode, FieldIssue } from '@mailroom/core';

/**
 * Codes of the HTTP API's error bodies, with their status. Core's codes (ERR_VALIDATION, ERR_NOT_FOUND, ...)
 * keep their meaning; the others describe HTTP-level refusals. docs/api.md lists them.
 */
export const API_ERROR_STATUS = {
  ERR_BAD_REQUEST: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_IDEMPOTENCY_CONFLICT: 409,
  ERR_CONFLICT: 409,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_VALIDATION: 422,
  ERR_RATE_LIMITED: 429,
  ERR_INTERNAL: 500,
  ERR_REDIS_UNAVAILABLE: 503,
} as const satisfies Record<string, number> & Partial<Record<ErrorCode, number>>;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/** The body of every error response: `{ error: { code, message, fields? } }`. */
export interface ApiErrorBody {
  readonly error: {
    readonly code: ApiErrorCode;
    readonly message: string;
    readonly fields?: readonly FieldIssue[];
  };
}

/** An error the API answers on purpose: its status follows from its code, its message is safe to show. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly statusCode: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly fields?: readonly FieldIssue[],
    /** Extra response headers (Retry-After, WWW-Authenticate). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.statusCode = API_ERROR_STATUS[code];
  }

  body(): ApiErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.fields === undefined ? {} : { fields: this.fields }),
      },
    };
  }
}
