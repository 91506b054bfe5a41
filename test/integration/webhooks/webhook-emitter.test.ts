import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { webhookBodySchema } from '@mailroom/webhooks';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { memoryLogger } from '../fixtures.js';
import { endpointAt, event, metricValue, pipeline, type Pipeline } from './webhook-kit.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

const WAIT = { timeoutMs: 60_000 };

function receivedIds(receiver: WebhookReceiver): Set<string> {
  const ids = new Set<string>();
  for (const request of receiver.requests) {
    for (const e of webhookBodySchema.parse(JSON.parse(request.body.toString('utf8')))) ids.add(e.id);
  }
  return ids;
}

describe('webhook emitter: never blocks the send path, never drops silently', () => {
  let baseline: string[];
  let redis: RedisServer;
  let conn: Redis;
  const open: { pipe?: Pipeline; receiver?: WebhookReceiver } = {};

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client({ maxRetriesPerRequest: null });
    // Reconnect attempts while Redis is down report errors; the client retries by itself.
    conn.on('error', () => undefined);
  });

  afterEach(async () => {
    // A test that failed while Redis was down leaves it down: bring it back so the rest can close.
    if (!redis.running) await redis.restart();
    await open.pipe?.close();
    await open.receiver?.close();
    delete open.pipe;
    delete open.receiver;
  });

  after(async () => {
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('takes a burst of 5,000 events synchronously, without waiting for Redis, and delivers all of them', async () => {
    const receiver = (open.receiver = await startWebhookReceiver());
    const pipe = (open.pipe = pipeline(conn, [endpointAt(receiver.url, '/crm')], { concurrency: 16 }));
    await pipe.startDispatcher();

    const returned = new Set<unknown>();
    for (let i = 0; i < 5000; i++) returned.add(pipe.emitter.emit(event('delivered', i)));
    // emit is synchronous: it returned undefined every time (not a promise), and since this loop never
    // yielded, nothing can have reached Redis yet: all 5,000 are held in the buffer.
    assert.deepEqual([...returned], [undefined]);
    assert.deepEqual(pipe.emitter.stats(), { emitted: 5000, queued: 0, dropped: 0, held: 5000, writing: 0 });

    await waitFor(() => receivedIds(receiver).size === 5000, WAIT);
    assert.equal(pipe.emitter.stats().queued, 5000);
    assert.equal(pipe.emitter.stats().dropped, 0);
    // 500 events per write, 100 per request.
    assert.equal(receiver.requests.length, 50);
    // The dispatcher counts a delivery once the receiver's answer is in.
    await waitFor(
      async () =>
        (await metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', {
          endpoint: 'crm',
          result: 'delivered',
        })) === 50,
      WAIT,
    );
  });

  it('with Redis down, emit neither throws nor blocks; beyond the bound it counts drops, and the held events go out once Redis is back', async () => {
    const receiver = (open.receiver = await startWebhookReceiver());
    const log = memoryLogger('info');
    const pipe = (open.pipe = pipeline(conn, [endpointAt(receiver.url, '/crm')], {
      logger: log.logger,
      emitter: { maxBufferedEvents: 100, flushAtEvents: 50, flushIntervalMs: 20 },
    }));
    // The queue is ready (its connection is up) before Redis goes away.
    await pipe.queue.waitUntilReady();

    await redis.kill('SIGKILL');
    await waitFor(() => conn.status !== 'ready', WAIT);
    const returned = new Set<unknown>();
    for (let i = 0; i < 250; i++) returned.add(pipe.emitter.emit(event('bounced', i)));
    assert.deepEqual([...returned], [undefined]);
    assert.deepEqual(pipe.emitter.stats(), { emitted: 250, queued: 0, dropped: 150, held: 100, writing: 0 });

    // A write is now waiting for Redis; what it carries still counts against the bound.
    await waitFor(() => pipe.emitter.stats().writing === 50, WAIT);
    for (let i = 250; i < 260; i++) pipe.emitter.emit(event('bounced', i));
    assert.deepEqual(pipe.emitter.stats(), { emitted: 260, queued: 0, dropped: 160, held: 100, writing: 50 });
    assert.equal(
      await metricValue(pipe.registry, 'mailroom_webhook_events_dropped_total', { reason: 'buffer_full' }),
      160,
    );
    assert.equal(await metricValue(pipe.registry, 'mailroom_webhook_buffered_events'), 100);
    assert.match(log.lines(), /webhook events dropped/);
    assert.match(log.lines(), /"reason":"buffer_full"/);
    assert.ok(!log.lines().includes('example.org'), 'no recipient address in the log');

    await redis.restart();
    await waitFor(() => pipe.emitter.stats().queued === 100, WAIT);
    await pipe.startDispatcher();
    await waitFor(() => receivedIds(receiver).size === 100, WAIT);
    assert.deepEqual(pipe.emitter.stats(), { emitted: 260, queued: 100, dropped: 160, held: 0, writing: 0 });
  });

  it('close() with Redis down returns by its deadline and counts what it could not write', async () => {
    const pipe = (open.pipe = pipeline(conn, [endpointAt('http://127.0.0.1:9', '/nowhere')], {
      emitter: { flushIntervalMs: 10 },
    }));
    await pipe.queue.waitUntilReady();
    await redis.kill('SIGKILL');
    await waitFor(() => conn.status !== 'ready', WAIT);
    for (let i = 0; i < 30; i++) pipe.emitter.emit(event('deferred', i));
    await pipe.emitter.close(300);
    assert.deepEqual(pipe.emitter.stats(), { emitted: 30, queued: 0, dropped: 30, held: 0, writing: 0 });
    assert.equal(
      await metricValue(pipe.registry, 'mailroom_webhook_events_dropped_total', { reason: 'shutdown' }),
      30,
    );
    await redis.restart();
  });
});
