import type { FastifyRequest } from 'fastify';
import { addressDomain, parseMailbox, ValidationError, type FieldIssue } from '@mailroom/core';
import { ApiError } from './api-error.js';
import type { ApiScope } from './api-key.js';
import type { ApiKeyRecord, ApiKeyStore } from './api-key-store.js';
import type { RateLimiter } from './rate-limiter.js';
import { domainAllowed } from './sender-domains.js';

/** Who may call a route: anyone (`public`), any valid key (`any`), or a key with that scope. */
export type RouteScope = 'public' | 'any' | ApiScope;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (default: `admin` under /admin, else any valid key). */
    scope?: RouteScope;
  }
  interface FastifyRequest {
    /** The authenticated key, once the auth hook has run (null on public routes). */
    apiKey: ApiKeyRecord | null;
  }
}

/**
 * The key a request presents: `Authorization: Bearer mr_...`, or HTTP Basic with the key as the password
 * (so that a browser can open the queue UI and the docs: it prompts once and resends the header itself).
 */
export function presentedKey(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  if (scheme === 'bearer') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** `admin` includes every other scope. */
export function hasScope(record: ApiKeyRecord, scope: RouteScope): boolean {
  if (scope === 'public' || scope === 'any') return true;
  return record.scopes.includes(scope) || record.scopes.includes('admin');
}

export function routeScope(request: FastifyRequest): RouteScope {
  const configured = request.routeOptions.config.scope;
  if (configured !== undefined) return configured;
  return request.url.startsWith('/admin') ? 'admin' : 'any';
}

function challenge(request: FastifyRequest): Record<string, string> {
  const browserUi = request.url.startsWith('/admin') || request.url.startsWith('/v1/docs');
  return {
    'www-authenticate': browserUi ? 'Basic realm="mailroom", charset="UTF-8"' : 'Bearer realm="mailroom"',
  };
}

/**
 * Authenticates the request for its route's scope and takes a rate-limit token for the key: 401 without a
 * valid key (missing, malformed, unknown, wrong, revoked or expired: the answer does not say which), 403 for a
 * key without the scope, 429 with Retry-After past the key's rate.
 */
export async function authenticate(
  request: FastifyRequest,
  deps: { keys: ApiKeyStore; limiter: RateLimiter },
): Promise<void> {
  const scope = routeScope(request);
  if (scope === 'public') return;
  const key = presentedKey(request.headers.authorization);
  if (key === undefined) {
    throw new ApiError('ERR_UNAUTHORIZED', 'an API key is required', undefined, challenge(request));
  }
  const verified = await deps.keys.verify(key);
  if (!verified.ok) {
    request.log.info({ reason: verified.reason }, 'API key refused');
    throw new ApiError('ERR_UNAUTHORIZED', 'the API key is not valid', undefined, challenge(request));
  }
  request.apiKey = verified.record;
  request.log = request.log.child({ apiKey: verified.record.prefix });
  if (!hasScope(verified.record, scope)) {
    throw new ApiError('ERR_FORBIDDEN', `this API key does not have the "${scope}" scope`);
  }
  const taken = await deps.limiter.take(verified.record.prefix);
  if (!taken.ok) {
    throw new ApiError('ERR_RATE_LIMITED', 'too many requests for this API key', undefined, {
      'retry-after': String(Math.max(1, Math.ceil(taken.retryAfterMs / 1000))),
    });
  }
}

/**
 * The issue when `from` parses as a mailbox whose domain the key may not send from; undefined when allowed
 * or when `from` is not a mailbox at all (core's validation then names the field). The SMTP envelope sender
 * is always the From address (a message cannot carry another), so this one check covers both.
 */
export function senderIssue(record: ApiKeyRecord, from: unknown, field: string): FieldIssue | undefined {
  let domain: string;
  try {
    domain = addressDomain(parseMailbox(from, field).address);
  } catch (err) {
    if (err instanceof ValidationError) return undefined;
    throw err;
  }
  if (domainAllowed(record.domains, domain)) return undefined;
  return { field, message: `sender domain ${domain} is not allowed for this API key` };
}

/** Throws 403 naming every sender field whose domain the key may not use. */
export function assertSendersAllowed(record: ApiKeyRecord, senders: readonly [unknown, string][]): void {
  const issues = senders
    .map(([from, field]) => senderIssue(record, from, field))
    .filter((i): i is FieldIssue => i !== undefined);
  if (issues.length > 0) {
    throw new ApiError('ERR_FORBIDDEN', 'this API key may not send from that domain', issues);
  }
}
