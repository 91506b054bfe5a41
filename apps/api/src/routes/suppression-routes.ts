import { z } from 'zod';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { MailroomClient } from '@mailroom/client';
import { NotFoundError } from '@mailroom/core';
import { GLOBAL_SUPPRESSION_SCOPE, SUPPRESSION_REASONS } from '@mailroom/queue';
import { ApiError } from '../api-error.js';
import type { ApiKeyRecord } from '../api-key-store.js';
import { hasScope } from '../authenticate.js';
import { domainAllowed } from '../sender-domains.js';
import { errorResponses } from '../schemas.js';

export interface SuppressionRoutesOptions {
  readonly client: MailroomClient;
}

/** Entries added or removed per request. */
const MAX_ENTRIES = 1000;

const scopeSchema = z
  .string()
  .regex(/^(\*|[a-z0-9._-]{1,253})$/, 'must be "*" or a sender domain in lower case')
  .meta({ description: 'A sender domain (news.example.com) or `*` for every sender (admin keys only).' });

const entrySchema = z
  .object({
    address: z.string(),
    scope: z.string(),
    reason: z.enum(SUPPRESSION_REASONS),
    at: z.number().meta({ description: 'ms since the epoch' }),
    source: z.string().optional(),
  })
  .meta({ id: 'SuppressionEntry' });

/**
 * A key may manage the suppression scopes of its own sender domains; `*` (every sender) and any scope
 * beyond the key's domains need an admin key.
 */
function assertScopeAllowed(key: ApiKeyRecord, scope: string): void {
  if (hasScope(key, 'admin')) return;
  if (scope === GLOBAL_SUPPRESSION_SCOPE || !domainAllowed(key.domains, scope)) {
    throw new ApiError('ERR_FORBIDDEN', `this API key may not manage the suppression scope "${scope}"`, [
      { field: 'scope', message: 'is not one of the sender domains of this API key' },
    ]);
  }
}

/**
 * The suppression list over HTTP: list (or look up one address), add, remove. Adding needs the `send`
 * scope; removing (which lets mail reach someone who asked not to get it) needs `admin`.
 */
export const suppressionRoutes: FastifyPluginCallbackZod<SuppressionRoutesOptions> = (app, options, done) => {
  const { client } = options;

  app.get(
    '/v1/suppressions',
    {
      config: { scope: 'read' },
      schema: {
        summary: "A page of a scope's suppression list, or one address's entry",
        tags: ['suppressions'],
        querystring: z.object({
          scope: scopeSchema,
          address: z
            .string()
            .optional()
            .meta({ description: 'Look up this address only (404 if not listed).' }),
          cursor: z.string().optional(),
          count: z.coerce.number().int().min(1).max(MAX_ENTRIES).optional(),
        }),
        response: {
          200: z.object({ entries: z.array(entrySchema), cursor: z.string().optional() }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => {
      const { scope, address, cursor, count } = request.query;
      assertScopeAllowed(request.apiKey!, scope);
      if (address !== undefined) {
        const entry = await client.suppressions.get(scope, address);
        if (entry === undefined) throw new NotFoundError(`the address is not on the "${scope}" list`);
        return { entries: [{ ...entry }] };
      }
      const page = await client.suppressions.list(scope, {
        ...(cursor === undefined ? {} : { cursor }),
        ...(count === undefined ? {} : { count }),
      });
      return {
        entries: page.entries.map((e) => ({ ...e })),
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      };
    },
  );

  app.post(
    '/v1/suppressions',
    {
      config: { scope: 'send' },
      schema: {
        summary: 'Add addresses to a suppression list',
        tags: ['suppressions'],
        body: z.object({
          scope: scopeSchema,
          entries: z
            .array(
              z.object({
                address: z.string(),
                reason: z.enum(SUPPRESSION_REASONS).default('manual'),
                source: z.string().max(128).optional(),
              }),
            )
            .min(1)
            .max(MAX_ENTRIES),
        }),
        response: { 200: z.object({ added: z.number().int() }), ...errorResponses(413, 415) },
      },
    },
    async (request) => {
      const { scope, entries } = request.body;
      assertScopeAllowed(request.apiKey!, scope);
      const added = await client.suppressions.add(
        scope,
        entries.map((e) => ({
          address: e.address,
          reason: e.reason,
          source: e.source ?? `api:${request.apiKey!.prefix}`,
        })),
      );
      return { added };
    },
  );

  app.delete(
    '/v1/suppressions',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Remove an address from a suppression list',
        description: 'Mail can reach the address again: admin keys only.',
        tags: ['suppressions'],
        querystring: z.object({ scope: scopeSchema, address: z.string() }),
        response: { 200: z.object({ removed: z.number().int() }), ...errorResponses() },
      },
    },
    async (request) => {
      const { scope, address } = request.query;
      return { removed: await client.suppressions.remove(scope, [address]) };
    },
  );
  done();
};
