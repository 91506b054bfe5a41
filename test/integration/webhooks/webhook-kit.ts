import { Registry } from '@mailroom/metrics';
import {
  WebhookDispatcher,
  WebhookEmitter,
  createWebhookMetrics,
  createWebhookQueue,
  webhookEndpoint,
  type WebhookEmitterOptions,
  type WebhookEndpoint,
  type WebhookEventInput,
  type WebhookEventType,
  type WebhookLogger,
  type WebhookMetrics,
  type WebhookQueue,
  type WebhooksFile,
} from '@mailroom/webhooks';
import type { Redis } from 'ioredis';

export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789';

/** An endpoint on the test receiver (`path` appended to its URL), with the file's checks and defaults. */
export function endpointAt(
  receiverUrl: string,
  path: string,
  options: Partial<WebhooksFile[number]> = {},
): WebhookEndpoint {
  return webhookEndpoint({
    name: path.replace(/[^a-z0-9_-]/g, '') || 'root',
    url: `${receiverUrl}${path}`,
    secret: TEST_SECRET,
    ...options,
  });
}

let sequence = 0;

/** A unique, hash-tagged queue prefix per test (BullMQ's advice: a queue per test). */
export function testPrefix(): string {
  sequence += 1;
  return `{webhooks-test-${process.pid}-${sequence}}`;
}

/** An event as the worker would emit it. */
export function event(type: WebhookEventType, n: number, extra: Partial<WebhookEventInput> = {}) {
  return {
    type,
    messageId: `msg-${n}`,
    messageIdHeader: `<msg-${n}@news.example.com>`,
    recipient: `reader${n}@example.org`,
    relay: 'primary',
    ...extra,
  } satisfies WebhookEventInput;
}

/** The value of one labelled sample of a metric. */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((v) =>
    Object.entries(labels).every(([k, value]) => (v.labels as Record<string, unknown>)[k] === value),
  );
  return found?.value ?? 0;
}

export interface Pipeline {
  readonly registry: Registry;
  readonly metrics: WebhookMetrics;
  readonly queue: WebhookQueue;
  readonly emitter: WebhookEmitter;
  dispatcher: WebhookDispatcher | undefined;
  startDispatcher(): Promise<WebhookDispatcher>;
  close(): Promise<void>;
}

/** Emitter, queue and (started on demand) dispatcher on one connection, with fast retries for tests. */
export function pipeline(
  conn: Redis,
  endpoints: readonly WebhookEndpoint[],
  options: {
    logger?: WebhookLogger;
    emitter?: Partial<WebhookEmitterOptions>;
    prefix?: string;
    concurrency?: number;
  } = {},
): Pipeline {
  const prefix = options.prefix ?? testPrefix();
  const registry = new Registry();
  const metrics = createWebhookMetrics({ registry, endpoints: endpoints.map((e) => e.name) });
  const queue = createWebhookQueue(conn, { prefix });
  queue.on('error', () => undefined);
  const emitter = new WebhookEmitter({
    queue,
    endpoints,
    metrics,
    ...(options.logger ? { logger: options.logger } : {}),
    ...options.emitter,
  });
  const result: Pipeline = {
    registry,
    metrics,
    queue,
    emitter,
    dispatcher: undefined,
    async startDispatcher() {
      const dispatcher = new WebhookDispatcher({
        connection: conn,
        prefix,
        endpoints,
        metrics,
        concurrency: options.concurrency ?? 8,
        retry: { baseMs: 20, maxMs: 200 },
        ...(options.logger ? { logger: options.logger } : {}),
      });
      result.dispatcher = dispatcher;
      await dispatcher.start();
      return dispatcher;
    },
    async close() {
      await emitter.close(2000);
      await result.dispatcher?.close(2000);
      await queue.close();
    },
  };
  return result;
}
