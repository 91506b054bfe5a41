import type { FastifyAdapter as FastifyAdapterClass } from '@bull-board/fastify';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { createMailQueue } from '@mailroom/queue';
import { toApiError } from '../error-handler.js';

type ErrorHandler = Parameters<InstanceType<typeof FastifyAdapterClass>['setErrorHandler']>[0];

export interface ServiceRoutesOptions {
  readonly redis: Redis;
  readonly registry: Registry;
  /** The queue key prefix (not a route prefix: Fastify reserves `prefix` in plugin options). */
  readonly queuePrefix: string;
  /** Mount the read-only bull-board UI at /admin/queues. */
  readonly queueUi: boolean;
}

/**
 * /healthz (alive, public), /readyz (Redis answers, public), and for admin keys only: /metrics (Prometheus
 * text) and the read-only queue UI at /admin/queues. They share the API's listener: an admin key guards them
 * (HTTP Basic with the key as password works in a browser), so there is no second port to protect.
 */
export const serviceRoutes: FastifyPluginAsyncZod<ServiceRoutesOptions> = async (app, options) => {
  app.get('/healthz', { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/plain').send('ok\n'),
  );
  app.get('/readyz', { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    let ready = options.redis.status === 'ready';
    if (ready)
      ready = await options.redis.ping().then(
        () => true,
        () => false,
      );
    return reply
      .code(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? 'ready\n' : 'not ready\n');
  });
  app.get('/metrics', { config: { scope: 'admin' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(options.registry.contentType).send(await options.registry.metrics()),
  );

  if (options.queueUi) {
    const [{ createBullBoard }, { BullMQAdapter }, { FastifyAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/fastify'),
    ]);
    const queue = createMailQueue(options.redis, { prefix: options.queuePrefix });
    queue.on('error', () => undefined); // reported by readiness
    app.addHook('onClose', async () => {
      await queue.close();
    });
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath('/admin/queues');
    createBullBoard({
      // Read-only: the ledger is the source of truth; retrying or removing jobs by hand would bypass it
      // (cancel and re-drive go through the API or the CLI instead).
      queues: [new BullMQAdapter(queue, { readOnlyMode: true })],
      // @bull-board/fastify carries its own copy of @bull-board/api; the two declare the same adapter shape.
      serverAdapter: serverAdapter,
      options: { uiConfig: { boardTitle: 'Mailroom' } },
    });
    // The UI's plugin answers its own errors: in the API's error shape, never with an internal message.
    serverAdapter.setErrorHandler((error) => {
      const apiError = toApiError(error, options.redis.status === 'ready');
      return { status: apiError.statusCode, body: apiError.body() } as ReturnType<ErrorHandler>;
    });
    await app.register(serverAdapter.registerPlugin(), { prefix: '/admin/queues' });
  }
};
