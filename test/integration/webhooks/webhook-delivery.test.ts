import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import {
  EVENT_ID_HEADER,
  WEBHOOK_EVENT_TYPES,
  verifyWebhookSignature,
  webhookBodySchema,
  type WebhookEvent,
} from '@mailroom/webhooks';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { memoryLogger } from '../fixtures.js';
import { TEST_SECRET, endpointAt, event, metricValue, pipeline, type Pipeline } from './webhook-kit.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from './webhook-receiver.js';

const WAIT = { timeoutMs: 20_000 };

function eventsOf(request: ReceivedRequest): WebhookEvent[] {
  return webhookBodySchema.parse(JSON.parse(request.body.toString('utf8'))) as WebhookEvent[];
}

function header(request: ReceivedRequest, name: string): string {
  const value = request.headers[name.toLowerCase()];
  assert.equal(typeof value, 'string', `header ${name}`);
  return value as string;
}

describe('webhook delivery (real Redis, real HTTP receiver)', () => {
  let baseline: string[];
  let redis: RedisServer;
  let conn: Redis;
  const open: { pipe?: Pipeline; receiver?: WebhookReceiver } = {};

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client({ maxRetriesPerRequest: null });
  });

  afterEach(async () => {
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

  it('posts the events as signed JSON that the helper and an independent HMAC both verify', async () => {
    const receiver = (open.receiver = await startWebhookReceiver());
    const crm = endpointAt(receiver.url, '/crm');
    const pipe = (open.pipe = pipeline(conn, [crm]));
    await pipe.startDispatcher();

    const emitted = [
      event('delivered', 1, { smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 OK queued' } }),
      event('bounced', 2, {
        campaign: 'spring',
        smtp: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user' },
        reason: 'permanent',
        attempt: 1,
      }),
      event('deferred', 3, { smtp: { code: 451, response: 'x'.repeat(5000) }, attempt: 2 }),
    ];
    for (const e of emitted) assert.equal(pipe.emitter.emit(e), undefined);
    await waitFor(() => receiver.requests.length >= 1, WAIT);

    assert.equal(receiver.requests.length, 1, 'one request carries the three events');
    const request = receiver.requests[0]!;
    assert.equal(request.headers['content-type'], 'application/json');
    const events = eventsOf(request);
    assert.deepEqual(
      events.map((e) => [e.type, e.messageId, e.recipient]),
      emitted.map((e) => [e.type, e.messageId, e.recipient]),
    );
    assert.equal(new Set(events.map((e) => e.id)).size, 3, 'every event has its own id');
    assert.equal(header(request, EVENT_ID_HEADER), events.map((e) => e.id).join(','));
    assert.equal(header(request, 'Mailroom-Delivery-Attempt'), '1');
    assert.deepEqual(events[1]!.smtp, { code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user' });
    assert.equal(events[1]!.campaign, 'spring');
    assert.equal(events[2]!.smtp?.response?.length, 1000, 'a long reply is cut');
    assert.ok(Math.abs(Date.parse(events[0]!.occurredAt) - Date.now()) < 60_000);

    const signature = header(request, 'Mailroom-Signature');
    assert.equal(verifyWebhookSignature(request.body, signature, [TEST_SECRET]).ok, true);
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature);
    assert.ok(match, signature);
    const independent = createHmac('sha256', TEST_SECRET)
      .update(Buffer.concat([Buffer.from(`${match[1]}.`), request.body]))
      .digest('hex');
    assert.equal(match[2], independent);
    assert.equal(
      verifyWebhookSignature(request.body, signature, ['another-secret-of-32-characters!!']).ok,
      false,
    );

    await waitFor(
      async () =>
        (await metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', {
          endpoint: 'crm',
          result: 'delivered',
        })) === 1,
      WAIT,
    );
    assert.match(
      await pipe.registry.metrics(),
      /^mailroom_webhook_delivery_seconds_count\{endpoint="crm"\} 1$/m,
    );
  });

  it('retries a receiver that fails three times (500, a timeout, 503): the 4th try has the same ids and body', async () => {
    const answers: (number | 'hang')[] = [500, 'hang', 503, 200];
    const receiver = (open.receiver = await startWebhookReceiver((_path, n) => answers[n] ?? 200));
    const flaky = endpointAt(receiver.url, '/flaky', { timeoutMs: 300 });
    const log = memoryLogger('info');
    const pipe = (open.pipe = pipeline(conn, [flaky], { logger: log.logger }));
    await pipe.startDispatcher();

    pipe.emitter.emit(event('bounced', 7, { recipient: 'private.person@example.org' }));
    pipe.emitter.emit(event('complained', 8, { recipient: 'private.person@example.org' }));
    await waitFor(
      async () =>
        (await metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', {
          endpoint: 'flaky',
          result: 'delivered',
        })) === 1,
      WAIT,
    );

    assert.deepEqual(
      receiver.requests.map((r) => r.answer),
      [500, 'hang', 503, 200],
    );
    const [first, ...rest] = receiver.requests;
    for (const retry of rest) {
      assert.ok(retry.body.equals(first!.body), 'the same body bytes on every try');
      assert.equal(header(retry, EVENT_ID_HEADER), header(first!, EVENT_ID_HEADER));
      assert.equal(header(retry, 'Mailroom-Delivery-Id'), header(first!, 'Mailroom-Delivery-Id'));
      assert.equal(
        verifyWebhookSignature(retry.body, header(retry, 'Mailroom-Signature'), TEST_SECRET).ok,
        true,
      );
    }
    assert.deepEqual(
      receiver.requests.map((r) => header(r, 'Mailroom-Delivery-Attempt')),
      ['1', '2', '3', '4'],
    );
    assert.deepEqual(
      eventsOf(receiver.requests[3]!).map((e) => e.type),
      ['bounced', 'complained'],
    );
    const count = (result: string) =>
      metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', { endpoint: 'flaky', result });
    assert.equal(await count('retry'), 3);
    assert.equal(await count('delivered'), 1);
    assert.equal(await count('failed'), 0);

    const lines = log.lines();
    assert.match(lines, /webhook delivery failed: will retry/);
    assert.match(lines, /"endpoint":"flaky"/);
    assert.ok(!lines.includes('private.person'), 'no recipient address in the log');
    assert.ok(!lines.includes(receiver.url), 'no URL in the log');
    assert.ok(!lines.includes(TEST_SECRET), 'no secret in the log');
  });

  it('stops at 410 Gone: one request, the delivery kept as a failed job, logged as an error', async () => {
    const receiver = (open.receiver = await startWebhookReceiver(() => 410));
    const gone = endpointAt(receiver.url, '/gone');
    const log = memoryLogger('info');
    const pipe = (open.pipe = pipeline(conn, [gone], { logger: log.logger }));
    await pipe.startDispatcher();

    pipe.emitter.emit(event('delivered', 1));
    await waitFor(async () => (await pipe.queue.getJobCounts('failed')).failed === 1, WAIT);
    const [failed] = await pipe.queue.getFailed();
    assert.ok(failed);
    assert.equal(failed.attemptsMade, 1);
    assert.match(failed.failedReason, /410/);
    assert.equal(failed.data.events.length, 1, 'the events are kept for inspection');
    const counts = await pipe.queue.getJobCounts('waiting', 'delayed', 'active', 'failed');
    assert.deepEqual(counts, { waiting: 0, delayed: 0, active: 0, failed: 1 }, 'nothing left to retry');
    assert.equal(receiver.requests.length, 1);
    assert.equal(
      await metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', {
        endpoint: 'gone',
        result: 'gone',
      }),
      1,
    );
    assert.match(log.lines(), /"level":50[^\n]*410 Gone/);
  });

  it('gives up when the retry window is over and keeps the delivery as a failed job', async () => {
    const receiver = (open.receiver = await startWebhookReceiver(() => 500));
    // 0.0005 h = 1.8 s: several tries with the test's 20-200 ms backoff, then the window is over.
    const brief = endpointAt(receiver.url, '/brief', { retryHours: 0.0005 });
    const pipe = (open.pipe = pipeline(conn, [brief]));
    await pipe.startDispatcher();

    pipe.emitter.emit(event('expired', 1));
    await waitFor(async () => (await pipe.queue.getJobCounts('failed')).failed === 1, WAIT);
    const [failed] = await pipe.queue.getFailed();
    assert.match(failed!.failedReason, /HTTP 500; given up after \d+ tries/);
    const tries = receiver.requests.length;
    assert.ok(tries >= 2, `retried before giving up (${tries} tries)`);
    const count = (result: string) =>
      metricValue(pipe.registry, 'mailroom_webhook_deliveries_total', { endpoint: 'brief', result });
    assert.equal(await count('failed'), 1);
    assert.equal(await count('retry'), tries - 1);
  });

  it('sends each endpoint only the event types it asked for, in requests of at most maxEventsPerRequest', async () => {
    const receiver = (open.receiver = await startWebhookReceiver());
    const all = endpointAt(receiver.url, '/all', { maxEventsPerRequest: 30 });
    const complaints = endpointAt(receiver.url, '/complaints', { events: ['complained', 'unsubscribed'] });
    const single = endpointAt(receiver.url, '/single', { events: ['bounced'], maxEventsPerRequest: 1 });
    const pipe = (open.pipe = pipeline(conn, [all, complaints, single]));
    await pipe.startDispatcher();

    let n = 0;
    for (const type of WEBHOOK_EVENT_TYPES) for (let i = 0; i < 10; i++) pipe.emitter.emit(event(type, n++));
    const received = (path: string) => receiver.on(path).flatMap(eventsOf);
    await waitFor(() => received('/all').length >= 100, WAIT);
    await waitFor(() => received('/complaints').length >= 20 && received('/single').length >= 10, WAIT);
    await waitFor(async () => {
      const c = await pipe.queue.getJobCounts('waiting', 'delayed', 'active');
      return (c.waiting ?? 0) + (c.delayed ?? 0) + (c.active ?? 0) === 0;
    }, WAIT);

    assert.equal(received('/all').length, 100);
    assert.equal(new Set(received('/all').map((e) => e.id)).size, 100);
    assert.ok(receiver.on('/all').every((r) => eventsOf(r).length <= 30));
    assert.deepEqual([...new Set(received('/complaints').map((e) => e.type))].sort(), [
      'complained',
      'unsubscribed',
    ]);
    assert.equal(received('/complaints').length, 20);
    assert.equal(receiver.on('/single').length, 10, 'one event per request');
    assert.ok(received('/single').every((e) => e.type === 'bounced'));
    // An event for two endpoints is the same event (same id) at both.
    const allIds = new Set(received('/all').map((e) => e.id));
    assert.ok(received('/complaints').every((e) => allIds.has(e.id)));
  });

  it('close() writes the buffered events to the queue, and they are delivered', async () => {
    const receiver = (open.receiver = await startWebhookReceiver());
    const crm = endpointAt(receiver.url, '/crm');
    // A long interval: only close() can write these events.
    const pipe = (open.pipe = pipeline(conn, [crm], { emitter: { flushIntervalMs: 60_000 } }));
    for (let i = 0; i < 7; i++) pipe.emitter.emit(event('delivered', i));
    assert.equal(pipe.emitter.stats().queued, 0);
    await pipe.emitter.close();
    assert.deepEqual(pipe.emitter.stats(), { emitted: 7, queued: 7, dropped: 0, held: 0, writing: 0 });
    assert.equal((await pipe.queue.getJobCounts('waiting')).waiting, 1);

    // Events after close are counted, not lost silently.
    pipe.emitter.emit(event('delivered', 99));
    assert.equal(pipe.emitter.stats().dropped, 1);
    assert.equal(
      await metricValue(pipe.registry, 'mailroom_webhook_events_dropped_total', { reason: 'shutdown' }),
      1,
    );

    await pipe.startDispatcher();
    await waitFor(() => receiver.requests.flatMap(eventsOf).length === 7, WAIT);
  });
});
