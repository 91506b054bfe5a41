import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { MailroomClient } from '@mailroom/client';
import { startWebhooks, type Webhooks } from '@mailroom/webhooks';
import { buildApiApp } from './app.js';
import { isLoopback, type ApiConfig } from './config.js';
import { createApiRedis, waitForRedis } from './redis-connection.js';

export interface ApiServerOptions {
  /** Log level and destination (default: the configured level, to stdout); false for no logs. */
  readonly logger?: { readonly level: string; readonly stream?: NodeJS.WritableStream } | false;
  readonly registry?: Registry;
  /** How long to wait for Redis at start before listening anyway (answering 503 until it is there), ms. */
  readonly redisWaitMs?: number;
}

export interface ApiServer {
  /** `http://host:port` the API listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  /** The webhook emitter's side (MAILROOM_WEBHOOKS_FILE): events are queued here, delivered by the workers. */
  readonly webhooks?: Webhooks;
  /**
   * Stops taking requests, lets those in flight finish (at most `timeoutMs`, default the configured shutdown
   * timeout; then their connections are closed), and closes Redis.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** Wires config -> Redis -> client -> app, and listens. */
export async function startApiServer(config: ApiConfig, options: ApiServerOptions = {}): Promise<ApiServer> {
  const redis = createApiRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
  const client = new MailroomClient({
    redis,
    prefix: config.prefix,
    maxMessageBytes: config.limits.maxMessageBytes,
    maxAgeMs: config.maxAgeMs,
    idempotencyWindowSeconds: config.idempotencyWindowSeconds,
    retentionSeconds: config.retentionSeconds,
  });
  const registry = options.registry ?? new Registry();
  let app: FastifyInstance;
  let webhooks: Webhooks | undefined;
  try {
    app = await buildApiApp({
      config,
      redis,
      client,
      logger: options.logger ?? { level: config.logLevel },
      registry,
      // Started below, before the API listens (it logs with the app's logger).
      ...(config.webhooks.length > 0 ? { webhooks: { emit: (event) => webhooks?.emitter.emit(event) } } : {}),
    });
    // `unsubscribed` events are only queued here; the workers' dispatchers deliver them.
    if (config.webhooks.length > 0) {
      webhooks = await startWebhooks({
        redis,
        prefix: config.prefix,
        endpoints: config.webhooks,
        registry,
        logger: app.log.child({ component: 'webhooks' }),
        dispatch: false,
      });
    }
    if (!(await waitForRedis(redis, options.redisWaitMs ?? 5000))) {
      app.log.warn('redis is not reachable yet: answering 503 until it is');
    }
    if (!isLoopback(config.host)) {
      app.log.warn(
        { host: config.host },
        'listening beyond loopback: serve the API through a TLS-terminating proxy',
      );
    }
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await webhooks?.close(1000).catch(() => undefined);
    await client.close().catch(() => undefined);
    redis.disconnect();
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    app,
    ...(webhooks === undefined ? {} : { webhooks }),
    close(timeoutMs = config.shutdownTimeoutMs) {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            app.server.closeAllConnections();
            resolve();
          }, timeoutMs);
        });
        await Promise.race([app.close(), deadline]);
        clearTimeout(timer);
        // The events of the last requests are written before the connection goes.
        await webhooks?.close().catch(() => undefined);
        await client.close().catch(() => undefined);
        redis.disconnect();
      })();
      return closing;
    },
  };
}
