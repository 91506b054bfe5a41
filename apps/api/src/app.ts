import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { MailroomClient } from '@mailroom/client';
import { CampaignStore, Ledger } from '@mailroom/queue';
import type { WebhookEmitter } from '@mailroom/webhooks';
import { ApiError } from './api-error.js';
import { createApiMetrics } from './api-metrics.js';
import { ApiKeyStore } from './api-key-store.js';
import { authenticate, routeScope } from './authenticate.js';
import { CampaignDrafts } from './campaign-drafts.js';
import type { ApiConfig } from './config.js';
import { installErrorHandler, redisUnavailable } from './error-handler.js';
import { RateLimiter } from './rate-limiter.js';
import { validatorCompiler } from './request-validation.js';
import { campaignRoutes } from './routes/campaign-routes.js';
import { messageRoutes } from './routes/message-routes.js';
import { serviceRoutes } from './routes/service-routes.js';
import { suppressionRoutes } from './routes/suppression-routes.js';
import { unsubscribeRoutes } from './routes/unsubscribe-routes.js';
import { VERSION } from './version.js';

export type ApiAppConfig = Pick<
  ApiConfig,
  'prefix' | 'keyPepper' | 'limits' | 'idempotencyWindowSeconds' | 'queueUi' | 'docsUi' | 'unsubscribeSecrets'
>;

export interface ApiAppDeps {
  readonly config: ApiAppConfig;
  /** The API's Redis connection (see createApiRedis): keys, rate limits, drafts, readiness. */
  readonly redis: Redis;
  /** The producer SDK, on the same connection. */
  readonly client: MailroomClient;
  /** Where /metrics' numbers live (default: a new registry). */
  readonly registry?: Registry;
  /** Queues webhook events (`unsubscribed`) when MAILROOM_WEBHOOKS_FILE is set; never waits, never throws. */
  readonly webhooks?: Pick<WebhookEmitter, 'emit'>;
  /** Log level and destination (default: `info` to stdout); false for no logs. */
  readonly logger?: { readonly level: string; readonly stream?: NodeJS.WritableStream } | false;
}

/** How long campaign drafts wait for their recipients. */
const DRAFT_TTL_SECONDS = 24 * 3600;
/** How long a repeated request waits for the first with its Idempotency-Key to be queued. */
const DUPLICATE_WAIT_MS = 5000;

/** Paths logged without what follows them (tokens in paths, and every query string). */
function safeUrl(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.replace(/^\/u\/[^/]+/, '/u/[token]');
}

/** Paths registered by plugins (queue UI, Swagger UI) that are not part of the API's contract. */
function isInternalPath(url: string): boolean {
  return url.startsWith('/admin') || url.startsWith('/v1/docs');
}

/**
 * Builds the HTTP API (not listening yet): JSON over /v1, API keys with scopes and sender domains, per-key
 * rate limits, body limits checked before parsing, one error shape, an OpenAPI document generated from the
 * route schemas at /v1/openapi.json, and /metrics plus the queue UI for admin keys.
 */
