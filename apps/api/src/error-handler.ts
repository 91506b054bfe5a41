import type { FastifyError, FastifyInstance } from 'fastify';
import { IdempotencyConflictError, MailroomError, NotFoundError, ValidationError } from '@mailroom/core';
import { ApiError } from './api-error.js';
import { isRedisUnavailableError } from './redis-connection.js';
import { validationIssues } from './request-validation.js';

/** Seconds a client is asked to wait after a 503 for an unavailable Redis. */
export const REDIS_RETRY_AFTER_SECONDS = 1;

/** Turns anything thrown while answering a request into the error the client is shown. */
export function toApiError(err: unknown, redisReady: boolean): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ValidationError) {
    return new ApiError('ERR_VALIDATION', err.message, err.issues);
  }
  if (err instanceof IdempotencyConflictError) {
    return new ApiError(
      'ERR_IDEMPOTENCY_CONFLICT',
      'this Idempotency-Key was already used with a different request body',
      [{ field: 'Idempotency-Key', message: 'was already used with a different request body' }],
    );
  }
  if (err instanceof NotFoundError) return new ApiError('ERR_NOT_FOUND', err.message);
  const fastify = err as Partial<FastifyError>;
  if (Array.isArray(fastify.validation)) {
    const fields = validationIssues(fastify.validation, fastify.validationContext);
    return new ApiError(
      'ERR_VALIDATION',
      `invalid request: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`,
      fields,
    );
  }
  if (typeof fastify.code === 'string' && fastify.code.startsWith('FST_')) {
    switch (fastify.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return new ApiError('ERR_BAD_REQUEST', 'the request body is not valid JSON');
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new ApiError('ERR_PAYLOAD_TOO_LARGE', 'the request body is larger than this endpoint accepts');
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return new ApiError('ERR_UNSUPPORTED_MEDIA_TYPE', 'this endpoint does not accept that Content-Type');
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return new ApiError('ERR_BAD_REQUEST', 'the request body does not match its Content-Length');
      default:
        if (fastify.statusCode === 404) return new ApiError('ERR_NOT_FOUND', 'not found');
        if (fastify.statusCode !== undefined && fastify.statusCode >= 400 && fastify.statusCode < 500) {
          return new ApiError('ERR_BAD_REQUEST', 'bad request');
        }
    }
  }
  if (
    isRedisUnavailableError(err) ||
    (err instanceof MailroomError && err.code === 'ERR_REDIS_UNAVAILABLE') ||
    !redisReady
  ) {
    return redisUnavailable();
  }
  return new ApiError('ERR_INTERNAL', 'internal error');
}

export function redisUnavailable(): ApiError {
  return new ApiError(
    'ERR_REDIS_UNAVAILABLE',
    'the queue is unavailable; nothing was accepted, retry later',
    undefined,
    { 'retry-after': String(REDIS_RETRY_AFTER_SECONDS) },
  );
}

/**
 * One error handler for the whole app: every error becomes `{ error: { code, message, fields? } }` with its
 * status; a 5xx never shows a stack, an internal message or a Redis error, and is logged; after a 413 the
 * connection is closed so the rest of an oversized body is never read.
 */
export function installErrorHandler(app: FastifyInstance, redisReady: () => boolean): void {
  app.setErrorHandler((err, request, reply) => {
    const apiError = toApiError(err, redisReady());
    if (apiError.statusCode >= 500) {
      const redisDown = apiError.code === 'ERR_REDIS_UNAVAILABLE';
      request.log[redisDown ? 'warn' : 'error'](
        redisDown
          ? { code: apiError.code, cause: (err as Error).message }
          : { err: err instanceof Error ? err : new Error(String(err)) },
        redisDown ? 'redis unavailable' : 'request failed',
      );
    } else {
      request.log.info({ code: apiError.code }, 'request refused');
    }
    for (const [name, value] of Object.entries(apiError.headers)) reply.header(name, value);
    if (apiError.statusCode === 413 || apiError.statusCode === 415) reply.header('connection', 'close');
    return reply.code(apiError.statusCode).send(apiError.body());
  });
  app.setNotFoundHandler((_request, reply) => {
    const apiError = new ApiError('ERR_NOT_FOUND', 'no such endpoint');
    return reply.code(404).send(apiError.body());
  });
}