export async function buildApiApp(deps: ApiAppDeps): Promise<FastifyInstance> {
  const { config, redis, client } = deps;
  const registry = deps.registry ?? new Registry();
  const metrics = createApiMetrics(registry);
  const logger = deps.logger ?? { level: 'info' };

  const app = Fastify({
    bodyLimit: config.limits.bodyLimitBytes,
    requestTimeout: config.limits.requestTimeoutMs,
    // Unsubscribe tokens carry the address, list and scope (up to about 500 characters for a 254-octet
    // address); Fastify's default limit on a path parameter is 100.
    routerOptions: { maxParamLength: 1024 },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    logger:
      logger === false
        ? false
        : {
            level: logger.level,
            ...(logger.stream === undefined ? {} : { stream: logger.stream }),
            redact: {
              paths: [
                'req.headers.authorization',
                'req.headers.cookie',
                'headers.authorization',
                '*.authorization',
                'authorization',
                'key',
                '*.key',
                'pepper',
                '*.pepper',
              ],
              censor: '[redacted]',
            },
            serializers: {
              req: (req) => ({ method: req.method, url: safeUrl(req.url), remoteAddress: req.ip }),
              res: (res) => ({ statusCode: res.statusCode }),
            },
          },
  }).withTypeProvider<ZodTypeProvider>();

  // JSON with Fastify's own parser (prototype poisoning refused), except that a route taking no body (the
  // actions: cancel, pause, resume) also accepts an empty one sent with a JSON Content-Type.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '' && request.routeOptions.schema?.body === undefined) done(null, undefined);
    else void parseJson(request, String(body), done);
  });
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('apiKey', null);
  const redisReady = () => redis.status === 'ready';
  installErrorHandler(app, redisReady);

  const keys = new ApiKeyStore(redis, config.prefix, config.keyPepper);
  const limiter = new RateLimiter(redis, config.prefix, {
    ratePerSecond: config.limits.ratePerSecond,
    burst: config.limits.rateBurst,
  });
  const ledger = new Ledger(redis, { prefix: config.prefix });
  const campaigns = new CampaignStore(redis, config.prefix);
  const drafts = new CampaignDrafts(redis, config.prefix, DRAFT_TTL_SECONDS);

  app.addHook('onRequest', async (request, reply) => {
    try {
      // Without Redis nothing can be authenticated or queued: answer 503 at once, not after a timeout.
      if (!redisReady() && routeScope(request) !== 'public') throw redisUnavailable();
      await authenticate(request, { keys, limiter });
    } catch (err) {
      // Set here too: a plugin with an error handler of its own (the queue UI) must still send them.
      if (err instanceof ApiError)
        for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
      throw err;
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.duration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Mailroom API',
        version: VERSION,
        description:
          'Send mail through Mailroom over HTTP: single messages, batches and campaigns, with their status. Every request except /v1/openapi.json needs an API key (Authorization: Bearer mr_...).',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key, mr_<prefix>_<secret>.' },
        },
      },
      security: [{ apiKey: [] }],
      tags: [
        { name: 'messages', description: 'Single messages and batches' },
        { name: 'campaigns', description: 'A template and a streamed recipient list' },
        {
          name: 'suppressions',
          description: 'Addresses that get no more mail, per sender domain or everywhere',
        },
      ],
    },
    transform: (document) =>
      isInternalPath(document.url)
        ? { schema: { hide: true }, url: document.url }
        : jsonSchemaTransform(document),
    transformObject: jsonSchemaTransformObject,
  });
  if (config.docsUi) {
    await app.register(fastifySwaggerUi, { routePrefix: '/v1/docs' });
  }
  app.get('/v1/openapi.json', { config: { scope: 'public' }, schema: { hide: true } }, (_request, reply) =>
    reply.send(app.swagger()),
  );

  await app.register(serviceRoutes, { redis, registry, queuePrefix: config.prefix, queueUi: config.queueUi });
  await app.register(messageRoutes, {
    client,
    ledger,
    campaigns,
    redis,
    queuePrefix: config.prefix,
    limits: config.limits,
    idempotencyWindowSeconds: config.idempotencyWindowSeconds,
    duplicateWaitMs: DUPLICATE_WAIT_MS,
  });
  await app.register(campaignRoutes, {
    client,
    drafts,
    campaigns,
    redis,
    queuePrefix: config.prefix,
    limits: config.limits,
  });
  await app.register(suppressionRoutes, { client });
  if (config.unsubscribeSecrets.length > 0) {
    await app.register(unsubscribeRoutes, {
      client,
      secrets: config.unsubscribeSecrets,
      ...(deps.webhooks === undefined ? {} : { webhooks: deps.webhooks }),
    });
  }
  return app;
}
